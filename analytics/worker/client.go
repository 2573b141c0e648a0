package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/offsite-gw/offsite/analytics/lease"
	"github.com/offsite-gw/offsite/events/event"
)

// Client speaks to the gateway's HTTP API as a service user: login, leases, evidence, events.
type Client struct {
	BaseURL  string // e.g. http://127.0.0.1:8080
	Username string
	Password string
	HTTP     *http.Client

	mu    sync.Mutex
	token string
}

// APIError is an error answer of the gateway ({"error":{"code","message"}}).
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("gateway: %d %s: %s", e.Status, e.Code, e.Message)
}

// Permanent reports whether retrying the same request cannot help (4xx other than 401/408/429).
func Permanent(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 && ae.Status != 401 && ae.Status != 408 && ae.Status != 429
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 15 * time.Second}
}

// Login gets a token.
func (c *Client) Login(ctx context.Context) error {
	body, _ := json.Marshal(map[string]string{"username": c.Username, "password": c.Password})
	var out struct {
		Token string `json:"token"`
	}
	if err := c.do(ctx, http.MethodPost, "/api/v1/auth/login", "application/json", body, &out, false); err != nil {
		return err
	}
	if out.Token == "" {
		return errors.New("gateway: login answered without a token")
	}
	c.mu.Lock()
	c.token = out.Token
	c.mu.Unlock()
	return nil
}

func (c *Client) call(ctx context.Context, method, path, ctype string, body []byte, out any) error {
	c.mu.Lock()
	tok := c.token
	c.mu.Unlock()
	if tok == "" {
		if err := c.Login(ctx); err != nil {
			return err
		}
	}
	err := c.do(ctx, method, path, ctype, body, out, true)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
		if err := c.Login(ctx); err != nil {
			return err
		}
		err = c.do(ctx, method, path, ctype, body, out, true)
	}
	return err
}

func (c *Client) do(ctx context.Context, method, path, ctype string, body []byte, out any, auth bool) error {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if auth {
		c.mu.Lock()
		req.Header.Set("Authorization", "Bearer "+c.token)
		c.mu.Unlock()
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return fmt.Errorf("gateway: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("gateway: %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var eb struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(b, &eb)
		if eb.Error.Message == "" {
			eb.Error.Message = strings.TrimSpace(string(b))
		}
		return &APIError{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("gateway: %s %s: answer: %w", method, path, err)
		}
	}
	return nil
}

// Acquire renews the worker's leases and returns its cameras (POST /api/v1/analytics/leases).
func (c *Client) Acquire(ctx context.Context, workerID string, capacity int) (lease.Grant, error) {
	body, _ := json.Marshal(map[string]any{"worker_id": workerID, "capacity": capacity})
	var g lease.Grant
	err := c.call(ctx, http.MethodPost, "/api/v1/analytics/leases", "application/json", body, &g)
	return g, err
}

// Release gives up all the worker's leases (DELETE /api/v1/analytics/leases/{worker}).
func (c *Client) Release(ctx context.Context, workerID string) error {
	return c.call(ctx, http.MethodDelete, "/api/v1/analytics/leases/"+urlPathEscape(workerID), "", nil, nil)
}

// PutEvidence uploads a JPEG (POST /api/v1/evidence) and returns its sha256 and URL.
func (c *Client) PutEvidence(ctx context.Context, jpeg []byte) (sum, url string, err error) {
	var out struct {
		SHA256 string `json:"sha256"`
		URL    string `json:"url"`
	}
	err = c.call(ctx, http.MethodPost, "/api/v1/evidence", "image/jpeg", jpeg, &out)
	return out.SHA256, out.URL, err
}

// PostEvent logs an event (POST /api/v1/events). The worker fills type, severity, state,
// occurred_at, device, site, reading, evidence, alarm key, rule and message; the gateway adds
// id, its gateway id (it drops the empty one sent), site details, department and supervision
// item.
func (c *Client) PostEvent(ctx context.Context, ev event.Event) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	return c.call(ctx, http.MethodPost, "/api/v1/events", "application/json", body, nil)
}

func urlPathEscape(s string) string {
	r := strings.NewReplacer("/", "%2F", "?", "%3F", "#", "%23", " ", "%20", "%", "%25")
	return r.Replace(s)
}

// Severity of each video event type.
func Severity(typ string) string {
	switch typ {
	case event.TypeVideoStaffAbsent:
		return "minor"
	default:
		return "major"
	}
}
