package main_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/emmansun/gmsm/sm3"
	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/events/uplink/provincesim"
)

// province is a receiver standing in for the provincial platform, outside the demo: it checks
// every request's HMAC-SM3 itself (with gmsm, not with the project's verifier) before handing
// it to provincesim, which de-duplicates and keeps what it accepted.
type province struct {
	secret   string
	handler  *provincesim.Handler
	srv      *provincesim.Server
	verified atomic.Int64
	badSig   atomic.Int64
}

func startProvince(t *testing.T, secret string) *province {
	t.Helper()
	p := &province{secret: secret}
	p.handler = &provincesim.Handler{Secret: []byte(secret)}
	require.NoError(t, p.handler.Initialize())
	p.srv = &provincesim.Server{Addr: "127.0.0.1:0", Handler: http.HandlerFunc(p.serve)}
	require.NoError(t, p.srv.Start())
	t.Cleanup(p.srv.Stop)
	return p
}

func (p *province) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		sum := sha256.Sum256(body)
		m := hmac.New(sm3.New, []byte(p.secret))
		m.Write([]byte(r.Header.Get("X-Offsite-Timestamp") + "\n" + r.Header.Get("X-Offsite-Nonce") + "\n" + hex.EncodeToString(sum[:])))
		if r.Header.Get("X-Offsite-Signature") == "hmac-sm3="+hex.EncodeToString(m.Sum(nil)) {
			p.verified.Add(1)
		} else {
			p.badSig.Add(1)
		}
	}
	p.handler.ServeHTTP(w, r)
}

// events returns what the province accepted, by id.
func (p *province) events() map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, r := range p.handler.Received() {
		var e map[string]any
		_ = json.Unmarshal(r.Event, &e)
		out[r.ID] = e
	}
	return out
}

// startCity runs the demo city (a centre and two site gateways as three processes) with its
// province uplink delivering to p.
func startCity(t *testing.T, p *province) (string, demoJSON, *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	seed, _ := json.Marshal(map[string]any{"province": map[string]string{"alg": "hmac-sm3", "secret": p.secret}})
	require.NoError(t, os.WriteFile(filepath.Join(dir, "demo.json"), seed, 0o600))
	time.Sleep(10 * time.Millisecond) // the demo's demo.json must be newer than the seed
	_, dj, out := startDemo(t, dir, "--province-url", p.srv.URL())
	require.Len(t, dj.Gateways, 2, "demo.json names the two site gateways")
	require.Equal(t, dj.HTTP, dj.Centre.HTTP, "top-level http is the centre's")
	return dir, dj, out
}

func siteOf(t *testing.T, dj demoJSON, id string) (http string, users []demoUserJSON) {
	for _, g := range dj.Gateways {
		if g.ID == id {
			return g.HTTP, g.Users
		}
	}
	t.Fatalf("no gateway %s in demo.json", id)
	return "", nil
}

func userPassword(users []demoUserJSON, name string) string {
	for _, u := range users {
		if u.Username == name {
			return u.Password
		}
	}
	return ""
}

// sse reads an SSE stream into a channel of (type, data) until ctx ends.
type sseEvent struct {
	Type string
	Data map[string]any
	At   time.Time
}

func openSSE(t *testing.T, ctx context.Context, url, token string) <-chan sseEvent {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)
	ch := make(chan sseEvent, 1024)
	go func() {
		defer resp.Body.Close()
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var typ string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event:"):
				typ = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
			case strings.HasPrefix(line, "data:"):
				var d map[string]any
				if json.Unmarshal([]byte(strings.TrimSpace(strings.TrimPrefix(line, "data:"))), &d) == nil {
					if typ == "" {
						typ, _ = d["type"].(string)
					}
					ch <- sseEvent{Type: typ, Data: d, At: time.Now()}
				}
				typ = ""
			}
		}
	}()
	return ch
}

