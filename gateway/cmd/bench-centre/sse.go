package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/offsite-gw/offsite/internal/benchkit"
)

// sseEvent is the part of an event (docs/contracts.md §5) the benchmark matches on.
type sseEvent struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	GatewayID string `json:"gateway_id"`
	AlarmKey  string `json:"alarm_key"`
}

// openStream opens GET /api/v1/events/stream as the officer (every type he may see) and
// returns once the centre answered 200. Each event goes to onEvent with the time its frame's
// last line arrived, until ctx ends or the stream breaks; the channel then gets the reason.
func openStream(ctx context.Context, c *apiClient, onEvent func(at time.Time, e sseEvent)) (<-chan error, error) {
	return benchkit.OpenStream(ctx, c, nil, func(f benchkit.Frame) error {
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
