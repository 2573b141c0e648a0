package benchkit

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Frame is one Server-Sent Events frame with the time its last line arrived.
type Frame struct {
	At   time.Time
	ID   string
	Type string
	Data []byte // valid only during the callback
}

// OpenStream opens GET /api/v1/events/stream as the client's user with the extra query
// (e.g. type=…), and returns once the node answered 200: the subscription exists from then
// on. Each frame goes to onFrame until ctx ends, the stream breaks or onFrame fails; the
// channel then receives the reason.
func OpenStream(ctx context.Context, c *Client, query url.Values, onFrame func(Frame) error) (<-chan error, error) {
	q := url.Values{"token": {c.Token}}
	for k, v := range query {
		q[k] = v
	}
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
		done <- ReadFrames(resp.Body, onFrame)
	}()
	return done, nil
}

// ReadFrames parses Server-Sent Events frames (id:, event:, data:, blank line; comments are
// keep-alives) and hands each frame with data to onFrame.
func ReadFrames(r io.Reader, onFrame func(Frame) error) error {
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
				if err := onFrame(Frame{At: at, ID: id, Type: typ, Data: data}); err != nil {
					return err
				}
			}
			id, typ, data = "", "", data[:0]
		case strings.HasPrefix(s, ":"):
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
