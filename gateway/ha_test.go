package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// centreInstance is one `offsite serve` process of a centre that shares its PostgreSQL.
type centreInstance struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	base string
	dead atomic.Bool
}

var servingHTTP = regexp.MustCompile(`offsite serving.* http=(\S+)`)

func startCentreInstance(t *testing.T, name, dsn, provinceURL, provinceSecret string) *centreInstance {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`gateway_id: city-centre
data_dir: %s
store:
  dsn: %q
secrets:
  key: 00112233445566778899aabbccddeeff
events:
  alerts:
    escalation_interval: 1s
uplinks:
  - name: province
    base_url: %s
    alg: hmac-sm3
    secret: %q
    batch_size: 50
    backoff_max: 2s
`, dir, dsn, provinceURL, provinceSecret)
	path := filepath.Join(dir, "offsite.yml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	in := &centreInstance{name: name, out: &syncBuffer{}}
	in.cmd = exec.Command(offsiteBin, "serve", "--config", path)
	in.cmd.Env = append(os.Environ(), loopbackEnv()...)
	in.cmd.Stdout, in.cmd.Stderr = in.out, in.out
	require.NoError(t, in.cmd.Start())
	t.Cleanup(func() {
		if !in.dead.Load() {
			_ = in.cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _, _ = in.cmd.Process.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = in.cmd.Process.Kill()
			}
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if m := servingHTTP.FindStringSubmatch(in.out.String()); m != nil {
			in.base = "http://" + m[1]
			return in
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not start:\n%s", name, in.out.String())
	return nil
}

func (in *centreInstance) kill9(t *testing.T) {
	t.Helper()
	in.dead.Store(true)
	require.NoError(t, syscall.Kill(in.cmd.Process.Pid, syscall.SIGKILL))
	_, _ = in.cmd.Process.Wait()
}

// balancer is the load-balancing client: requests go round-robin to the live instances; a
// request that fails to connect or gets a 5xx is tried on the next one.
type balancer struct {
	instances []*centreInstance
	next      atomic.Uint64
}

func (b *balancer) do(build func(base string) (*http.Request, error)) (*http.Response, []byte, error) {
	var lastErr error
	for attempt := 0; attempt < 2*len(b.instances); attempt++ {
		in := b.instances[int(b.next.Add(1))%len(b.instances)]
		if in.dead.Load() {
			continue
		}
		req, err := build(in.base)
		if err != nil {
			return nil, nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			lastErr = err
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			lastErr = fmt.Errorf("%s: %s: %s", in.name, resp.Status, body)
			continue
		}
		return resp, body, nil
	}
	return nil, nil, fmt.Errorf("no instance answered: %w", lastErr)
}

// sseClient follows /api/v1/events/stream through the balancer, resuming with Last-Event-ID
// after every disconnect, and records every frame it gets.
type sseClient struct {
	name    string
	lb      *balancer
	first   *centreInstance // the instance it connects to first
	token   string
	mu      sync.Mutex
	ids     []string
	conns   []string // instance of each connection
	cut     chan struct{}
	cutDone atomic.Bool
}

func (c *sseClient) received() (ids []string, conns []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.ids...), append([]string(nil), c.conns...)
}

func (c *sseClient) run(ctx context.Context, ready chan<- struct{}) {
	target := c.first
	for ctx.Err() == nil {
		if target == nil || target.dead.Load() {
			for _, in := range c.lb.instances {
				if !in.dead.Load() && in != target {
					target = in
					break
				}
			}
		}
		c.follow(ctx, target, ready)
		ready = nil
		// Resume on the other instance when both are alive: both directions are exercised.
		for _, in := range c.lb.instances {
			if in != target && !in.dead.Load() {
				target = in
				break
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *sseClient) follow(ctx context.Context, in *centreInstance, ready chan<- struct{}) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, _ := http.NewRequestWithContext(cctx, "GET", in.base+"/api/v1/events/stream?type=test.load", nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	c.mu.Lock()
	if n := len(c.ids); n > 0 {
		req.Header.Set("Last-Event-ID", c.ids[n-1])
	}
	c.mu.Unlock()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return
	}
	c.mu.Lock()
	c.conns = append(c.conns, in.name)
	c.mu.Unlock()
	if ready != nil {
		close(ready)
	}
	go func() {
		select {
		case <-c.cut:
			if c.cutDone.CompareAndSwap(false, true) {
				cancel()
			}
		case <-cctx.Done():
		}
	}()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
			c.mu.Lock()
			c.ids = append(c.ids, id)
			c.mu.Unlock()
		}
	}
}

func metricValue(t *testing.T, base, series string) (float64, bool) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			var f float64
			_, err := fmt.Sscan(v, &f)
			return f, err == nil
		}
	}
	return 0, false
}

