package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/analytics/lease"
	"github.com/offsite-gw/offsite/analytics/leases"
	"github.com/offsite-gw/offsite/api"
	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events/centre"
	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/ingest"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
	"github.com/offsite-gw/offsite/streams"
)

// fullHarness is a harness whose Server has every optional component: events, alerts,
// evidence and uplinks, telemetry (a real SQLite store), presence, the quarantine (real),
// cameras, video and the analytics leases (real).
type fullHarness struct {
	*evHarness
	telemetry  *ingest.SQLiteTelemetry
	quarantine *ingest.Quarantine
	presence   *fakePresence
	relay      *fakeRelay
	video      *fakeVideo
	leases     *leases.Service
	consumers  *streams.ConsumerStore
	rateLimits *fakeRateLimits
}

type fakePresence struct{ states map[string]ingest.DeviceState }

func (p *fakePresence) State(device string) (ingest.DeviceState, bool) {
	st, ok := p.states[device]
	return st, ok
}

type fakeRelay struct{ cams []streams.CameraStatus }

func (r *fakeRelay) Cameras() []streams.CameraStatus { return r.cams }

// fakeVideo stands in for streams.Handler: it asks api.VideoViewer who watches, as the real
// handler's Authorize does, and remembers each request.
type fakeVideo struct {
	mu   sync.Mutex
	seen []string // "viewer METHOD path"
}

func (v *fakeVideo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, err := api.VideoViewer(r, r.PathValue("id"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	v.mu.Lock()
	v.seen = append(v.seen, user+" "+r.Method+" "+r.URL.Path)
	v.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
}

func (v *fakeVideo) last() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.seen) == 0 {
		return ""
	}
	return v.seen[len(v.seen)-1]
}

func newFullHarness(t *testing.T, db *store.DB) *fullHarness {
	t.Helper()
	f := &fullHarness{
		presence: &fakePresence{states: map[string]ingest.DeviceState{}},
		relay:    &fakeRelay{},
		video:    &fakeVideo{},
	}
	f.telemetry = &ingest.SQLiteTelemetry{Path: t.TempDir() + "/telemetry.db", FlushInterval: 20 * time.Millisecond}
	require.NoError(t, f.telemetry.Initialize())
	t.Cleanup(f.telemetry.Close)
	f.quarantine = &ingest.Quarantine{DB: db}
	require.NoError(t, f.quarantine.Initialize())
	t.Cleanup(f.quarantine.Close)
	f.evHarness = newEventsHarness(t, db, func(h *evHarness, s *api.Server) {
		ups := &uplink.Set{GatewayID: "gw-test", Log: h.log}
		require.NoError(t, ups.Initialize())
		t.Cleanup(ups.Close)
		f.leases = &leases.Service{DB: db, Cameras: s.Devices, RTSPURL: func(id string) string { return "rtsp://127.0.0.1:8554/" + id }}
		s.Uplinks = ups
		s.Telemetry, s.Quarantine, s.Presence = f.telemetry, f.quarantine, f.presence
		s.Cameras, s.Video, s.Leases = f.relay, f.video, f.leases
		s.Gateways = &devices.GatewayStore{DB: db, Sealer: h.sealer}
		s.Receiver = &centre.Receiver{Log: h.log, Gateways: s.Gateways}
		f.consumers = &streams.ConsumerStore{DB: db}
		f.rateLimits = &fakeRateLimits{}
		s.RTSPConsumers, s.RateLimits = f.consumers, f.rateLimits
	})
	return f
}

