package uplink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/events/uplink/provincesim"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newLog(t testing.TB, db *store.DB) *events.Log {
	l := &events.Log{DB: db, GatewayID: "410702-gw-01"}
	require.NoError(t, l.Initialize())
	return l
}

func ev(i int) event.Event {
	return event.Event{Type: "sensor.threshold", Severity: "major", Department: "市生态环境局",
		Device: &event.Device{ID: fmt.Sprintf("dev-%d", i%7)}, Message: fmt.Sprintf("event %d", i)}
}

// requireDelivered checks the receiver holds every logged event that passes f, with the
// logged bytes, first received in log order.
func requireDelivered(t *testing.T, l *events.Log, h *provincesim.Handler, f events.Filter) {
	t.Helper()
	var all []event.Event
	for after := int64(0); ; {
		evs, through, err := l.Scan(context.Background(), after, f, 5000)
		require.NoError(t, err)
		all = append(all, evs...)
		if len(evs) < 5000 {
			break
		}
		after = through
	}
	got := h.Received()
	require.Len(t, got, len(all), "every event arrives exactly once by id")
	for i, e := range all {
		require.Equal(t, e.ID, got[i].ID, "log order at %d", i)
		require.JSONEq(t, string(e.Raw), string(got[i].Event))
		require.Equal(t, compact(e.Raw), string(got[i].Event), "same bytes")
	}
	require.Zero(t, h.Stats().Conflicts, "no event arrived with different content")
}

func compact(b []byte) string {
	var m json.RawMessage
	_ = json.Unmarshal(b, &m)
	out, _ := json.Marshal(m)
	return string(out)
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// 30% of requests fail (20% before storing, 10% after storing with the answer lost) and the
// receiver refuses connections for a while: every event still arrives, in log order, with the
// same content, and the cursor only moves after definitive answers.
func TestDeliveryThroughFailuresAndDownWindow(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l := newLog(t, db)
		h := &provincesim.Handler{Secret: []byte("sec"), FailRatio: 0.2, LoseAnswerRatio: 0.1}
		require.NoError(t, h.Initialize())
		srv := &provincesim.Server{Addr: "127.0.0.1:0", Handler: h}
		require.NoError(t, srv.Start())
		defer srv.Stop()

		u := &uplink.Uplink{Config: uplink.Config{Name: "province", BaseURL: srv.URL(), Secret: "sec", BatchSize: 17,
			BackoffMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond, Timeout: 2 * time.Second},
			GatewayID: "410702-gw-01", Log: l, Logger: quiet}
		require.NoError(t, u.Initialize())
		defer u.Close()

		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i += 50 {
				batch := make([]event.Event, 50)
				for j := range batch {
					batch[j] = ev(i + j)
				}
				_, err := l.Append(ctx, batch...)
				require.NoError(t, err)
				if i == 300 {
					srv.Stop() // connection refused for a while
					time.Sleep(700 * time.Millisecond)
					require.NoError(t, srv.Start())
				}
			}
		}()
		wg.Wait()
		waitFor(t, 30*time.Second, "backlog drained", func() bool { return u.Status().Backlog == 0 })
		requireDelivered(t, l, h, events.Filter{})
		st := u.Status()
		require.Positive(t, st.Failures)
		require.NotEmpty(t, st.LastError)
		require.NotNil(t, st.LastSuccess)
		require.Zero(t, st.DeadLetters)
		require.Positive(t, h.Stats().Duplicates, "lost answers made the uplink resend")
	})
}

func TestRejectedGoToDeadLettersAndResend(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l := newLog(t, db)
		var mu sync.Mutex
		refuse := true
		h := &provincesim.Handler{Secret: []byte("sec"), Reject: func(m map[string]json.RawMessage) string {
			mu.Lock()
			defer mu.Unlock()
			if refuse && strings.Contains(string(m["message"]), "event 3") {
				return "unknown_site"
			}
			return ""
		}}
		require.NoError(t, h.Initialize())
		srv := httptest.NewServer(h)
		defer srv.Close()
		var evs []event.Event
		for i := 0; i < 10; i++ {
			evs = append(evs, ev(i))
		}
		out, err := l.Append(ctx, evs...)
		require.NoError(t, err)
		u := &uplink.Uplink{Config: uplink.Config{Name: "core", BaseURL: srv.URL, Secret: "sec", Alg: uplink.AlgSHA256},
			GatewayID: "gw", Log: l, Logger: quiet}
		require.NoError(t, u.Initialize())
		defer u.Close()
		waitFor(t, 10*time.Second, "delivery", func() bool { return u.Status().Backlog == 0 })

		st := u.Status()
		require.EqualValues(t, 1, st.DeadLetters)
		require.EqualValues(t, 9, st.Delivered)
		dl, err := u.DeadLetters(ctx, false, 0)
		require.NoError(t, err)
		require.Len(t, dl, 1)
		require.Equal(t, out[3].ID, dl[0].EventID)
		require.Equal(t, "unknown_site", dl[0].Reason)

		res, err := u.Resend(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, []uplink.Rejection{{ID: out[3].ID, Reason: "unknown_site"}}, res.Rejected)
		mu.Lock()
		refuse = false
		mu.Unlock()
		res, err = u.Resend(ctx, []string{out[3].ID})
		require.NoError(t, err)
		require.Equal(t, []string{out[3].ID}, res.Delivered)
		dl, err = u.DeadLetters(ctx, false, 0)
		require.NoError(t, err)
		require.Empty(t, dl)
		require.Zero(t, u.Status().DeadLetters)
		require.True(t, h.Has(out[3].ID))
	})
}

