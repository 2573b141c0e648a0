package api_test

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
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/api"
	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

const deptHouse = "市住房和城乡建设局"

// evHarness is a harness whose Server also serves the event log, alerts and evidence.
type evHarness struct {
	*harness
	log      *events.Log
	alerts   *events.Alerts
	evidence *events.EvidenceStore
	service  string // token of a service user
	house    string // officer of 市住房和城乡建设局
	env      string // officer of 市生态环境局
}

// newEventsHarness seeds sites of three departments, then rebuilds the Server with the event
// components; tune may set more fields (Uplinks, timeouts) before Initialize.
func newEventsHarness(t *testing.T, db *store.DB, tune func(h *evHarness, s *api.Server)) *evHarness {
	t.Helper()
	h := &evHarness{harness: newHarness(t, db, nil)}
	h.seed()
	r := h.do("POST", "/api/v1/sites", h.admin, map[string]any{"id": "site-house", "name": "城南建筑工地",
		"uscc": uscc("91410704MA44A1B2E"), "region_code": "410704", "department": deptHouse})
	require.Equal(t, 201, r.status, string(r.body))
	r = h.do("POST", "/api/v1/devices", h.admin, map[string]any{"id": "sen-house-1", "site_id": "site-house", "kind": "sensor",
		"name": "扬尘", "profile": "test-sensor", "firmware": "1.0", "mqtt": map[string]any{"username": "sen-house-1", "secret": "Mqtt-Secret-house-1"}})
	require.Equal(t, 201, r.status, string(r.body))
	_, h.service = h.user("worker", auth.RoleService, nil, nil)
	_, h.house = h.user("zhujian", auth.RoleOfficer, []string{deptHouse}, nil)
	_, h.env = h.user("huanbao", auth.RoleOfficer, []string{deptEnv}, nil)

	h.log = &events.Log{DB: db, GatewayID: "gw-test", Logger: h.srv.Logger}
	require.NoError(t, h.log.Initialize())
	h.alerts = &events.Alerts{Log: h.log, Logger: h.srv.Logger}
	require.NoError(t, h.alerts.Initialize())
	h.evidence = &events.EvidenceStore{Dir: t.TempDir()}

	old := h.srv
	srv := &api.Server{Listen: "127.0.0.1:0", DB: old.DB, Auth: old.Auth, Devices: old.Devices, Profiles: old.Profiles,
		Firmware: old.Firmware, Audit: old.Audit, Logger: old.Logger, Version: old.Version,
		Events: h.log, Alerts: h.alerts, Evidence: h.evidence, Heartbeat: 200 * time.Millisecond}
	if tune != nil {
		tune(h, srv)
	}
	require.NoError(t, srv.Initialize())
	h.srv = srv
	return h
}

// start serves on a real listener (SSE) and stops at the end of the test.
func (h *evHarness) start() string {
	h.t.Helper()
	require.NoError(h.t, h.srv.Start())
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.srv.Shutdown(ctx)
	})
	return "http://" + h.srv.Addr()
}

func houseEvent(msg string) map[string]any {
	return map[string]any{"type": "sensor.threshold", "severity": "major", "state": "active", "alarm_key": "sen-house-1/pm10",
		"device": map[string]any{"id": "sen-house-1"}, "reading": map[string]any{"metric": "pm10", "value": 182.0, "unit": "µg/m³", "limit": 150.0},
		"rule": "pm10-limit", "message": msg}
}

func (h *evHarness) listEvents(token, query string) api.EventsPage {
	h.t.Helper()
	r := h.do("GET", "/api/v1/events"+query, token, nil)
	require.Equal(h.t, 200, r.status, string(r.body))
	var p api.EventsPage
	r.json(h.t, &p)
	return p
}

func decodeEvents(t *testing.T, raws []json.RawMessage) []event.Event {
	t.Helper()
	out := make([]event.Event, len(raws))
	for i, r := range raws {
		require.NoError(t, json.Unmarshal(r, &out[i]))
	}
	return out
}