// The readings, presence and quarantine routes: ingest's stores behind the API's scope checks.
func TestTelemetryRoutes(t *testing.T) {
	h := newFullHarness(t, storetest.SQLite(t, testSchema...))
	_, mkt := h.user("shijian", auth.RoleOfficer, []string{deptMkt}, nil)

	base := time.Now().Truncate(2 * time.Minute).Add(-10 * time.Minute)
	for i := range 6 {
		at := base.Add(time.Duration(i) * time.Minute)
		h.telemetry.Write([]ingest.Reading{
			{Device: "sen-mkt-1", Site: "site-mkt", Metric: "pm10", Value: float64(100 + i), Unit: "µg/m³", Quality: ingest.QualityGood, Time: at, ReceiveTime: at},
			{Device: "sen-mkt-1", Site: "site-mkt", Metric: "temp", Value: 4, Unit: "°C", Quality: ingest.QualityGood, Time: at, ReceiveTime: at},
		})
	}
	h.quarantine.Add(ingest.QuarantineEntry{Device: "sen-mkt-1", Site: "site-mkt", Topic: "offsite/site-mkt/sen-mkt-1/up",
		Reason: "malformed_json", Detail: "invalid character 'o'", Payload: []byte("{oops"), PayloadSize: 5})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, h.telemetry.Flush(ctx))
	require.NoError(t, h.quarantine.Flush(ctx))
	h.presence.states["sen-mkt-1"] = ingest.DeviceState{Device: "sen-mkt-1", Site: "site-mkt", State: ingest.StateOnline, Since: base}

	var latest struct {
		Device   string
		Readings []ingest.Reading
	}
	r := h.do("GET", "/api/v1/devices/sen-mkt-1/readings/latest", mkt, nil)
	require.Equal(t, 200, r.status, string(r.body))
	r.json(t, &latest)
	require.Equal(t, "sen-mkt-1", latest.Device)
	require.Len(t, latest.Readings, 2)

	rng := fmt.Sprintf("&from=%s&to=%s", base.Format(time.RFC3339), base.Add(6*time.Minute).Format(time.RFC3339))
	for _, path := range []string{"readings/series", "telemetry"} {
		var series struct {
			Metric, Step string
			Points       []ingest.Point
		}
		r = h.do("GET", "/api/v1/devices/sen-mkt-1/"+path+"?metric=pm10&step=2m"+rng, h.admin, nil)
		require.Equal(t, 200, r.status, string(r.body))
		r.json(t, &series)
		require.Equal(t, "pm10", series.Metric)
		require.Equal(t, "2m0s", series.Step)
		require.Len(t, series.Points, 3, path)
		require.Equal(t, 100.5, series.Points[0].Mean)
		require.EqualValues(t, 2, series.Points[0].Count)
	}
	for query, code := range map[string]string{
		"": "metric_required",
		"?metric=pm10&step=1s&from=2020-01-01T00:00:00Z":                 "too_many_points",
		"?metric=pm10&step=soon":                                         "bad_step",
		"?metric=pm10&step=10ms":                                         "bad_step",
		"?metric=pm10&from=yesterday":                                    "bad_time",
		"?metric=pm10&from=2026-12-02T10:00:00Z&to=2026-12-01T10:00:00Z": "bad_range",
	} {
		r = h.do("GET", "/api/v1/devices/sen-mkt-1/readings/series"+query, h.admin, nil)
		require.Equal(t, 400, r.status, query)
		require.Equal(t, code, r.errCode(t), query)
	}

	// Out of scope is "not found", as for the device itself.
	for _, path := range []string{"readings/latest", "readings/series?metric=pm10", "telemetry?metric=pm10", "presence"} {
		r = h.do("GET", "/api/v1/devices/sen-mkt-1/"+path, h.env, nil)
		require.Equal(t, 404, r.status, path)
		require.Equal(t, "device_not_found", r.errCode(t), path)
	}
	require.Equal(t, 404, h.do("GET", "/api/v1/devices/nope/readings/latest", h.admin, nil).status)
	require.Equal(t, 401, h.do("GET", "/api/v1/devices/sen-mkt-1/readings/latest", "", nil).status)

	var st ingest.DeviceState
	r = h.do("GET", "/api/v1/devices/sen-mkt-1/presence", mkt, nil)
	require.Equal(t, 200, r.status, string(r.body))
	r.json(t, &st)
	require.Equal(t, ingest.StateOnline, st.State)
	r = h.do("GET", "/api/v1/devices/cam-env-1/presence", h.admin, nil)
	require.Equal(t, 404, r.status)
	require.Equal(t, "not_watched", r.errCode(t))

	var q struct{ Entries []ingest.QuarantineEntry }
	r = h.do("GET", "/api/v1/ingest/quarantine?device=sen-mkt-1", mkt, nil)
	require.Equal(t, 200, r.status, string(r.body))
	r.json(t, &q)
	require.Len(t, q.Entries, 1)
	require.Equal(t, "malformed_json", q.Entries[0].Reason)
	require.Equal(t, "{oops", string(q.Entries[0].Payload))
	r = h.do("GET", "/api/v1/ingest/quarantine?reason=malformed_json", h.admin, nil)
	require.Equal(t, 200, r.status, string(r.body))
	r.json(t, &q)
	require.Len(t, q.Entries, 1)
	r = h.do("GET", "/api/v1/ingest/quarantine", mkt, nil)
	require.Equal(t, 403, r.status, "the whole quarantine is for roles that see every site")
	require.Equal(t, 404, h.do("GET", "/api/v1/ingest/quarantine?device=sen-mkt-1", h.env, nil).status)
	r = h.do("GET", "/api/v1/ingest/quarantine?before=x", h.admin, nil)
	require.Equal(t, 400, r.status)
	require.Equal(t, "bad_before", r.errCode(t))
}

