package streams

import (
	"errors"
	"runtime"
	"sync"
	"time"
)

// Fan-out groups. A viewer starts on its own hub reader and goroutine, which sends the cached
// GOP paced and catches up with the live edge. Once it is there and its media go out on the
// direct SRTP path, it hands its place over to one of a few fan-out groups per camera (one per
// CPU): a group is one hub reader and one goroutine that writes each unit to all of its
// members in turn. With hundreds of viewers this spares a goroutine wake-up, a channel hand-off
// and a select per frame and viewer (about a fifth of the relay's CPU at 500 viewers), and the
// frame's work is split evenly over the CPUs. Viewers on pion's path (ICE-TCP, whose writes can
// block) keep their own goroutine, so one of them can never hold up a group.
//
// The hand-over happens under the hub's lock (Hub.handover), so a member gets every unit
// exactly once and in order: up to the hand-over from its own goroutine, after it from the
// group. A group that falls behind behaves like any slow reader: its members skip to the next
// keyframe together. A session's send state is guarded by its sendMu, which the group holds
// while writing to it, and by which the session leaves.

type fanout struct {
	w   *WHEP
	hub *Hub
	r   *Reader

	mu      sync.Mutex
	members map[*whepSession]uint64 // → sequence number of the first unit it takes from the group
	list    []fanMember             // snapshot of members for the goroutine; nil when stale
	stopped bool
	quit    chan struct{}
}

type fanMember struct {
	s    *whepSession
	from uint64
}

// errNoDirect: the member has no directly writable pair at the moment (e.g. it moved to
// ICE-TCP); the group does not write through pion for it, the session takes itself back.
var errNoDirect = errors.New("no direct path")

// fanoutFor returns a running group of hub with the fewest members, starting one while there
// are fewer than one per CPU.
func (w *WHEP) fanoutFor(h *Hub) *fanout {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	var best *fanout
	bestN := 0
	for _, g := range w.fanouts[h] {
		g.mu.Lock()
		n, stopped := len(g.members), g.stopped
		g.mu.Unlock()
		if !stopped && (best == nil || n < bestN) {
			best, bestN = g, n
		}
	}
	if best != nil && (bestN == 0 || len(w.fanouts[h]) >= runtime.GOMAXPROCS(0)) {
		return best
	}
	g := &fanout{w: w, hub: h, members: map[*whepSession]uint64{}, quit: make(chan struct{})}
	g.r = h.AddReader(ReaderOptions{FromNow: true, Shared: true})
	w.fanouts[h] = append(w.fanouts[h], g)
	w.wg.Add(1)
	go g.run()
	return g
}

// add makes s a member from unit next on; called under the hub's lock by Hub.handover.
func (g *fanout) add(s *whepSession, next uint64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return false
	}
	g.members[s] = next
	g.list = nil
	g.r.members.Store(int64(len(g.members))) // no callback under the hub's lock; handover calls it
	return true
}

// remove ends s's membership; the group writes nothing more to s after it returns. A group
// left empty stops.
func (g *fanout) remove(s *whepSession) {
	s.sendMu.Lock()
	s.group = nil
	s.sendMu.Unlock()
	g.mu.Lock()
	delete(g.members, s)
	g.list = nil
	n := len(g.members)
	if n == 0 && !g.stopped {
		g.stopped = true
		close(g.quit)
	}
	g.mu.Unlock()
	g.r.SetConsumers(n)
}

// stopIfEmpty stops a group nobody joined after all.
func (g *fanout) stopIfEmpty() {
	g.mu.Lock()
	if len(g.members) == 0 && !g.stopped {
		g.stopped = true
		close(g.quit)
	}
	g.mu.Unlock()
}

func (g *fanout) snapshot() []fanMember {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.list == nil {
		g.list = make([]fanMember, 0, len(g.members))
		for s, from := range g.members {
			g.list = append(g.list, fanMember{s, from})
		}
	}
	return g.list
}

func (g *fanout) run() {
	defer g.w.wg.Done()
	defer func() {
		g.r.Close()
		g.w.mu.Lock()
		gs := g.w.fanouts[g.hub]
		for i := range gs {
			if gs[i] == g {
				gs = append(gs[:i], gs[i+1:]...)
				break
			}
		}
		if len(gs) == 0 {
			delete(g.w.fanouts, g.hub)
		} else {
			g.w.fanouts[g.hub] = gs
		}
		g.w.mu.Unlock()
	}()
	skipping := false
	for {
		select {
		case <-g.quit:
			return
		case <-g.w.quit: // the relay is closing; its sessions end, each leaving the group
			g.mu.Lock()
			g.stopped = true
			g.mu.Unlock()
			return
		case <-g.r.Done():
			g.mu.Lock()
			g.stopped = true
			g.mu.Unlock()
			for _, m := range g.snapshot() {
				go m.s.close("camera removed")
			}
			return
		case u := <-g.r.C():
			// a group behind by more than MaxLag skips to the next fresh keyframe, as a
			// single viewer would
			lag := time.Since(u.Received)
			if !skipping && lag > g.w.MaxLag {
				skipping = true
			}
			if skipping && u.Kind == UnitVideo && u.Keyframe && lag < g.w.MaxLag/2 {
				skipping = false
			}
			for _, m := range g.snapshot() {
				if u.seq < m.from {
					continue // the member sent it itself before the hand-over
				}
				if skipping {
					m.s.lagDropped.Add(uint64(len(u.Packets)))
					continue
				}
				s := m.s
				s.sendMu.Lock()
				var err error
				if s.group == g {
					err = s.writeUnit(u, true)
				}
				s.sendMu.Unlock()
				switch {
				case errors.Is(err, errNoDirect):
					s.lagDropped.Add(uint64(len(u.Packets)))
				case err != nil:
					go s.close("write failed: " + err.Error())
				}
			}
		}
	}
}
