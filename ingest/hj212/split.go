package hj212

import (
	"fmt"
	"strings"
	"time"
)

// Assembler puts split uploads (Flag bit D, PNUM/PNO) back together. Packets of one upload
// share MN and QN and may come in any order; the whole upload is the first packet's fields
// with the CPs of every packet joined in PNO order. An Assembler belongs to one connection and
// is not safe for concurrent use.
type Assembler struct {
	// MaxAge is how long an incomplete upload waits for its other packets (default 2m).
	MaxAge time.Duration
	// MaxPending bounds the uploads waiting (default 64).
	MaxPending int

	pending map[string]*partial
}

type partial struct {
	first   Segment
	parts   []string // CP by PNO-1
	have    int
	started time.Time
	raw     []string // the packets' data segments, for the quarantine
}

// Incomplete is an upload given up on: packets missing after MaxAge, or pushed out.
type Incomplete struct {
	MN, QN string
	Have   int
	Want   int
	Raw    string // the packets that did arrive, one per line
}

// Add takes one packet (raw is its data segment). A packet of an unsplit upload comes back at
// once. done is false while packets are missing.
func (a *Assembler) Add(s Segment, raw []byte, now time.Time) (whole Segment, done bool, err error) {
	if s.PNUM <= 1 {
		if s.PNUM == 1 {
			s.PNUM, s.PNO = 0, 0
			s.Flag &^= FlagSplit
		}
		return s, true, nil
	}
	if a.pending == nil {
		a.pending = map[string]*partial{}
	}
	key := s.MN + "\x00" + s.QN
	p := a.pending[key]
	if p == nil {
		if s.PNUM > 9999 {
			return s, false, malformed("PNUM %d", s.PNUM)
		}
		p = &partial{first: s, parts: make([]string, s.PNUM), started: now}
		a.pending[key] = p
	}
	if s.PNUM != len(p.parts) {
		return s, false, malformed("PNUM %d differs from the %d of the upload's first packet", s.PNUM, len(p.parts))
	}
	if p.parts[s.PNO-1] != "" {
		// a repeat (the station did not get our answer): keep the first copy
		return s, false, nil
	}
	if s.CP == "" {
		s.CP = ";" // an empty part still counts as arrived
	}
	p.parts[s.PNO-1] = s.CP
	p.have++
	p.raw = append(p.raw, string(raw))
	if s.PNO < p.first.PNO {
		p.first = s
	}
	if p.have < len(p.parts) {
		return s, false, nil
	}
	delete(a.pending, key)
	whole = p.first
	whole.PNUM, whole.PNO = 0, 0
	whole.Flag &^= FlagSplit
	whole.CP = strings.Trim(strings.Join(p.parts, ";"), ";")
	return whole, true, nil
}

// Expire gives up on uploads older than MaxAge, and on the oldest past MaxPending.
func (a *Assembler) Expire(now time.Time) []Incomplete {
	maxAge := a.MaxAge
	if maxAge <= 0 {
		maxAge = 2 * time.Minute
	}
	maxPending := a.MaxPending
	if maxPending <= 0 {
		maxPending = 64
	}
	var out []Incomplete
	for k, p := range a.pending {
		if now.Sub(p.started) > maxAge || len(a.pending) > maxPending {
			delete(a.pending, k)
			out = append(out, Incomplete{MN: p.first.MN, QN: p.first.QN, Have: p.have, Want: len(p.parts), Raw: strings.Join(p.raw, "\n")})
		}
	}
	return out
}

// Pending is the number of uploads waiting for packets.
func (a *Assembler) Pending() int { return len(a.pending) }

func (i Incomplete) String() string {
	return fmt.Sprintf("split upload MN=%s QN=%s: %d of %d packets arrived", i.MN, i.QN, i.Have, i.Want)
}
