package ingest

import "time"

// backlogger is a Sink that can tell it holds more readings than it writes at once.
type backlogger interface {
	Backlogged() bool
}

// Backlogged reports whether the pipeline is behind: a quarter of its queue is taken, or its
// sink holds more readings than it writes at once (SQLiteTelemetry). A source that can hold
// its input back without losing it waits while this is true instead of piling up readings the
// sink would drop when its buffer is full: the HJ 212 listener stops reading, so the station's
// TCP window closes and its data logger keeps the data until the gateway reads again.
func (p *Pipeline) Backlogged() bool {
	if p.inflight.Load() > int64(p.QueueSize/4) {
		return true
	}
	b, ok := p.Sink.(backlogger)
	return ok && b.Backlogged()
}

// waitRoom returns once the pipeline is not backlogged, or the listener closes. One connection
// polls; the others wait on the mutex behind it, so a thousand stalled stations cost nothing.
func (l *HJ212Listener) waitRoom() {
	if !l.Pipeline.Backlogged() {
		return
	}
	l.roomMu.Lock()
	defer l.roomMu.Unlock()
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for l.Pipeline.Backlogged() {
		select {
		case <-l.closed:
			return
		case <-t.C:
		}
	}
}
