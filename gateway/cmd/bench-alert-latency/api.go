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
	"time"
)

// apiClient calls the gateway's HTTP API as one user.
type apiClient struct {
	Base  string
	Token string
	HTTP  *http.Client
}

// do sends a request and decodes a 2xx JSON answer into out (if not nil); anything else is an
// error carrying the gateway's error body.
func (c *apiClient) do(ctx context.Context, method, path, contentType string, body []byte, out any) error {
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

func (c *apiClient) postJSON(ctx context.Context, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, path, "application/json", b, out)
}

// login returns a client acting as username.
func login(ctx context.Context, base string, hc *http.Client, username, password string) (*apiClient, error) {
	c := &apiClient{Base: base, HTTP: hc}
	var lr struct{ Token string }
	if err := c.postJSON(ctx, "/api/v1/auth/login", map[string]string{"username": username, "password": password}, &lr); err != nil {
		return nil, fmt.Errorf("login %s: %w", username, err)
	}
	c.Token = lr.Token
	return c, nil
}

// metrics returns the gateway's Prometheus samples whose name starts with one of prefixes,
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

// fleet is what the benchmark registers: one site of gas detectors (the alarm path) and one
// construction site of dust monitors (the background).
type fleet struct {
	Gas, Background []sensor
}

type sensor struct {
	ID, Site, Topic, Username, Secret string
}

func newFleet(gas, background int) fleet {
	var f fleet
	mk := func(site, prefix string, i int) sensor {
		id := fmt.Sprintf("%s-%03d", prefix, i)
		return sensor{ID: id, Site: site, Topic: "offsite/" + site + "/" + id + "/up", Username: id,
			Secret: "bench-secret-" + id + "-7Qx2"}
	}
	for i := range gas {
		f.Gas = append(f.Gas, mk("bench-kitchen", "gas", i))
	}
	for i := range background {
		f.Background = append(f.Background, mk("bench-construction", "dust", i))
	}
	return f
}

// csv is the device sheet (devices/README.md) that registers the fleet in one import.
func (f fleet) csv() []byte {
	var b bytes.Buffer
	b.WriteString("site_id,site_name,region_code,department,supervision_items,device_id,kind,name,profile,firmware,mqtt_username,mqtt_secret\n")
	for _, s := range f.Gas {
		fmt.Fprintf(&b, "%s,基准测试 美食城后厨,410702,市应急管理局,410702-YJ-RQ-001,%s,sensor,可燃气体探测器 %s,gas-detector,V2.0.1,%s,%s\n",
			s.Site, s.ID, s.ID, s.Username, s.Secret)
	}
	for _, s := range f.Background {
		fmt.Fprintf(&b, "%s,基准测试 建筑工地,410702,市住房和城乡建设局,410702-ZJ-YC-001,%s,sensor,扬尘噪声监测仪 %s,dust-noise-monitor,V3.0.1,%s,%s\n",
			s.Site, s.ID, s.ID, s.Username, s.Secret)
	}
	return b.Bytes()
}

// register imports the fleet and creates the officer who watches the event stream; it
// returns the officer's client.
func register(ctx context.Context, admin *apiClient, f fleet) (*apiClient, error) {
	var res struct{ Sites, Devices int }
	if err := admin.do(ctx, http.MethodPost, "/api/v1/devices/import", "text/csv", f.csv(), &res); err != nil {
		return nil, fmt.Errorf("import devices: %w", err)
	}
	if res.Devices != len(f.Gas)+len(f.Background) {
		return nil, fmt.Errorf("import devices: %d imported, want %d", res.Devices, len(f.Gas)+len(f.Background))
	}
	var u struct {
		GeneratedPassword string `json:"generated_password"`
	}
	if err := admin.postJSON(ctx, "/api/v1/users", map[string]any{"username": "bench-officer", "display_name": "基准测试 值班员",
		"role": "officer", "departments": []string{"市应急管理局"}}, &u); err != nil {
		return nil, fmt.Errorf("create officer: %w", err)
	}
	return login(ctx, admin.Base, admin.HTTP, "bench-officer", u.GeneratedPassword)
}

// waitRouted waits until the broker accepts the device's login: the gateway's topic directory
// reloads devices every few seconds, and until then it refuses them.
func waitRouted(ctx context.Context, broker string, s sensor, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		cl, err := connect(broker, s)
		if err == nil {
			cl.Disconnect(50)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the broker still refuses %s after %s: %w", s.ID, limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
