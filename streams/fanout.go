package streams

import (
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
// block) keep their own goroutine, so one of them can never hold up a group; a member stays
// in its group until its session ends, which it does if its pair leaves the UDP port (a session
// never changes SRTP sender, see srtpdirect.go).
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

	// the goroutine's own state
	skipping bool
	work     []fanWork
	pending  []*Unit
}

type fanMember struct {
	s    *whepSession
	from uint64
}

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
			g.dispatch(u)
		}
	}
}

// fanWork is a member's progress through the units of one dispatch.
type fanWork struct {
	fanMember
	done int // units of pending written (or not due) to this member
}

// maxPending bounds how many units one dispatch takes on while it runs, so that a group that
// cannot keep up still returns to its loop (and its lag rule skips ahead).
const maxPending = 8

// dispatch writes u, and the units that arrive meanwhile, to every member. A unit that arrives
// while an earlier one is still going out — typically a small frame behind a keyframe, which is
// about a hundred packets per member — goes at once to the members that already have
// everything before it, and to the others right after the earlier unit. Every member still gets
// its units in order, but the frames after a keyframe do not all wait for its last viewer.
func (g *fanout) dispatch(u *Unit) {
	work := g.work[:0]
	for _, m := range g.snapshot() {
		work = append(work, fanWork{fanMember: m})
	}
	pending := g.pending[:0]
	if g.admit(u, work) {
		pending = append(pending, u)
	}
	for pos := 0; pos < len(work) && len(pending) > 0; pos++ {
		g.deliver(&work[pos], pending)
		for len(pending) < maxPending && len(g.r.C()) > 0 {
			v := <-g.r.C() // this goroutine is the only receiver
			if !g.admit(v, work) {
				continue
			}
			pending = append(pending, v)
			work = g.addJoined(work)
			for j := 0; j <= pos; j++ {
				g.deliver(&work[j], pending)
			}
		}
	}
	clear(pending)
	clear(work)
	g.pending, g.work = pending[:0], work[:0]
}

// admit applies the group's lag rule to a unit just received: a group behind by more than
// MaxLag skips to the next fresh keyframe, as a single viewer would; a skipped unit is counted
// for every member it was due to.
func (g *fanout) admit(u *Unit, work []fanWork) bool {
	lag := time.Since(u.Received)
	if !g.skipping && lag > g.w.MaxLag {
		g.skipping = true
	}
	if g.skipping && u.Kind == UnitVideo && u.Keyframe && lag < g.w.MaxLag/2 {
		g.skipping = false
	}
	if !g.skipping {
		return true
	}
	for i := range work {
		if u.seq >= work[i].from {
			work[i].s.lagDropped.Add(uint64(len(u.Packets)))
		}
	}
	return false
}

// addJoined appends the members that joined since work was made.
func (g *fanout) addJoined(work []fanWork) []fanWork {
	list := g.snapshot()
	if len(list) == 0 {
		return work
	}
	known := make(map[*whepSession]bool, len(work))
	for i := range work {
		known[work[i].s] = true
	}
	for _, m := range list {
		if !known[m.s] {
			work = append(work, fanWork{fanMember: m})
		}
	}
	return work
}

// deliver writes to one member the pending units it does not have yet.
func (g *fanout) deliver(w *fanWork, pending []*Unit) {
	for ; w.done < len(pending); w.done++ {
		u := pending[w.done]
		if u.seq < w.from {
			continue // the member sent it itself before the hand-over
		}
		s := w.s
		s.sendMu.Lock()
		var err error
		if s.group == g {
			err = s.writeUnit(u)
		}
		s.sendMu.Unlock()
		if err != nil {
			go s.close(writeFailed(err))
		}
	}
}