// A gas reading over the limit at a site gateway becomes an alert at the centre that an
// officer of the right department receives over SSE, works through at the centre, and the
// province receives the reading's event and every alert step, each naming its gateway.
func TestCityReadingBecomesAlertAtCentreAndReachesProvince(t *testing.T) {
	p := startProvince(t, "province-secret-"+ulid.Make().String())
	_, dj, out := startCity(t, p)
	centre := dj.HTTP
	admin := login(t, centre, "admin", password(dj, "admin"))

	// An officer of 市应急管理局, who supervises gas detectors.
	code, body := post(t, centre+"/api/v1/users", admin, `{"username":"officer-gas","password":"Gas-officer-2026!","role":"officer","departments":["市应急管理局"]}`)
	require.Equal(t, 201, code, string(body))
	officer := login(t, centre, "officer-gas", "Gas-officer-2026!")

	// The centre knows both sites and their devices from the inventories.
	require.Eventually(t, func() bool {
		code, body := get(t, centre+"/api/v1/gateways", admin)
		var gws []struct {
			ID, State string
			Devices   int
		}
		if code != 200 || json.Unmarshal(body, &gws) != nil || len(gws) != 2 {
			return false
		}
		for _, g := range gws {
			if g.State != "online" || g.Devices == 0 {
				return false
			}
		}
		return true
	}, 60*time.Second, 200*time.Millisecond, "both site gateways report in")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream := openSSE(t, ctx, centre+"/api/v1/events/stream?type=alert.", officer)

	var gas struct{ ID, Site, Topic, MQTT, User, Pass string }
	for _, s := range dj.Sensors {
		if s.ID == "gas-02-kitchen" {
			gas.ID, gas.Site, gas.Topic, gas.MQTT, gas.User, gas.Pass = s.ID, s.Site, s.Topic, s.MQTT, s.MQTTUsername, s.MQTTPassword
			require.Equal(t, "demo-gw-city", s.Gateway)
		}
	}
	require.NotEmpty(t, gas.MQTT, "the gas detector names its site gateway's broker")
	opts := paho.NewClientOptions().AddBroker(gas.MQTT).SetClientID("test-gas-publisher").SetUsername(gas.User).SetPassword(gas.Pass)
	cl := paho.NewClient(opts)
	tok := cl.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second) && tok.Error() == nil, "connect: %v", tok.Error())
	defer cl.Disconnect(100)
	sent := time.Now()
	pub := cl.Publish(gas.Topic, 1, false, fmt.Sprintf(`{"ts": %d, "gas": {"lel": 35.0, "fault": 0}}`, sent.UnixMilli()))
	require.True(t, pub.WaitTimeout(10*time.Second) && pub.Error() == nil)

	var opened sseEvent
	deadline := time.After(60 * time.Second)
	for opened.Type == "" {
		select {
		case e, ok := <-stream:
			require.True(t, ok, "stream ended")
			if e.Type == "alert.opened" {
				if dev, _ := e.Data["device"].(map[string]any); dev != nil && dev["id"] == gas.ID {
					opened = e
				}
			}
		case <-deadline:
			t.Fatalf("no alert.opened for %s at the centre\n%s", gas.ID, out.String())
		}
	}
	latency := opened.At.Sub(sent)
	t.Logf("MQTT reading at the site → officer's SSE at the centre: %s", latency)
	alertRef := opened.Data["alert"].(map[string]any)
	alertID := alertRef["id"].(string)
	require.Equal(t, "demo-centre", opened.Data["gateway_id"], "the centre opened the alert")

	// The officer works the alert at the centre.
	for _, step := range []struct{ action, body string }{
		{"claim", `{"note":"已派员核查"}`},
		{"handle", `{"note":"现场关阀通风"}`},
		{"feedback", `{"outcome":"rectify_ordered","note":"责令整改燃气管道"}`},
		{"close", `{"note":"复查正常"}`},
	} {
		code, body := post(t, centre+"/api/v1/alerts/"+alertID+"/"+step.action, officer, step.body)
		require.Equal(t, 200, code, "%s: %s", step.action, body)
	}

	// Another department's officer does not see it.
	other := login(t, centre, "officer", password(dj, "officer"))
	code, body = get(t, centre+"/api/v1/alerts/"+alertID, other)
	require.Equal(t, 404, code, string(body))

	// The province gets the reading's event from the site and every step from the centre,
	// signed by the centre (checked here with gmsm's HMAC-SM3).
	var threshold string
	require.Eventually(t, func() bool {
		evs := p.events()
		steps := map[string]bool{}
		threshold = ""
		for id, e := range evs {
			if dev, _ := e["device"].(map[string]any); e["type"] == "sensor.threshold" && dev != nil && dev["id"] == gas.ID {
				if e["gateway_id"] != "demo-gw-city" {
					t.Fatalf("the reading's event names gateway %v, want demo-gw-city", e["gateway_id"])
				}
				threshold = id
			}
			if a, _ := e["alert"].(map[string]any); a != nil && a["id"] == alertID {
				if e["gateway_id"] != "demo-centre" {
					t.Fatalf("%s names gateway %v, want demo-centre", e["type"], e["gateway_id"])
				}
				steps[e["type"].(string)] = true
			}
		}
		return threshold != "" && steps["alert.opened"] && steps["alert.claimed"] && steps["alert.handled"] && steps["alert.fed_back"] && steps["alert.closed"]
	}, 60*time.Second, 250*time.Millisecond, "the province receives the event and every alert step")
	require.Positive(t, p.verified.Load())
	require.Zero(t, p.badSig.Load(), "every request to the province carries a valid HMAC-SM3")

	// Scope at the centre holds across gateways: each officer sees only his department's
	// sites and devices, whichever site gateway reported them.
	for _, c := range []struct{ user, site, gateway string }{
		{"officer", "hq-construction-07", "demo-gw-city"},
		{"officer-hall", "hq-service-hall", "demo-gw-hall"},
		{"officer-market", "hq-market-02", "demo-gw-city"},
	} {
		tok := login(t, centre, c.user, password(dj, c.user))
		code, body := get(t, centre+"/api/v1/sites", tok)
		require.Equal(t, 200, code)
		var sites struct {
			Sites []struct{ ID, Gateway string }
		}
		require.NoError(t, json.Unmarshal(body, &sites))
		require.Len(t, sites.Sites, 1, "%s: %s", c.user, body)
		require.Equal(t, c.site, sites.Sites[0].ID)
		require.Equal(t, c.gateway, sites.Sites[0].Gateway)
		code, body = get(t, centre+"/api/v1/devices", tok)
		require.Equal(t, 200, code)
		var devs struct {
			Devices []struct {
				ID      string
				SiteID  string `json:"site_id"`
				Gateway string
			}
		}
		require.NoError(t, json.Unmarshal(body, &devs))
		require.NotEmpty(t, devs.Devices)
		for _, d := range devs.Devices {
			require.Equal(t, c.site, d.SiteID, "%s sees %s of another site", c.user, d.ID)
			require.Equal(t, c.gateway, d.Gateway)
		}
		code, body = get(t, centre+"/api/v1/alerts", tok)
		require.Equal(t, 200, code)
		require.NotContains(t, string(body), alertID, "%s sees the gas alert of 市应急管理局", c.user)
	}
}

