package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// sseEvent is the part of an event (docs/contracts.md §5) the benchmark matches on.
type sseEvent struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	GatewayID string `json:"gateway_id"`
	AlarmKey  string `json:"alarm_key"`
}

// openStream opens GET /api/v1/events/stream as the officer (every type he may see) and
// returns once the centre answered 200. Each complete frame is passed to onEvent with the time
// its last line arrived, until ctx ends or the stream breaks; the channel then gets the reason.
func openStream(ctx context.Context, c *apiClient, onEvent func(at time.Time, e sseEvent)) (<-chan error, error) {
	q := url.Values{"token": {c.Token}}
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
func readFrames(r io.Reader, onEvent func(time.Time, sseEvent)) error {
	br := bufio.NewReaderSize(r, 256<<10)
	var id, typ string
	var data []byte
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return fmt.Errorf("event stream: a line longer than %d bytes", br.Size())
		}
		if err != nil {
			return fmt.Errorf("event stream ended: %w", err)
		}
		at := time.Now()
		s := strings.TrimRight(string(line), "\r\n")
		switch {
		case s == "":
			if len(data) > 0 {
				var e sseEvent
				if err := json.Unmarshal(data, &e); err != nil {
					return fmt.Errorf("event stream: frame %s: %w", id, err)
				}
				if e.ID != id || e.Type != typ {
					return fmt.Errorf("event stream: frame id %q event %q carries event %q of type %q", id, typ, e.ID, e.Type)
				}
				onEvent(at, e)
			}
			id, typ, data = "", "", data[:0]
		case strings.HasPrefix(s, ":"): // comment (keep-alive)
		case strings.HasPrefix(s, "id:"):
			id = strings.TrimSpace(s[3:])
		case strings.HasPrefix(s, "event:"):
			typ = strings.TrimSpace(s[6:])
		case strings.HasPrefix(s, "data:"):
			if len(data) > 0 {
				data = append(data, '\n')
			}
			data = append(data, strings.TrimPrefix(s[5:], " ")...)
		}
	}
}
