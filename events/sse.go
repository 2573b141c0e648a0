package events

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/errs"
)

// SSEStart resolves where a Server-Sent Events client starts: after the event named by the
// Last-Event-ID header (or the last_event_id query parameter, for EventSource polyfills),
// otherwise at the head of the log (only new events). An id the log does not hold is
// errs.KindNotFound, so the client learns it cannot resume instead of silently missing events.
func (f *Feed) SSEStart(ctx context.Context, r *http.Request) (int64, error) {
	id := strings.TrimSpace(r.Header.Get("Last-event.Event-ID"))
	if id == "" {
		id = r.URL.Query().Get("last_event_id")
	}
	if id == "" {
		head, _ := f.Log.Head()
		return head, nil
	}
	if len(id) != 26 {
		return 0, errs.E(errs.KindInvalid, "invalid_last_event_id", "Last-event.Event-ID %q is not an event id", id)
	}
	return f.Log.SeqOf(ctx, id)
}

// ServeSSE streams events after afterSeq that pass filter as text/event-stream until the
// client goes away: "id: <ULID>", "event: <type>", "data: <event JSON>". A comment line is
// sent every heartbeat (default 15s) so proxies keep the connection open. Authentication and
// scope are the caller's: pass ScopeFilter(user scope, query filter).
func (f *Feed) ServeSSE(w http.ResponseWriter, r *http.Request, afterSeq int64, filter func(*event.Event) bool, heartbeat time.Duration) {
	if heartbeat <= 0 {
		heartbeat = 15 * time.Second
	}
	flusher, _ := w.(http.Flusher)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("retry: 2000\n\n"))
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	flush()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	ch := f.Subscribe(ctx, afterSeq, filter)
	t := time.NewTicker(heartbeat)
	defer t.Stop()
	buf := make([]byte, 0, 4096)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return
			}
			buf = buf[:0]
			buf = append(buf, "id: "...)
			buf = append(buf, e.ID...)
			buf = append(buf, "\nevent: "...)
			buf = append(buf, e.Type...)
			buf = append(buf, "\ndata: "...)
			buf = append(buf, e.Raw...) // compact JSON: no newlines
			buf = append(buf, "\n\n"...)
			// Batch whatever is already waiting into one write.
			for more := true; more && len(buf) < 64<<10; {
				select {
				case e, ok := <-ch:
					if !ok {
						more = false
						break
					}
					buf = append(buf, "id: "...)
					buf = append(buf, e.ID...)
					buf = append(buf, "\nevent: "...)
					buf = append(buf, e.Type...)
					buf = append(buf, "\ndata: "...)
					buf = append(buf, e.Raw...)
					buf = append(buf, "\n\n"...)
				default:
					more = false
				}
			}
			_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := w.Write(buf); err != nil {
				return
			}
			flush()
		case <-t.C:
			_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
				return
			}
			flush()
		case <-ctx.Done():
			return
		}
	}
}
