package benchkit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Client calls the HTTP API of an Offsite node as one user.
type Client struct {
	Base  string
	Token string
	HTTP  *http.Client
}

// Do sends a request and decodes a 2xx JSON answer into out (if not nil); anything else is an
// error carrying the node's error body.
func (c *Client) Do(ctx context.Context, method, path, contentType string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// JSON sends in (if not nil) as a JSON body and decodes the answer into out.
func (c *Client) JSON(ctx context.Context, method, path string, in, out any) error {
	if in == nil {
		return c.Do(ctx, method, path, "", nil, out)
	}
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.Do(ctx, method, path, "application/json", b, out)
}

// Login returns a client acting as username.
func Login(ctx context.Context, base string, hc *http.Client, username, password string) (*Client, error) {
	c := &Client{Base: base, HTTP: hc}
	var lr struct{ Token string }
	if err := c.JSON(ctx, http.MethodPost, "/api/v1/auth/login", map[string]string{"username": username, "password": password}, &lr); err != nil {
		return nil, fmt.Errorf("login %s: %w", username, err)
	}
	c.Token = lr.Token
	return c, nil
}

// Metrics returns the node's Prometheus samples whose name starts with one of prefixes, keyed
// by the whole series (name and labels).
func (c *Client) Metrics(ctx context.Context, prefixes ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				i := strings.LastIndexByte(line, ' ')
				var v float64
				if _, err := fmt.Sscan(line[i+1:], &v); err == nil {
					out[line[:i]] = v
				}
			}
		}
	}
	return out, sc.Err()
}