// An uplink whose receiver never answers keeps its own backlog; another uplink and the log
// are not slowed by it. Filters select what each uplink carries; the cursor survives restart.
func TestDeadUplinkDoesNotSlowOthers(t *testing.T) {
	ctx := context.Background()
	db := storetest.SQLite(t, testSchema...)
	l := newLog(t, db)

	ln, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	h := &provincesim.Handler{Secret: []byte("sec")}
	require.NoError(t, h.Initialize())
	srv := httptest.NewServer(h)
	defer srv.Close()

	dead := &uplink.Uplink{Config: uplink.Config{Name: "dead", BaseURL: "http://" + ln.Addr().String(), Secret: "sec",
		Timeout: 30 * time.Second}, GatewayID: "gw", Log: l, Logger: quiet}
	require.NoError(t, dead.Initialize())
	defer dead.Close()
	filter := events.Filter{Types: []string{"alert."}, MinSeverity: "major"}
	live := &uplink.Uplink{Config: uplink.Config{Name: "live", BaseURL: srv.URL, Secret: "sec", Filter: filter}, GatewayID: "gw", Log: l, Logger: quiet}
	require.NoError(t, live.Initialize())

	start := time.Now()
	for i := 0; i < 20; i++ {
		e := ev(i)
		if i%2 == 0 {
			e.Type = "alert.test"
		}
		if i%4 == 0 {
			e.Severity = "minor"
		}
		_, err := l.Append(ctx, e)
		require.NoError(t, err)
	}
	waitFor(t, 5*time.Second, "live uplink", func() bool { return live.Status().Backlog == 0 })
	require.Less(t, time.Since(start), 5*time.Second)
	requireDelivered(t, l, h, filter)
	require.Len(t, h.Received(), 5)
	require.EqualValues(t, 20, dead.Status().Backlog)
	require.Positive(t, dead.Status().Pending, "the dead uplink is stuck on its first batch")

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(uplink.Collector{Uplinks: func() []*uplink.Uplink { return []*uplink.Uplink{dead, live} }})
	mfs, err := reg.Gather()
	require.NoError(t, err)
	metrics := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			metrics[mf.GetName()+"/"+m.GetLabel()[0].GetValue()] = v
		}
	}
	require.EqualValues(t, 20, metrics["offsite_uplink_backlog/dead"])
	require.EqualValues(t, 0, metrics["offsite_uplink_backlog/live"])
	require.EqualValues(t, 5, metrics["offsite_uplink_delivered_total/live"])
	require.Positive(t, metrics["offsite_uplink_lag_seconds/dead"])

	// Restart: the cursor is durable, nothing is sent twice when caught up.
	live.Close()
	live2 := &uplink.Uplink{Config: live.Config, GatewayID: "gw", Log: l, Logger: quiet}
	require.NoError(t, live2.Initialize())
	defer live2.Close()
	require.EqualValues(t, 0, live2.Status().Backlog)
	require.Equal(t, 5, h.Stats().Received)
}

// An answer that leaves an id out is not definitive: the same batch is sent again.
func TestMissingIDsAreRetried(t *testing.T) {
	ctx := context.Background()
	db := storetest.SQLite(t, testSchema...)
	l := newLog(t, db)
	h := &provincesim.Handler{Secret: []byte("s")}
	require.NoError(t, h.Initialize())
	var mu sync.Mutex
	var calls [][]string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		h.ServeHTTP(rec, r)
		resp, err := uplink.ParseBatchResponse(rec.Body.Bytes())
		require.NoError(t, err)
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, resp.Accepted)
		if len(calls) == 1 && len(resp.Accepted) > 0 {
			resp.Accepted = resp.Accepted[1:] // "forget" one id
		}
		_ = json.NewEncoder(w).Encode(resp)
	}))
	defer srv.Close()
	_, err := l.Append(ctx, ev(1), ev(2), ev(3))
	require.NoError(t, err)
	u := &uplink.Uplink{Config: uplink.Config{Name: "p", BaseURL: srv.URL, Secret: "s", BackoffMin: time.Millisecond},
		GatewayID: "gw", Log: l, Logger: quiet}
	require.NoError(t, u.Initialize())
	defer u.Close()
	waitFor(t, 5*time.Second, "delivery", func() bool { return u.Status().Backlog == 0 })
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, calls, 2, "the batch was sent again")
	require.Equal(t, 3, h.Stats().Duplicates)
	require.Contains(t, u.Status().LastError, "did not answer for 1 of 3")
}