func TestPostAndListEvents(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		h := newEventsHarness(t, db, nil)

		r := h.do("POST", "/api/v1/events", h.service, houseEvent("扬尘超标"))
		require.Equal(t, 201, r.status, string(r.body))
		var posted event.Event
		r.json(t, &posted)
		require.Len(t, posted.ID, 26)
		require.Equal(t, "gw-test", posted.GatewayID)
		require.Equal(t, deptHouse, posted.Department, "enriched from the registry")
		require.Equal(t, "site-house", posted.Site.ID)
		require.Equal(t, "410704", posted.Site.RegionCode)

		// Re-posting the same id with the same content is idempotent; other content conflicts.
		again := houseEvent("扬尘超标")
		again["id"], again["occurred_at"] = posted.ID, posted.OccurredAt.Format(time.RFC3339Nano)
		r = h.do("POST", "/api/v1/events", h.service, again)
		require.Equal(t, 201, r.status, string(r.body))
		again["message"] = "другое"
		r = h.do("POST", "/api/v1/events", h.service, again)
		require.Equal(t, 409, r.status, string(r.body))
		require.Equal(t, "event_conflict", r.errCode(t))

		// Wrong roles.
		require.Equal(t, 403, h.do("POST", "/api/v1/events", h.house, houseEvent("x")).status)
		require.Equal(t, 403, h.do("GET", "/api/v1/events", h.service, nil).status)
		require.Equal(t, 401, h.do("GET", "/api/v1/events", "", nil).status)

		// Bad bodies: 400 with a reason, counted, logged with the request id; the server serves on.
		for _, bad := range []struct{ body, code, mention string }{
			{`{"type": "sensor.threshold", "colour": "red"}`, "invalid_event", "colour"},
			{`{"type": "Sensor Threshold"}`, "invalid_event", "type"},
			{`{"type": "alert.opened"}`, "invalid_event", "alert"},
			{`{"type": "sensor.threshold"`, "invalid_event", "valid event"},
			{``, "invalid_event", "valid event"},
			{`{"type": "sensor.threshold", "device": {"id": "nope"}}`, "device_not_found", "nope"},
		} {
			r := h.do("POST", "/api/v1/events", h.service, bad.body, "Content-Type", "application/json", "X-Request-ID", "req-bad-event")
			require.Equal(t, 400, r.status, bad.body)
			var eb api.ErrorBody
			r.json(t, &eb)
			require.Equal(t, bad.code, eb.Error.Code, bad.body)
			require.Contains(t, eb.Error.Message, bad.mention, bad.body)
		}
		require.Contains(t, h.logs.String(), `"request_id":"req-bad-event"`)
		require.Contains(t, h.logs.String(), "event refused")
		metrics := string(h.do("GET", "/metrics", "", nil).body)
		require.Contains(t, metrics, `offsite_api_events_rejected_total{code="invalid_event"} 5`)
		require.Contains(t, metrics, `offsite_api_events_rejected_total{code="event_conflict"} 1`)
		require.Equal(t, 200, h.do("GET", "/healthz", "", nil).status)

		// More events: an env one, a market one, a device-health one.
		for _, e := range []map[string]any{
			{"type": "video.tamper", "severity": "major", "device": map[string]any{"id": "cam-env-1"}, "message": "遮挡"},
			{"type": "sensor.silent", "severity": "minor", "device": map[string]any{"id": "sen-mkt-1"}, "message": "静默"},
			{"type": "device.offline", "device": map[string]any{"id": "sen-house-1"}, "message": "离线"},
		} {
			r := h.do("POST", "/api/v1/events", h.service, e)
			require.Equal(t, 201, r.status, string(r.body))
		}

		// Admin sees everything in log order, alert.opened included.
		all := decodeEvents(t, h.listEvents(h.admin, "").Events)
		var types []string
		for _, e := range all {
			types = append(types, e.Type)
		}
		require.Equal(t, []string{"sensor.threshold", "alert.opened", "video.tamper", "sensor.silent", "device.offline"}, types)

		// Scope: the housing officer sees only the housing department.
		for _, e := range decodeEvents(t, h.listEvents(h.house, "").Events) {
			require.Equal(t, deptHouse, e.Department)
		}
		require.Len(t, h.listEvents(h.house, "").Events, 3)
		require.Len(t, h.listEvents(h.env, "").Events, 1)

		// Filters: type exact and prefix, device; paging with next.
		require.Len(t, h.listEvents(h.admin, "?type=alert.").Events, 1)
		require.Len(t, h.listEvents(h.admin, "?type=sensor.silent,video.").Events, 2)
		require.Len(t, h.listEvents(h.admin, "?device=sen-house-1").Events, 3)
		p := h.listEvents(h.admin, "?limit=2")
		require.Len(t, p.Events, 2)
		p2 := h.listEvents(h.admin, "?limit=2&since="+p.Next)
		require.Equal(t, all[2:4], decodeEvents(t, p2.Events))
		p3 := h.listEvents(h.admin, "?since="+all[3].ID)
		require.Equal(t, all[4:], decodeEvents(t, p3.Events))
		require.Equal(t, 404, h.do("GET", "/api/v1/events?since=01JD0000000000000000000000", h.admin, nil).status)
		require.Equal(t, 400, h.do("GET", "/api/v1/events?since=yesterday", h.admin, nil).status)
		require.Equal(t, 400, h.do("GET", "/api/v1/events?limit=0", h.admin, nil).status)

		// A maintainer sees device health only (a covered camera is device health).
		_, maint := h.user("weihu", auth.RoleMaintainer, nil, nil)
		var mt []string
		for _, e := range decodeEvents(t, h.listEvents(maint, "").Events) {
			mt = append(mt, e.Type)
		}
		require.Equal(t, []string{"video.tamper", "sensor.silent", "device.offline"}, mt)
	})
}

