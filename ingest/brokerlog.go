package ingest

import (
	"context"
	"log/slog"
)

// brokerLog is the slog handler mochi-mqtt logs through: its records go to the gateway's
// logger with the component set, without packets (a packet attribute holds the whole payload:
// three refused 200 KB publishes used to add 2.4 MB to the log) and at levels that fit the
// gateway. What the broker hook refuses is counted and logged by the hook itself (once a
// second per client and reason), so mochi's own line about it is debug.
type brokerLog struct {
	next slog.Handler
}

func newBrokerLog(l *slog.Logger) *slog.Logger {
	return slog.New(&brokerLog{next: l.Handler()}).With("component", "mqtt")
}

func (h *brokerLog) Enabled(ctx context.Context, l slog.Level) bool {
	// Levels change below, so ask for the lowest one a record could end at.
	return h.next.Enabled(ctx, min(l, slog.LevelDebug))
}

// brokerLevel maps mochi's level for a message to the gateway's.
func brokerLevel(msg string, l slog.Level) slog.Level {
	switch msg {
	case "":
		// The listener's line for every connection that ends before its session starts
		// (refused login, rate limit, a peer that never sent CONNECT): already counted.
		return slog.LevelDebug
	case "error processing packet":
		// A refused or malformed packet from one client; the hook logs refusals with reason.
		return slog.LevelDebug
	case "added hook", "attached listener", "mochi mqtt starting", "mochi mqtt server started",
		"gracefully stopping server", "mochi mqtt server stopped":
		return slog.LevelDebug
	case "client store quota reached", "packet ids exhausted":
		return slog.LevelWarn
	}
	if l == slog.LevelWarn {
		return slog.LevelInfo // one client's trouble (e.g. a short keepalive), not the gateway's
	}
	return l
}

// dropAttr says whether an attribute may carry payload bytes.
func dropAttr(a slog.Attr) bool {
	switch a.Key {
	case "pk", "packet", "payload":
		return true
	}
	return false
}

func (h *brokerLog) Handle(ctx context.Context, r slog.Record) error {
	lvl := brokerLevel(r.Message, r.Level)
	if !h.next.Enabled(ctx, lvl) {
		return nil
	}
	msg := r.Message
	if msg == "" {
		msg = "mqtt connection ended"
	}
	out := slog.NewRecord(r.Time, lvl, msg, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if !dropAttr(a) {
			out.AddAttrs(a)
		}
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *brokerLog) WithAttrs(as []slog.Attr) slog.Handler {
	kept := make([]slog.Attr, 0, len(as))
	for _, a := range as {
		if !dropAttr(a) {
			kept = append(kept, a)
		}
	}
	return &brokerLog{next: h.next.WithAttrs(kept)}
}

func (h *brokerLog) WithGroup(name string) slog.Handler {
	return &brokerLog{next: h.next.WithGroup(name)}
}
