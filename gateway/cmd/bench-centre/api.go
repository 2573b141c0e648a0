package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// apiClient calls the centre's HTTP API as one user.
type apiClient struct {
	Base  string
	Token string
	HTTP  *http.Client
}

// do sends a request and decodes a 2xx JSON answer into out (if not nil); anything else is an
// error carrying the centre's error body.
func (c *apiClient) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
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

// login returns a client acting as username.
func login(ctx context.Context, base string, hc *http.Client, username, password string) (*apiClient, error) {
	c := &apiClient{Base: base, HTTP: hc}
	var lr struct{ Token string }
	if err := c.do(ctx, http.MethodPost, "/api/v1/auth/login", map[string]string{"username": username, "password": password}, &lr); err != nil {
		return nil, fmt.Errorf("login %s: %w", username, err)
	}
	c.Token = lr.Token
	return c, nil
}

// enrol enrols n site gateways (POST /api/v1/gateways, a few at a time) and returns them
// with the secret the centre generated for each.
func enrol(ctx context.Context, admin *apiClient, n int) ([]*site, error) {
	sites := make([]*site, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			id := fmt.Sprintf("bench-gw-%03d", i+1)
			var ans struct {
				ID     string `json:"id"`
				Secret string `json:"secret"`
			}
			err := admin.do(ctx, http.MethodPost, "/api/v1/gateways", map[string]any{"id": id,
				"name": fmt.Sprintf("基准测试 站点网关 %03d", i+1), "base_url": fmt.Sprintf("http://127.0.0.1:%d", 20000+i)}, &ans)
			if err == nil && (ans.ID != id || ans.Secret == "") {
				err = fmt.Errorf("enrol %s: answer has id %q and %d secret characters", id, ans.ID, len(ans.Secret))
			}
			errs[i] = err
			sites[i] = newSite(i, id, ans.Secret)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return sites, nil
}

// createOfficer creates an officer of the benchmark's department and logs in as him.
func createOfficer(ctx context.Context, admin *apiClient) (*apiClient, error) {
	var u struct {
		GeneratedPassword string `json:"generated_password"`
	}
	if err := admin.do(ctx, http.MethodPost, "/api/v1/users", map[string]any{"username": "bench-officer",
		"display_name": "基准测试 值班员", "role": "officer", "departments": []string{department}}, &u); err != nil {
		return nil, fmt.Errorf("create officer: %w", err)
	}
	return login(ctx, admin.Base, admin.HTTP, "bench-officer", u.GeneratedPassword)
}

// metrics returns the centre's Prometheus samples whose name starts with one of prefixes,
// keyed by the whole series (name and labels).
func (c *apiClient) metrics(ctx context.Context, prefixes ...string) (map[string]float64, error) {
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