// The camera list and the WHEP and snapshot routes: who may watch which camera, the relay's
// status with a reason code, and the viewer handed to the video handler.
func TestCameraRoutes(t *testing.T) {
	h := newFullHarness(t, storetest.SQLite(t, testSchema...))
	_, mkt := h.user("shijian", auth.RoleOfficer, []string{deptMkt}, nil)
	h.relay.cams = []streams.CameraStatus{
		{ID: "cam-env-1", Site: "site-env", State: streams.StateOnline.String(), Codec: "H264"},
		{ID: "cam-env-2", Site: "site-env", State: "offline", Reason: "dial tcp 10.0.0.11:554: connect: connection refused"},
	}

	type camera struct {
		ID, SiteID, Name, Profile string
		ReasonCode                string `json:"reason_code"`
		Status                    *streams.CameraStatus
		WHEP                      string
		Snapshot                  string
	}
	var list struct{ Cameras []camera }
	r := h.do("GET", "/api/v1/cameras", h.env, nil)
	require.Equal(t, 200, r.status, string(r.body))
	r.json(t, &list)
	require.Len(t, list.Cameras, 2)
	byID := map[string]camera{}
	for _, c := range list.Cameras {
		byID[c.ID] = c
	}
	require.Equal(t, "online", byID["cam-env-1"].Status.State)
	require.Empty(t, byID["cam-env-1"].ReasonCode)
	require.Equal(t, "camera_unreachable", byID["cam-env-2"].ReasonCode)
	require.Equal(t, "/api/v1/cameras/cam-env-1/whep", byID["cam-env-1"].WHEP)
	require.Equal(t, "/api/v1/cameras/cam-env-1/snapshot.jpg", byID["cam-env-1"].Snapshot)

	r = h.do("GET", "/api/v1/cameras?site=site-mkt", h.admin, nil)
	require.Equal(t, 200, r.status)
	r.json(t, &list)
	require.Empty(t, list.Cameras)
	r = h.do("GET", "/api/v1/cameras", mkt, nil)
	require.Equal(t, 200, r.status)
	r.json(t, &list)
	require.Empty(t, list.Cameras, "no camera in the officer's departments")

	var one camera
	r = h.do("GET", "/api/v1/cameras/cam-env-2", h.admin, nil)
	require.Equal(t, 200, r.status, string(r.body))
	r.json(t, &one)
	require.Equal(t, "出水口", one.Name)
	require.Equal(t, "camera_unreachable", one.ReasonCode)
	for _, tc := range []struct{ path, token string }{
		{"/api/v1/cameras/cam-env-1", mkt},     // out of scope
		{"/api/v1/cameras/sen-mkt-1", h.admin}, // not a camera
		{"/api/v1/cameras/nope", h.admin},      // no such device
	} {
		r = h.do("GET", tc.path, tc.token, nil)
		require.Equal(t, 404, r.status, tc.path)
		require.Equal(t, "camera_not_found", r.errCode(t), tc.path)
	}

	// WHEP and snapshots reach the video handler with the caller as the viewer, whatever
	// X-Offsite-Viewer the client sent.
	for _, tc := range []struct{ method, path string }{
		{"POST", "/api/v1/cameras/cam-env-1/whep"},
		{"OPTIONS", "/api/v1/cameras/cam-env-1/whep"},
		{"DELETE", "/api/v1/cameras/cam-env-1/whep/s1"},
		{"PATCH", "/api/v1/cameras/cam-env-1/whep/s1"},
		{"GET", "/api/v1/cameras/cam-env-1/snapshot.jpg"},
	} {
		r = h.do(tc.method, tc.path, h.env, nil, "X-Offsite-Viewer", "mallory")
		require.Equal(t, 201, r.status, tc.method+" "+tc.path)
		require.Equal(t, "huanbao "+tc.method+" "+tc.path, h.video.last())
	}
	before := h.video.last()
	r = h.do("POST", "/api/v1/cameras/cam-env-1/whep", mkt, nil)
	require.Equal(t, 404, r.status)
	require.Equal(t, "camera_not_found", r.errCode(t))
	require.Equal(t, 404, h.do("GET", "/api/v1/cameras/sen-mkt-1/snapshot.jpg", h.admin, nil).status)
	require.Equal(t, 401, h.do("GET", "/api/v1/cameras/cam-env-1/snapshot.jpg", "", nil, "X-Offsite-Viewer", "mallory").status)
	require.Equal(t, before, h.video.last(), "refused requests never reach the video handler")

	// A request that did not come through the camera routes has no viewer.
	req, _ := http.NewRequest("GET", "/api/v1/cameras/cam-env-1/snapshot.jpg", nil)
	_, err := api.VideoViewer(req, "cam-env-1")
	require.Error(t, err)
}