// sseFrame is one event frame read from a stream.
type sseFrame struct {
	id, typ string
	event   event.Event
}

// sseStream is a raw HTTP reader of /events/stream.
type sseStream struct {
	t      *testing.T
	resp   *http.Response
	sc     *bufio.Scanner
	cancel context.CancelFunc
	beats  int
}

func openStream(t *testing.T, base, token, lastID, query string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/events/stream?token="+token+query, nil)
	require.NoError(t, err)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("stream: %d %s", resp.StatusCode, b)
	}
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	return &sseStream{t: t, resp: resp, sc: sc, cancel: cancel}
}

// next returns the next event frame, counting heartbeats on the way; false at the end.
func (s *sseStream) next() (sseFrame, bool) {
	var f sseFrame
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case strings.HasPrefix(line, ": "):
			s.beats++
		case strings.HasPrefix(line, "id: "):
			f.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			f.typ = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			require.NoError(s.t, json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &f.event))
		case line == "" && f.id != "":
			require.Equal(s.t, f.id, f.event.ID)
			require.Equal(s.t, f.typ, f.event.Type)
			return f, true
		}
	}
	return f, false
}

func (s *sseStream) close() {
	s.cancel()
	s.resp.Body.Close()
}

func plainEvent(i int, dept string) event.Event {
	return event.Event{Type: "sensor.reading", Severity: "info", Department: dept, Message: fmt.Sprintf("n%d", i), OccurredAt: time.Now()}
}

