package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
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
// gateway answered 200 (the subscription exists from then on). Each complete frame is passed
// to onEvent with the time its last line arrived, until ctx ends or the stream breaks; the
// returned channel then receives the reason.
func openStream(ctx context.Context, c *apiClient, types []string, onEvent func(at time.Time, e sseEvent)) (<-chan error, error) {
	q := url.Values{"token": {c.Token}, "type": {strings.Join(types, ",")}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+"/api/v1/events/stream?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := (&http.Client{}).Do(req) // no timeout: the stream lives as long as ctx
	if err != nil {
		return nil, fmt.Errorf("event stream: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("event stream: %s", resp.Status)
	}
	done := make(chan error, 1)
	go func() {
		defer resp.Body.Close()
		done <- readFrames(resp.Body, onEvent)
	}()
	return done, nil
}

// readFrames parses Server-Sent Events frames (id:, event:, data:, blank line) and decodes
// the data of each as an event.
func readFrames(r interface{ Read([]byte) (int, error) }, onEvent func(time.Time, sseEvent)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var id, typ string
	var data strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("event stream ended: %w", err)
		}
		at := time.Now()
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if data.Len() > 0 {
				var e sseEvent
				if err := json.Unmarshal([]byte(data.String()), &e); err != nil {
					return fmt.Errorf("event stream: frame %s: %w", id, err)
				}
				if e.ID != id || e.Type != typ {
					return fmt.Errorf("event stream: frame id %q event %q carries event %q of type %q", id, typ, e.ID, e.Type)
				}
				onEvent(at, e)
			}
			id, typ = "", ""
			data.Reset()
		case strings.HasPrefix(line, ":"): // comment (keep-alive)
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimSpace(line[3:])
		case strings.HasPrefix(line, "event:"):
			typ = strings.TrimSpace(line[6:])
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(line[5:], " "))
		}
	}
}