// The analytics workers' leases and the cameras' analytics settings, with their role checks.
func TestAnalyticsRoutes(t *testing.T) {
	h := newFullHarness(t, storetest.SQLite(t, testSchema...))
	_, maint := h.user("weihu", auth.RoleMaintainer, nil, nil)

	var g lease.Grant
	r := h.do("POST", "/api/v1/analytics/leases", h.service, map[string]any{"worker_id": "w1", "capacity": 4})
	require.Equal(t, 200, r.status, string(r.body))
	r.json(t, &g)
	require.Equal(t, "w1", g.WorkerID)
	require.Equal(t, 2, g.TotalCameras)
	var held []string
	for _, a := range g.Assignments {
		held = append(held, a.CameraID)
	}
	require.Len(t, held, 2, "room for both cameras")

	var rn lease.Renewal
	r = h.do("POST", "/api/v1/analytics/leases/renew", h.service, map[string]any{"worker_id": "w1", "camera_ids": append(held, "cam-gone")})
	require.Equal(t, 200, r.status, string(r.body))
	r.json(t, &rn)
	require.ElementsMatch(t, held, rn.Held)
	_, err := time.Parse(time.RFC3339, rn.ExpiresAt)
	require.NoError(t, err)

	var ls []lease.Lease
	r = h.do("GET", "/api/v1/analytics/leases", h.admin, nil)
	require.Equal(t, 200, r.status, string(r.body))
	r.json(t, &ls)
	require.Len(t, ls, len(held))

	r = h.do("POST", "/api/v1/analytics/leases", h.service, map[string]any{"worker": "w1"})
	require.Equal(t, 400, r.status)
	require.Equal(t, "invalid_body", r.errCode(t))
	require.Equal(t, 403, h.do("POST", "/api/v1/analytics/leases", h.env, map[string]any{"worker_id": "w2", "capacity": 1}).status)
	require.Equal(t, 403, h.do("GET", "/api/v1/analytics/leases", maint, nil).status)

	if len(held) > 0 {
		require.Equal(t, 204, h.do("DELETE", "/api/v1/analytics/leases/w1?camera="+held[0], h.service, nil).status)
		r = h.do("GET", "/api/v1/analytics/leases", h.service, nil)
		r.json(t, &ls)
		require.Len(t, ls, len(held)-1)
	}
	require.Equal(t, 204, h.do("DELETE", "/api/v1/analytics/leases/w1", h.service, nil).status)
	r = h.do("GET", "/api/v1/analytics/leases", h.service, nil)
	require.Equal(t, 200, r.status)
	require.JSONEq(t, `[]`, string(r.body))

	var set lease.CameraSettings
	r = h.do("GET", "/api/v1/analytics/cameras/cam-env-1/settings", h.service, nil)
	require.Equal(t, 200, r.status, string(r.body))
	r.json(t, &set)
	require.Equal(t, lease.DefaultSettings(), set)
	set.Disabled = true
	r = h.do("PUT", "/api/v1/analytics/cameras/cam-env-1/settings", maint, set)
	require.Equal(t, 200, r.status, string(r.body))
	stored, err := h.leases.Settings(context.Background(), "cam-env-1")
	require.NoError(t, err)
	require.True(t, stored.Disabled)
	require.Equal(t, 403, h.do("PUT", "/api/v1/analytics/cameras/cam-env-1/settings", h.service, set).status)
	require.Equal(t, 403, h.do("GET", "/api/v1/analytics/cameras/cam-env-1/settings", h.env, nil).status)
	r = h.do("PUT", "/api/v1/analytics/cameras/cam-env-1/settings", h.admin, `{"sensitivity": "very"}`)
	require.Equal(t, 400, r.status, string(r.body))
}

// A document is served per component: without them, none of their paths.
func TestOpenAPIWithoutComponents(t *testing.T) {
	h := newHarness(t, storetest.SQLite(t, testSchema...), nil)
	r := h.do("GET", "/api/v1/openapi.json", h.admin, nil)
	require.Equal(t, 200, r.status)
	var doc struct {
		Paths map[string]json.RawMessage `json:"paths"`
	}
	r.json(t, &doc)
	for _, p := range []string{"/api/v1/cameras", "/api/v1/cameras/{id}/whep", "/api/v1/devices/{id}/telemetry",
		"/api/v1/devices/{id}/presence", "/api/v1/ingest/quarantine", "/api/v1/analytics/leases", "/api/v1/events"} {
		require.NotContains(t, doc.Paths, p)
	}
	require.Equal(t, 404, h.do("GET", "/api/v1/cameras", h.admin, nil).status)
}