// An officer's client disconnects five times and resumes with Last-Event-ID while events are
// appended concurrently: it gets every event of its department once, in log order, and none
// of another department. Short read and idle timeouts do not cut the stream.
func TestEventStreamResumeAndScope(t *testing.T) {
	h := newEventsHarness(t, storetest.SQLite(t, testSchema...), func(_ *evHarness, s *api.Server) {
		s.ReadTimeout, s.IdleTimeout = 500*time.Millisecond, 500*time.Millisecond
	})
	base := h.start()
	ctx := context.Background()

	first, err := h.log.Append(ctx, plainEvent(0, deptHouse))
	require.NoError(t, err)

	// A quiet stream outlives the read and idle timeouts and gets heartbeats meanwhile.
	s := openStream(t, base, h.house, first[0].ID, "")
	time.Sleep(1500 * time.Millisecond)
	late, err := h.log.Append(ctx, plainEvent(-1, deptEnv), plainEvent(-2, deptHouse))
	require.NoError(t, err)
	f, ok := s.next()
	require.True(t, ok)
	require.Equal(t, late[1].ID, f.id)
	require.GreaterOrEqual(t, s.beats, 3)
	s.close()

	const total = 1200
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i < total; i += 4 {
			_, err := h.log.Append(ctx, plainEvent(i, deptHouse), plainEvent(i+1, deptEnv), plainEvent(i+2, deptHouse), plainEvent(i+3, deptMkt))
			if err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()

	lastID := late[1].ID
	var got []int
	for round := 0; round < 6; round++ {
		s := openStream(t, base, h.house, lastID, "")
		want := (round + 1) * 100
		if round == 5 {
			want = total / 2
		}
		for len(got) < want {
			f, ok := s.next()
			require.True(t, ok, "stream ended early in round %d", round)
			require.Equal(t, deptHouse, f.event.Department, "never another department's event")
			var n int
			_, _ = fmt.Sscanf(f.event.Message, "n%d", &n)
			got = append(got, n)
			lastID = f.id
		}
		s.close() // disconnect
	}
	wg.Wait()
	for k, n := range got {
		require.Equal(t, 2*k+1, n, "in log order, no gap, no duplicate")
	}

	// ?type= narrows, ?last_event_id= resumes like the header, an unknown id is 404.
	s = openStream(t, base, h.admin, "", "&type=sensor.other&last_event_id="+first[0].ID)
	_, err = h.log.Append(ctx, event.Event{Type: "sensor.other", Department: deptEnv, OccurredAt: time.Now()})
	require.NoError(t, err)
	f, ok = s.next()
	require.True(t, ok)
	require.Equal(t, "sensor.other", f.typ)
	s.close()
	res, err := http.Get(base + "/api/v1/events/stream?token=" + h.house + "&last_event_id=01JD0000000000000000000000")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 404, res.StatusCode)

	// Disconnected clients' streams end (noticed by a failed write at a heartbeat).
	require.Eventually(t, func() bool {
		return strings.Contains(string(h.do("GET", "/metrics", "", nil).body), "offsite_api_event_streams 0")
	}, 10*time.Second, 100*time.Millisecond)
}