func TestSet(t *testing.T) {
	db := storetest.SQLite(t, testSchema...)
	l := newLog(t, db)
	set := &uplink.Set{GatewayID: "gw", Log: l, Logger: quiet, Configs: []uplink.Config{
		{Name: "b", BaseURL: "http://127.0.0.1:1", Secret: "x"},
		{Name: "a", Kind: uplink.KindWeCom, URL: "http://127.0.0.1:1/hook"},
	}}
	require.NoError(t, set.Initialize())
	defer set.Close()
	u, err := set.Get("a")
	require.NoError(t, err)
	require.Equal(t, "a", u.Name)
	_, err = set.Get("zz")
	require.Error(t, err)
	st := set.Statuses()
	require.Equal(t, "a", st[0].Name)
	require.Equal(t, "wecom", st[0].Kind)

	bad := &uplink.Set{GatewayID: "gw", Log: l, Logger: quiet, Configs: []uplink.Config{
		{Name: "c", BaseURL: "http://127.0.0.1:1", Secret: "x"}, {Name: "c", BaseURL: "http://127.0.0.1:1", Secret: "x"}}}
	require.ErrorContains(t, bad.Initialize(), "used twice")
	for _, c := range []uplink.Config{
		{Name: "Bad Name", BaseURL: "http://x", Secret: "s"},
		{Name: "nosecret", BaseURL: "http://x"},
		{Name: "badalg", BaseURL: "http://x", Secret: "s", Alg: "md5"},
		{Name: "badurl", BaseURL: "ftp://x", Secret: "s"},
		{Name: "badkind", Kind: "smtp", URL: "http://x"},
	} {
		u := &uplink.Uplink{Config: c, GatewayID: "gw", Log: l, Logger: quiet}
		require.Error(t, u.Initialize(), c.Name)
	}
}

func TestWebhookFormats(t *testing.T) {
	ctx := context.Background()
	db := storetest.SQLite(t, testSchema...)
	l := newLog(t, db)
	type got struct {
		query url.Values
		body  map[string]any
		hdr   http.Header
	}
	ch := make(chan got, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		ch <- got{r.URL.Query(), m, r.Header.Clone()}
		_, _ = w.Write([]byte(`{"errcode":0,"errmsg":"ok"}`))
	}))
	defer srv.Close()
	mk := func(name, kind, secret string) *uplink.Uplink {
		u := &uplink.Uplink{Config: uplink.Config{Name: name, Kind: kind, URL: srv.URL + "/hook?access_token=t", Secret: secret,
			Filter: events.Filter{Types: []string{"sensor."}}}, GatewayID: "gw", Log: l, Logger: quiet}
		require.NoError(t, u.Initialize())
		t.Cleanup(u.Close)
		return u
	}
	filtered := []*uplink.Uplink{mk("ding", uplink.KindDingTalk, "SECxyz"), mk("wecom", uplink.KindWeCom, ""), mk("generic", uplink.KindWebhook, "hooksecret")}
	e := ev(1)
	e.Site = &event.Site{ID: "s", Name: "某农贸市场", RegionCode: "410702"}
	_, err := l.Append(ctx, e)
	require.NoError(t, err)
	seen := map[string]got{}
	for i := 0; i < 3; i++ {
		select {
		case g := <-ch:
			switch {
			case g.query.Get("sign") != "":
				seen["ding"] = g
			case g.hdr.Get("X-Offsite-Signature") != "":
				seen["generic"] = g
			default:
				seen["wecom"] = g
			}
		case <-time.After(5 * time.Second):
			t.Fatal("webhook not called")
		}
	}
	d := seen["ding"]
	var ts int64
	fmt.Sscan(d.query.Get("timestamp"), &ts)
	require.Equal(t, uplink.DingTalkSign("SECxyz", ts), d.query.Get("sign"))
	require.Equal(t, "markdown", d.body["msgtype"])
	require.Contains(t, d.body["markdown"].(map[string]any)["text"], "某农贸市场")
	w := seen["wecom"]
	require.Equal(t, "markdown", w.body["msgtype"])
	require.Contains(t, w.body["markdown"].(map[string]any)["content"], "event 1")
	g := seen["generic"]
	require.Equal(t, "gw", g.body["gateway_id"])
	require.Len(t, g.body["events"], 1)

	// A robot without a filter only carries what people must act on. The uplinks above would
	// carry the next reading too, so they stop first.
	for _, u := range filtered {
		u.Close()
	}
	for len(ch) > 0 {
		<-ch
	}
	def := &uplink.Uplink{Config: uplink.Config{Name: "default", Kind: uplink.KindWeCom, URL: srv.URL + "/hook?key=k"},
		GatewayID: "gw", Log: l, Logger: quiet}
	require.NoError(t, def.Initialize())
	defer def.Close()
	require.Equal(t, []string{"alert.opened", "alert.escalated"}, def.Filter.Types)
	_, err = l.Append(ctx, ev(2))
	require.NoError(t, err)
	waitFor(t, 5*time.Second, "default robot skipped the reading", func() bool { return def.Status().Backlog == 0 })
	select {
	case g := <-ch:
		require.NotContains(t, fmt.Sprint(g.body), "event 2 ", "only the filtered uplinks get it")
	case <-time.After(300 * time.Millisecond):
	}
}