// Kill -9 a site gateway while it sends 10,000 events, and the centre while it receives them:
// after the restarts every event the site logged is at the centre once with the same
// content, and every event the centre has reaches the province.
func TestCityLosesNothingWhenSiteAndCentreAreKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes under load")
	}
	p := startProvince(t, "province-secret-"+ulid.Make().String())
	dir, dj, out := startCity(t, p)
	site, siteUsers := siteOf(t, dj, "demo-gw-hall")
	svcPw := userPassword(siteUsers, "analytics")

	// The province is down the whole time the sites send: intake at the centre must not wait
	// for it.
	p.handler.SetDown(true)

	const total = 10000
	ids := make([]string, total)
	for i := range ids {
		ids[i] = ulid.Make().String()
	}
	var next, posted atomic.Int64
	var wg sync.WaitGroup
	tokenMu := sync.Mutex{}
	token := login(t, site, "analytics", svcPw)
	post1 := func(i int) {
		body := fmt.Sprintf(`{"id":%q,"type":"test.load","severity":"info","occurred_at":%q,"message":"负载 %d"}`,
			ids[i], time.Now().UTC().Format(time.RFC3339Nano), i)
		for attempt := 0; ; attempt++ {
			tokenMu.Lock()
			tk := token
			tokenMu.Unlock()
			req, _ := http.NewRequest("POST", site+"/api/v1/events", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tk)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 201 {
					posted.Add(1)
					return
				}
				if resp.StatusCode == 409 {
					t.Errorf("event %s refused as a conflict on retry", ids[i])
					return
				}
			}
			if attempt > 600 {
				t.Errorf("event %d not accepted after retries", i)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				post1(i)
			}
		}()
	}

	ready := func(node string) struct{ PID int } {
		var r struct{ PID int }
		b, err := os.ReadFile(filepath.Join(dir, node, "ready.json"))
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &r))
		require.Positive(t, r.PID)
		return r
	}
	waitFor := func(n int64) {
		require.Eventually(t, func() bool { return posted.Load() >= n }, 3*time.Minute, 20*time.Millisecond)
	}
	waitFor(2500)
	sitePID := ready("demo-gw-hall").PID
	require.NoError(t, syscall.Kill(sitePID, syscall.SIGKILL), "kill -9 the site gateway")
	t.Logf("killed the site gateway (pid %d) after %d events", sitePID, posted.Load())
	waitFor(6000)
	centrePID := ready("centre").PID
	require.NoError(t, syscall.Kill(centrePID, syscall.SIGKILL), "kill -9 the centre")
	t.Logf("killed the centre (pid %d) after %d events", centrePID, posted.Load())
	wg.Wait()
	require.EqualValues(t, total, posted.Load())
	tokenMu.Lock()
	token = ""
	tokenMu.Unlock()

	// Logs are compared through the APIs once the site's centre uplink has caught up.
	readAll := func(base, tok string) map[string]string {
		out := map[string]string{}
		since := ""
		for {
			code, body := get(t, base+"/api/v1/events?type=test.load&limit=5000&since="+since, tok)
			require.Equal(t, 200, code, string(body))
			var page struct {
				Events []json.RawMessage
				Next   string
			}
			require.NoError(t, json.Unmarshal(body, &page))
			for _, e := range page.Events {
				var v struct{ ID string }
				require.NoError(t, json.Unmarshal(e, &v))
				_, dup := out[v.ID]
				require.False(t, dup, "event %s listed twice", v.ID)
				out[v.ID] = string(e)
			}
			if len(page.Events) == 0 {
				return out
			}
			since = page.Next
		}
	}
	siteAdmin := login(t, site, "admin", userPassword(siteUsers, "admin"))
	atSite := readAll(site, siteAdmin)
	require.Len(t, atSite, total, "the site logged every event it acknowledged")
	var atCentre map[string]string
	require.Eventually(t, func() bool {
		admin, err := tryLogin(dj.HTTP, "admin", password(dj, "admin"))
		if err != nil {
			return false
		}
		atCentre = readAll(dj.HTTP, admin)
		return len(atCentre) >= total
	}, 3*time.Minute, time.Second, "the centre catches up with the site")
	require.Len(t, atCentre, total)
	for id, body := range atSite {
		require.JSONEq(t, body, atCentre[id], "event %s has the same content at the centre", id)
	}
	require.False(t, p.handler.Has(ids[0]), "the province was down")
	p.handler.SetDown(false)
	require.Eventually(t, func() bool {
		evs := p.events()
		for id := range atCentre {
			if _, ok := evs[id]; !ok {
				return false
			}
		}
		return true
	}, 3*time.Minute, time.Second, "every event the centre has reaches the province")
	require.Zero(t, p.badSig.Load())
	require.Contains(t, out.String(), "demo node exited; restarting it")
}

func tryLogin(base, user, pw string) (string, error) {
	body, _ := json.Marshal(map[string]string{"username": user, "password": pw})
	resp, err := http.Post(base+"/api/v1/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var lr struct{ Token string }
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&lr) != nil {
		return "", fmt.Errorf("login %s: %s", user, resp.Status)
	}
	return lr.Token, nil
}