// Shutdown ends open streams at once instead of waiting for its deadline.
func TestShutdownEndsEventStreams(t *testing.T) {
	h := newEventsHarness(t, storetest.SQLite(t, testSchema...), func(_ *evHarness, s *api.Server) { s.Heartbeat = time.Minute })
	require.NoError(t, h.srv.Start())
	base := "http://" + h.srv.Addr()
	streams := []*sseStream{openStream(t, base, h.admin, "", ""), openStream(t, base, h.house, "", "")}
	_, err := h.log.Append(context.Background(), plainEvent(1, deptHouse))
	require.NoError(t, err)
	for _, s := range streams {
		_, ok := s.next()
		require.True(t, ok)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	began := time.Now()
	require.NoError(t, h.srv.Shutdown(ctx))
	require.Less(t, time.Since(began), 2*time.Second)
	for _, s := range streams {
		_, ok := s.next()
		require.False(t, ok, "the stream ends")
		s.close()
	}
}

func TestAlertLifecycleAndScope(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		h := newEventsHarness(t, db, nil)
		base := h.start()
		houseStream := openStream(t, base, h.house, "", "")
		defer houseStream.close()

		r := h.do("POST", "/api/v1/events", h.service, houseEvent("扬尘超标"))
		require.Equal(t, 201, r.status, string(r.body))
		r = h.do("POST", "/api/v1/events", h.service, map[string]any{"type": "video.crowding", "severity": "critical", "state": "active",
			"alarm_key": "cam-env-1/crowding", "device": map[string]any{"id": "cam-env-1"}, "message": "人员聚集"})
		require.Equal(t, 201, r.status, string(r.body))

		listAlerts := func(token, q string) []events.Alert {
			r := h.do("GET", "/api/v1/alerts"+q, token, nil)
			require.Equal(t, 200, r.status, string(r.body))
			var out struct{ Alerts []events.Alert }
			r.json(t, &out)
			return out.Alerts
		}
		require.Len(t, listAlerts(h.admin, ""), 2)
		require.Len(t, listAlerts(h.admin, "?severity=critical"), 1)
		require.Len(t, listAlerts(h.admin, "?state=claimed"), 0)
		require.Equal(t, 400, h.do("GET", "/api/v1/alerts?state=lost", h.admin, nil).status)
		houseAlerts := listAlerts(h.house, "")
		require.Len(t, houseAlerts, 1, "the housing officer never sees another department's alerts")
		require.Equal(t, deptHouse, houseAlerts[0].Department)
		envAlerts := listAlerts(h.env, "")
		require.Len(t, envAlerts, 1)
		id, envID := houseAlerts[0].ID, envAlerts[0].ID

		r = h.do("GET", "/api/v1/alerts/"+envID, h.house, nil)
		require.Equal(t, 404, r.status)
		require.Equal(t, "alert_not_found", r.errCode(t))
		require.Equal(t, 404, h.do("POST", "/api/v1/alerts/"+envID+"/claim", h.house, map[string]any{}).status)

		// Viewers and maintainers read; they do not act.
		_, viewer := h.user("kanban", auth.RoleViewer, []string{deptHouse}, nil)
		require.Len(t, listAlerts(viewer, ""), 1)
		require.Equal(t, 403, h.do("POST", "/api/v1/alerts/"+id+"/claim", viewer, nil).status)
		_, maint := h.user("weihu", auth.RoleMaintainer, nil, nil)
		require.Len(t, listAlerts(maint, ""), 0, "not device health")
		require.Equal(t, 404, h.do("GET", "/api/v1/alerts/"+id, maint, nil).status)
		require.Equal(t, 403, h.do("GET", "/api/v1/alerts", h.service, nil).status)

		// Outcomes for the UI.
		r = h.do("GET", "/api/v1/alerts/outcomes", h.house, nil)
		require.Equal(t, 200, r.status)
		require.Contains(t, string(r.body), `{"code":"rectify_ordered","label_zh":"责令整改","label_en":"Rectification ordered"}`)

		// A photo to attach, uploaded by the officer.
		r = h.do("POST", "/api/v1/evidence", h.house, string(pngBytes), "Content-Type", "image/png")
		require.Equal(t, 201, r.status, string(r.body))
		var up struct{ SHA256, URL string }
		r.json(t, &up)

		act := func(token, action string, body any) (int, events.Alert, string) {
			r := h.do("POST", "/api/v1/alerts/"+id+"/"+action, token, body)
			var al events.Alert
			if r.status == 200 {
				r.json(t, &al)
				return r.status, al, ""
			}
			return r.status, al, r.errCode(t)
		}
		status, _, code := act(h.house, "handle", map[string]any{"note": "too early"})
		require.Equal(t, 409, status)
		require.Equal(t, "invalid_transition", code)
		status, al, _ := act(h.house, "claim", map[string]any{"note": "我来处理"})
		require.Equal(t, 200, status)
		require.Equal(t, "claimed", al.State)
		require.Equal(t, "zhujian", al.ClaimedBy)
		status, _, code = act(h.house, "claim", nil)
		require.Equal(t, 409, status, code)

		_, other := h.user("zhujian2", auth.RoleOfficer, []string{deptHouse}, nil)
		status, _, code = act(other, "handle", map[string]any{"note": "not mine"})
		require.Equal(t, 403, status)
		require.Equal(t, "not_claimant", code)

		status, _, code = act(h.house, "handle", map[string]any{"note": "现场检查", "attachments": []string{strings.Repeat("0", 64)}})
		require.Equal(t, 400, status)
		require.Equal(t, "unknown_attachment", code)
		status, _, code = act(h.house, "handle", map[string]any{"note": "x", "colour": "red"})
		require.Equal(t, 400, status)
		require.Equal(t, "unknown_field", code)
		status, al, _ = act(h.house, "handle", map[string]any{"note": "现场检查，已拍照", "attachments": []string{up.SHA256}})
		require.Equal(t, 200, status)
		require.Equal(t, "handled", al.State)

		status, _, code = act(h.house, "feedback", map[string]any{"note": "x"})
		require.Equal(t, 400, status)
		require.Equal(t, "invalid_outcome", code)
		status, _, code = act(h.house, "feedback", map[string]any{"outcome": "罚款一百万"})
		require.Equal(t, 400, status)
		require.Equal(t, "invalid_outcome", code)
		status, al, _ = act(h.house, "feedback", map[string]any{"note": "已责令停工整改", "outcome": "责令整改"})
		require.Equal(t, 200, status)
		require.Equal(t, "fed_back", al.State)
		require.Equal(t, "rectify_ordered", al.Outcome)
		status, al, _ = act(h.house, "close", map[string]any{"note": "办结"})
		require.Equal(t, 200, status)
		require.Equal(t, "closed", al.State)

		r = h.do("GET", "/api/v1/alerts/"+id, h.house, nil)
		require.Equal(t, 200, r.status)
		r.json(t, &al)
		var steps []string
		for _, s := range al.Steps {
			steps = append(steps, s.Action+":"+s.State)
		}
		require.Equal(t, []string{"open:opened", "claim:claimed", "handle:handled", "feedback:fed_back", "close:closed"}, steps)
		require.Equal(t, []string{up.SHA256}, al.Steps[2].Attachments)
		require.Equal(t, "rectify_ordered", al.Steps[3].Outcome)

		// Audit: every attempt, with its result.
		var got []string
		for _, e := range h.auditEntries(audit.Filter{Action: "alert."}) {
			got = append(got, e.Actor+" "+e.Action+" "+e.Result)
			require.Contains(t, []string{id, envID}, e.Target)
		}
		for _, want := range []string{"zhujian alert.claim ok", "zhujian alert.handle ok", "zhujian alert.feedback ok",
			"zhujian alert.close ok", "zhujian2 alert.handle denied", "zhujian alert.handle failed"} {
			require.Contains(t, got, want)
		}
		fb := h.auditEntries(audit.Filter{Action: "alert.feedback"})
		require.Contains(t, fmt.Sprint(fb), "rectify_ordered")

		// Over SSE the housing officer saw its own department only: the threshold event and
		// the alert's whole lifecycle.
		var seen []string
		for len(seen) < 6 {
			f, ok := houseStream.next()
			require.True(t, ok)
			require.Equal(t, deptHouse, f.event.Department)
			seen = append(seen, f.typ)
		}
		require.Equal(t, []string{"sensor.threshold", "alert.opened", "alert.claimed", "alert.handled", "alert.fed_back", "alert.closed"}, seen)
	})
}