// Two centre instances share one PostgreSQL behind a round-robin client. Five site gateways
// send 10,000 events in signed batches; one instance — the one delivering to the province — is
// killed with SIGKILL in the middle. Every event is stored once, the province receives every
// one (by id and content), SSE clients that started on each instance resume through the
// balancer with nothing missing and nothing twice, two simultaneous claims of one alert on the
// two instances give one success and one 409 naming the winner, and the province uplink's
// lease moves to the survivor within 15 s, which resumes from the durable cursor.
func TestTwoCentreInstancesSurviveKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes under load")
	}
	dsn := storetest.PostgresDSN(t)
	secret := "province-secret-" + ulid.Make().String()
	p := startProvince(t, secret)
	p.handler.Latency = 100 * time.Millisecond // the province is slow: delivery is mid-way at the kill

	a := startCentreInstance(t, "A", dsn, p.srv.URL(), secret)
	adminPw := regexp.MustCompile(`password\s+(\S+)`).FindStringSubmatch(a.out.String())
	require.NotNil(t, adminPw, a.out.String())
	b := startCentreInstance(t, "B", dsn, p.srv.URL(), secret)
	lb := &balancer{instances: []*centreInstance{a, b}}
	admin := login(t, a.base, "admin", adminPw[1])
	code, _ := get(t, b.base+"/api/v1/gateways", admin)
	require.Equal(t, 200, code, "a token issued by A is valid on B")

	// A delivers to the province (it started first); B stands by.
	require.Eventually(t, func() bool {
		va, _ := metricValue(t, a.base, `offsite_uplink_active{uplink="province"}`)
		vb, okb := metricValue(t, b.base, `offsite_uplink_active{uplink="province"}`)
		return va == 1 && okb && vb == 0
	}, 30*time.Second, 100*time.Millisecond, "exactly one instance delivers the province uplink")

	// Five site gateways enrolled (through either instance).
	type site struct{ id, secret string }
	sites := make([]site, 5)
	for i := range sites {
		sites[i].id = fmt.Sprintf("gw-site-%d", i+1)
		code, body := post(t, lb.instances[i%2].base+"/api/v1/gateways", admin, fmt.Sprintf(`{"id":%q,"name":"站点网关 %d"}`, sites[i].id, i+1))
		require.Equal(t, 201, code, string(body))
		var ans struct{ Secret string }
		require.NoError(t, json.Unmarshal(body, &ans))
		require.NotEmpty(t, ans.Secret)
		sites[i].secret = ans.Secret
	}

	// SSE clients, one starting on each instance.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clients := []*sseClient{
		{name: "sse-A", lb: lb, first: a, token: admin, cut: make(chan struct{})},
		{name: "sse-B", lb: lb, first: b, token: admin, cut: make(chan struct{})},
	}
	for _, c := range clients {
		ready := make(chan struct{})
		go c.run(ctx, ready)
		select {
		case <-ready:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not connect", c.name)
		}
	}

	// Two simultaneous claims of one alert, on A and on B, by two administrators.
	code, body := post(t, a.base+"/api/v1/users", admin, `{"username":"admin2","password":"Second-admin-2026!","role":"admin"}`)
	require.Equal(t, 201, code, string(body))
	admin2 := login(t, b.base, "admin2", "Second-admin-2026!")
	for round := 0; round < 3; round++ {
		code, body := post(t, a.base+"/api/v1/events", admin, fmt.Sprintf(
			`{"type":"test.alarm","severity":"major","state":"active","alarm_key":"ha/claim-%d","message":"双实例认领测试 %d"}`, round, round))
		require.Equal(t, 201, code, string(body))
		var alertID string
		require.Eventually(t, func() bool {
			code, body := get(t, b.base+"/api/v1/alerts?state=opened", admin2)
			var al struct {
				Alerts []struct{ ID, Message string }
			}
			if code != 200 || json.Unmarshal(body, &al) != nil {
				return false
			}
			for _, x := range al.Alerts {
				if strings.Contains(x.Message, fmt.Sprintf("双实例认领测试 %d", round)) {
					alertID = x.ID
					return true
				}
			}
			return false
		}, 30*time.Second, 50*time.Millisecond, "the alert opened through A is listed on B")
		type claim struct {
			user string
			code int
			body string
		}
		res := make(chan claim, 2)
		start := make(chan struct{})
		for _, c := range []struct{ base, token, user string }{{a.base, admin, "admin"}, {b.base, admin2, "admin2"}} {
			go func() {
				<-start
				code, body := post(t, c.base+"/api/v1/alerts/"+alertID+"/claim", c.token, `{"note":"我来处理"}`)
				res <- claim{c.user, code, string(body)}
			}()
		}
		close(start)
		r1, r2 := <-res, <-res
		if r1.code != 200 {
			r1, r2 = r2, r1
		}
		require.Equal(t, 200, r1.code, "one claim succeeds: %+v %+v", r1, r2)
		require.Equal(t, 409, r2.code, "the other gets 409: %+v", r2)
		require.Contains(t, r2.body, "already claimed by "+r1.user, "the 409 names who claimed it")
		t.Logf("claim race %d: %s won, %s got %d %s", round, r1.user, r2.user, r2.code, r2.body)
	}

	// 10,000 events from five sites, 40 per signed batch, through the balancer. Each site
	// sends 40% and waits until A is killed, then sends the rest.
	const perSite, batchSize = 2000, 40
	total := perSite * len(sites)
	sent := map[string]string{} // id → message
	var sentMu sync.Mutex
	var accepted atomic.Int64
	killed := make(chan struct{})
	var wg sync.WaitGroup
	for si, s := range sites {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < perSite; n += batchSize {
				if n == perSite*2/5 {
					<-killed
				}
				var raws []json.RawMessage
				for i := n; i < n+batchSize; i++ {
					id := ulid.Make().String()
					msg := fmt.Sprintf("站点 %d 负载事件 %d", si+1, i)
					raw, _ := json.Marshal(map[string]any{"id": id, "type": "test.load", "severity": "info",
						"occurred_at": time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), "gateway_id": s.id, "message": msg})
					raws = append(raws, raw)
					sentMu.Lock()
					sent[id] = msg
					sentMu.Unlock()
				}
				body, _ := json.Marshal(map[string]any{"gateway_id": s.id, "events": raws})
				for attempt := 0; ; attempt++ {
					resp, rbody, err := lb.do(func(base string) (*http.Request, error) {
						req, err := http.NewRequest("POST", base+"/offsite/v1/events:batch", bytes.NewReader(body))
						if err != nil {
							return nil, err
						}
						req.Header.Set("Content-Type", "application/json")
						return req, uplink.SignRequest(req, s.id, "hmac-sm3", []byte(s.secret), time.Now(), body)
					})
					if err == nil && resp.StatusCode == 200 {
						var ans struct {
							Accepted, Duplicates []string
							Rejected             []json.RawMessage
						}
						if json.Unmarshal(rbody, &ans) != nil || len(ans.Rejected) > 0 {
							t.Errorf("%s: batch answer %s", s.id, rbody)
							return
						}
						accepted.Add(int64(len(ans.Accepted) + len(ans.Duplicates)))
						break
					}
					if err == nil {
						t.Errorf("%s: batch refused: %d %s", s.id, resp.StatusCode, rbody)
						return
					}
					if attempt > 100 {
						t.Errorf("%s: batch not accepted: %v", s.id, err)
						return
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
		}()
	}

	// One SSE client is cut at 20% and resumes through the balancer on the other instance.
	require.Eventually(t, func() bool { return accepted.Load() >= int64(total/5) }, 3*time.Minute, 20*time.Millisecond)
	close(clients[1].cut)
	require.Eventually(t, func() bool { _, conns := clients[1].received(); return len(conns) >= 2 }, 30*time.Second, 20*time.Millisecond)

	// Kill -9 A once the sites are 40% through and the province has part of it.
	require.Eventually(t, func() bool { return accepted.Load() >= int64(total*2/5) }, 3*time.Minute, 20*time.Millisecond)
	require.Eventually(t, func() bool { return len(p.events()) >= 500 }, 3*time.Minute, 20*time.Millisecond,
		"A delivers to the province before it is killed")
	a.kill9(t)
	killedAt := time.Now()
	atKill := len(p.events())
	t.Logf("killed A (pid %d) after %d events accepted; the province had %d", a.cmd.Process.Pid, accepted.Load(), atKill)
	db, err := store.OpenNoMigrate(dsn)
	require.NoError(t, err)
	defer db.Close()
	var cursorAtKill int64
	require.NoError(t, db.QueryRow(context.Background(), `SELECT seq FROM uplink_cursors WHERE name = 'province'`).Scan(&cursorAtKill))
	close(killed)

	// The lease moves to B within 15 s and B delivers from the cursor A left.
	var takeover time.Duration
	require.Eventually(t, func() bool {
		v, _ := metricValue(t, b.base, `offsite_uplink_active{uplink="province"}`)
		takeover = time.Since(killedAt)
		return v == 1
	}, 60*time.Second, 50*time.Millisecond, "B takes the province uplink over")
	t.Logf("province uplink lease moved to B %.1fs after the kill", takeover.Seconds())
	require.Less(t, takeover, 15*time.Second, "takeover within 15 s")
	m := regexp.MustCompile(`uplink: this instance delivers.*cursor=([0-9]+)`).FindStringSubmatch(b.out.String())
	require.NotNil(t, m)
	var resumedAt int64
	_, _ = fmt.Sscan(m[1], &resumedAt)
	require.Equal(t, cursorAtKill, resumedAt, "B resumes from the durable cursor A left")

	wg.Wait()
	require.False(t, t.Failed())
	require.GreaterOrEqual(t, accepted.Load(), int64(total))

	// Every event stored once, with the content sent.
	rows, err := db.Query(context.Background(), `SELECT id, body FROM events WHERE type = 'test.load' ORDER BY seq`)
	require.NoError(t, err)
	stored := map[string]bool{}
	var logOrder []string
	for rows.Next() {
		var id, body string
		require.NoError(t, rows.Scan(&id, &body))
		require.False(t, stored[id], "event %s stored twice", id)
		stored[id] = true
		logOrder = append(logOrder, id)
		var e struct{ Message string }
		require.NoError(t, json.Unmarshal([]byte(body), &e))
		require.Equal(t, sent[id], e.Message, "event %s stored with other content", id)
	}
	require.NoError(t, rows.Err())
	rows.Close()
	require.Len(t, stored, total, "every event stored once")

	// The province gets every one, by id and content.
	var wrong atomic.Value
	require.Eventually(t, func() bool {
		n := 0
		for id, e := range p.events() {
			if e["type"] == "test.load" {
				if sent[id] != e["message"] || e["gateway_id"] == "city-centre" {
					wrong.Store(fmt.Sprintf("province got %s with other content: %v", id, e))
				}
				n++
			}
		}
		return n == total
	}, 3*time.Minute, 500*time.Millisecond, "the province receives every event")
	require.Nil(t, wrong.Load())
	st := p.handler.Stats()
	t.Logf("province: %d events, %d duplicate deliveries, %d batches, cursor at kill %d, B resumed at %d",
		st.Received, st.Duplicates, st.Batches, cursorAtKill, resumedAt)
	require.Zero(t, p.badSig.Load())

	// SSE clients: every event once, whichever instance they were on.
	for _, c := range clients {
		var ids, conns []string
		require.Eventually(t, func() bool {
			ids, conns = c.received()
			return len(ids) >= total
		}, 2*time.Minute, 200*time.Millisecond, "%s receives every event", c.name)
		time.Sleep(500 * time.Millisecond) // not an assertion: a duplicate would arrive now
		ids, conns = c.received()
		seen := map[string]bool{}
		for _, id := range ids {
			require.False(t, seen[id], "%s received %s twice", c.name, id)
			seen[id] = true
			require.Contains(t, sent, id)
		}
		require.Len(t, seen, total, "%s: no gap", c.name)
		require.Equal(t, logOrder, ids, "%s received the events in the log's one order", c.name)
		require.GreaterOrEqual(t, len(conns), 2, "%s resumed at least once: %v", c.name, conns)
		t.Logf("%s: %d events over connections %v", c.name, len(ids), conns)
	}
}
