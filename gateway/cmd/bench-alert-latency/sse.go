package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/offsite-gw/offsite/internal/benchkit"
)

// sseEvent is the part of an event (docs/contracts.md §5) the benchmark matches on.
type sseEvent struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	State    string `json:"state"`
	AlarmKey string `json:"alarm_key"`
	Rule     string `json:"rule"`
	// OccurredAt of an alert.* event is the time inside the append transaction that made it.
	OccurredAt time.Time `json:"occurred_at"`
	Reading    *struct {
		Value float64 `json:"value"`
	} `json:"reading"`
}

// openStream opens GET /api/v1/events/stream for the given types and returns once the
// gateway answered 200 (the subscription exists from then on). Each event goes to onEvent with
// the time its frame's last line arrived, until ctx ends or the stream breaks; the returned
// channel then receives the reason.
func openStream(ctx context.Context, c *apiClient, types []string, onEvent func(at time.Time, e sseEvent)) (<-chan error, error) {
	return benchkit.OpenStream(ctx, c, url.Values{"type": {strings.Join(types, ",")}}, func(f benchkit.Frame) error {
		var e sseEvent
		if err := json.Unmarshal(f.Data, &e); err != nil {
			return fmt.Errorf("event stream: frame %s: %w", f.ID, err)
		}
		if e.ID != f.ID || e.Type != f.Type {
			return fmt.Errorf("event stream: frame id %q event %q carries event %q of type %q", f.ID, f.Type, e.ID, e.Type)
		}
		onEvent(f.At, e)
		return nil
	})
}