// Smallest valid PNG and JPEG headers suffice for content sniffing.
var (
	pngBytes  = append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), bytes.Repeat([]byte{1}, 64)...)
	jpegBytes = append([]byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0}, bytes.Repeat([]byte{2}, 200)...)
)

func TestEvidenceRoundTripAndTraversal(t *testing.T) {
	h := newEventsHarness(t, storetest.SQLite(t, testSchema...), func(_ *evHarness, s *api.Server) { s.EvidenceLimit = 1024 })
	r := h.do("POST", "/api/v1/evidence", h.service, string(jpegBytes), "Content-Type", "image/jpeg")
	require.Equal(t, 201, r.status, string(r.body))
	var up struct{ SHA256, URL string }
	r.json(t, &up)
	require.Len(t, up.SHA256, 64)
	require.Equal(t, "/api/v1/evidence/"+up.SHA256[:2]+"/"+up.SHA256[2:4]+"/"+up.SHA256+".jpg", up.URL)

	// Evidence is served to those who may see an event it is attached to.
	require.Equal(t, 404, h.do("GET", up.URL, h.env, nil).status, "attached to nothing yet")
	r = h.do("POST", "/api/v1/events", h.service, map[string]any{"type": "video.tamper", "severity": "major", "state": "active",
		"alarm_key": "cam-env-1/tamper", "device": map[string]any{"id": "cam-env-1"}, "message": "镜头遮挡",
		"evidence": []map[string]any{{"kind": "snapshot", "url": up.URL, "sha256": up.SHA256}}})
	require.Equal(t, 201, r.status, string(r.body))

	r = h.do("GET", up.URL, h.env, nil)
	require.Equal(t, 200, r.status)
	require.Equal(t, jpegBytes, r.body)
	require.Equal(t, "image/jpeg", r.header.Get("Content-Type"))
	require.Contains(t, r.header.Get("Cache-Control"), "max-age=31536000")
	require.Equal(t, 304, h.do("GET", up.URL, h.env, nil, "If-None-Match", `"`+up.SHA256+`"`).status)
	r = h.do("GET", up.URL+"?token="+h.env, "", nil) // <img src>
	require.Equal(t, 200, r.status)

	// Upload rules.
	require.Equal(t, 403, h.do("GET", up.URL, h.service, nil).status, "service posts, does not read")
	_, viewer := h.user("kanban", auth.RoleViewer, nil, nil)
	require.Equal(t, 403, h.do("POST", "/api/v1/evidence", viewer, string(jpegBytes), "Content-Type", "image/jpeg").status)
	require.Equal(t, 415, h.do("POST", "/api/v1/evidence", h.service, "<svg/>", "Content-Type", "image/svg+xml").status)
	r = h.do("POST", "/api/v1/evidence", h.service, string(pngBytes), "Content-Type", "image/jpeg")
	require.Equal(t, 400, r.status)
	require.Equal(t, "evidence_type_mismatch", r.errCode(t))
	r = h.do("POST", "/api/v1/evidence", h.service, string(append(jpegBytes, make([]byte, 1024)...)), "Content-Type", "image/jpeg")
	require.Equal(t, 400, r.status)
	require.Equal(t, "evidence_too_large", r.errCode(t))

	// Nothing but the store's own layout is reachable.
	sum := up.SHA256
	for _, p := range []string{
		"/api/v1/evidence/" + sum[:2] + "/" + sum[2:4] + "/" + strings.ToUpper(sum) + ".jpg",
		"/api/v1/evidence/00/00/" + sum + ".jpg",
		"/api/v1/evidence/" + sum[:2] + "/" + sum[2:4] + "/" + sum + ".php",
		"/api/v1/evidence/" + sum[:2] + "/" + sum[2:4] + "/" + sum + ".jpg.jpg",
		"/api/v1/evidence/" + sum[:2] + "/" + sum[2:4] + "/" + sum + ".png",
		"/api/v1/evidence/../../../etc/passwd",
		"/api/v1/evidence/%2e%2e/%2e%2e/passwd",
		"/api/v1/evidence/" + sum[:2] + "/" + sum[2:4] + "/..%2f..%2f..%2fetc%2fpasswd",
		"/api/v1/evidence/" + sum[:2] + "/" + sum[2:4] + "/%2e%2e%2f" + sum + ".jpg",
		"/api/v1/evidence/tmp/" + sum[2:4] + "/" + sum + ".jpg",
	} {
		r := h.do("GET", p, h.admin, nil)
		require.Contains(t, []int{400, 404}, r.status, p)
		require.NotEqual(t, jpegBytes, r.body, p)
	}
}

// A maintainer without a department may read device-health alerts of every department.
func TestMaintainerSeesDeviceAlerts(t *testing.T) {
	h := newEventsHarness(t, storetest.SQLite(t, testSchema...), nil)
	r := h.do("POST", "/api/v1/events", h.service, map[string]any{"type": "device.offline", "severity": "major", "state": "active",
		"alarm_key": "sen-mkt-1/offline", "device": map[string]any{"id": "sen-mkt-1"}, "message": "设备离线"})
	require.Equal(t, 201, r.status, string(r.body))
	_, maint := h.user("weihu", auth.RoleMaintainer, nil, nil)
	r = h.do("GET", "/api/v1/alerts", maint, nil)
	require.Equal(t, 200, r.status)
	var out struct{ Alerts []events.Alert }
	r.json(t, &out)
	require.Len(t, out.Alerts, 1)
	require.Equal(t, 200, h.do("GET", "/api/v1/alerts/"+out.Alerts[0].ID, maint, nil).status)
	require.Equal(t, 403, h.do("POST", "/api/v1/alerts/"+out.Alerts[0].ID+"/claim", maint, nil).status)
}

// With every component set, the OpenAPI document describes exactly what is served.
func TestEventsOpenAPI(t *testing.T) {
	h := newEventsHarness(t, storetest.SQLite(t, testSchema...), nil)
	missing, err := h.srv.UndocumentedRoutes()
	require.NoError(t, err)
	require.Empty(t, missing)
	r := h.do("GET", "/api/v1/openapi.json", h.admin, nil)
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	r.json(t, &doc)
	served := map[string]bool{}
	for _, rt := range h.srv.App().GetRoutes(true) {
		served[strings.ToLower(rt.Method)+" "+api.OpenAPIPath(rt.Path)] = true
	}
	for _, p := range []string{"/api/v1/events", "/api/v1/events/stream", "/api/v1/alerts/{id}/feedback", "/api/v1/evidence/{a}/{b}/{file}"} {
		require.Contains(t, doc.Paths, p)
	}
	for p, item := range doc.Paths {
		for m := range item {
			if m == "get" || m == "post" {
				require.True(t, served[m+" "+p], "%s %s described but not served", m, p)
			}
		}
	}
	require.NotContains(t, doc.Paths, "/api/v1/uplinks", "no uplinks configured")
}
