package worker_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/analytics/lease"
	"github.com/offsite-gw/offsite/analytics/leases"
	"github.com/offsite-gw/offsite/analytics/worker"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/internal/store/storetest"
	"github.com/offsite-gw/offsite/streams/simcam"
)

type cameraList []string

func (c cameraList) ListDevices(_ context.Context, _ devices.DeviceFilter) ([]devices.Device, error) {
	var out []devices.Device
	for _, id := range c {
		out = append(out, devices.Device{ID: id, SiteID: "site-1", Kind: devices.KindCamera})
	}
	return out, nil
}

// fakeGateway serves the parts of the gateway API a worker uses, with the real lease service
// and evidence store and the real event validation (events.ParseEvent); only login and the
// event log are stand-ins.
type fakeGateway struct {
	addr     string
	svc      *leases.Service
	evidence *events.EvidenceStore
	mu       sync.Mutex
	events   []event.Event
}

func startFakeGateway(t *testing.T, svc *leases.Service) *fakeGateway {
	g := &fakeGateway{svc: svc, evidence: &events.EvidenceStore{Dir: t.TempDir()}}
	writeJSON := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	fail := func(w http.ResponseWriter, err error) {
		var ee *errs.Error
		status, code := 500, "internal"
		if errors.As(err, &ee) {
			status, code = errs.HTTPStatus(ee.Kind), ee.Code
		}
		writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": err.Error()}})
	}
	// Everything but login needs the token; the real API also checks the service role.
	authed := func(h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer tok" {
				fail(w, errs.E(errs.KindUnauthorized, "unauthenticated", "log in"))
				return
			}
			if err := h(w, r); err != nil {
				fail(w, err)
			}
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/auth/login", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Username, Password string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Username != "analytics" || req.Password != "pw" {
			fail(w, errs.E(errs.KindUnauthorized, "bad_credentials", "wrong"))
			return
		}
		writeJSON(w, 200, map[string]any{"token": "tok", "expires_at": time.Now().Add(time.Hour)})
	})
	// The gateway's lease routes (api/handlers_analytics.go) over the real lease service.
	mux.HandleFunc("POST /api/v1/analytics/leases", authed(func(w http.ResponseWriter, r *http.Request) error {
		var req struct {
			WorkerID string `json:"worker_id"`
			Capacity int    `json:"capacity"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			return errs.Wrap(errs.KindInvalid, "invalid_body", err, "body is not the expected JSON object")
		}
		grant, err := svc.Acquire(r.Context(), req.WorkerID, req.Capacity)
		if err != nil {
			return err
		}
		writeJSON(w, 200, grant)
		return nil
	}))
	mux.HandleFunc("DELETE /api/v1/analytics/leases/{worker}", authed(func(w http.ResponseWriter, r *http.Request) error {
		var ids []string
		if q := r.URL.Query().Get("camera"); q != "" {
			ids = strings.Split(q, ",")
		}
		if err := svc.Release(r.Context(), r.PathValue("worker"), ids); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
	// The gateway's POST /api/v1/evidence (api/handlers_events.go), reduced to what workers send.
	mux.HandleFunc("POST /api/v1/evidence", authed(func(w http.ResponseWriter, r *http.Request) error {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		if r.Header.Get("Content-Type") != "image/jpeg" || len(body) == 0 {
			return errs.E(errs.KindInvalid, "invalid_evidence", "send a JPEG")
		}
		sum, url, err := g.evidence.Put(bytes.NewReader(body), ".jpg")
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, map[string]string{"sha256": sum, "url": url})
		return nil
	}))
	mux.HandleFunc("POST /api/v1/events", authed(func(w http.ResponseWriter, r *http.Request) error {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		e, err := events.ParseEvent(body)
		if err != nil {
			return err
		}
		g.mu.Lock()
		g.events = append(g.events, e)
		g.mu.Unlock()
		writeJSON(w, http.StatusCreated, e)
		return nil
	}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	g.addr = srv.URL
	return g
}

func (g *fakeGateway) find(typ, key, state string) (event.Event, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, e := range g.events {
		if e.Type == typ && e.AlarmKey == key && e.State == state {
			return e, true
		}
	}
	return event.Event{}, false
}

func readClip(t *testing.T, path string) []byte {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// TestEndToEnd: simulated cameras over RTSP → worker (leases from the gateway API) → events
// with uploaded snapshots. One camera goes black, at the other the counter empties.
func TestEndToEnd(t *testing.T) {
	const gop = "-g 25 -keyint_min 25"
	// Black for 8 s, then a normal picture for 40 s, in a loop: raising needs 2 s of black,
	// clearing 10 s of calm, so each has a wide margin however slowly this machine looks
	// (a look can lag seconds under load; the loop repeats, so a late start only waits longer).
	black := makeClip(t, "e2e-black2", "-f lavfi -i color=c=black:s=640x360:r=25:d=8[a];testsrc2=s=640x360:r=25:d=40[b];[a][b]concat=n=2:v=1:a=0[out0] "+gop, "")
	counter := makeClip(t, "e2e-counter", "-f lavfi -i "+strings.Replace(bg640, "stop_duration=60", "stop_duration=20", 1)+"[bg];color=c=0x202020:s=60x150:r=25:d=20[p];[bg][p]overlay=x='200+60*sin(t)':y=150:enable='lt(t,6)'[out0] "+gop, "")

	cams := &simcam.Server{Username: "svc", Password: "rtsp-pw", Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Cameras: []simcam.Camera{{Path: "cam-black", Clip: readClip(t, black)}, {Path: "cam-counter", Clip: readClip(t, counter)}}}
	require.NoError(t, cams.Initialize())
	defer cams.Close()

	db := storetest.SQLite(t, testSchema...)
	svc := &leases.Service{DB: db, Cameras: cameraList{"cam-black", "cam-counter"},
		RTSPURL: func(id string) string { return "rtsp://svc:rtsp-pw@" + cams.Addr() + "/" + id }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	require.NoError(t, svc.PutSettings(ctx, "cam-black", lease.CameraSettings{Tamper: lease.Tamper{For: lease.Duration(2 * time.Second)}}, "test"))
	require.NoError(t, svc.PutSettings(ctx, "cam-counter", counterSettingsAlways(), "test"))
	gw := startFakeGateway(t, svc)

	w := &worker.Worker{Client: &worker.Client{BaseURL: gw.addr, Username: "analytics", Password: "pw"}, ID: "w-1", Capacity: 10,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	wait := func(typ, key, state string, within time.Duration) event.Event {
		t.Helper()
		var e event.Event
		require.Eventually(t, func() bool {
			var ok bool
			e, ok = gw.find(typ, key, state)
			return ok
		}, within, 200*time.Millisecond, "%s %s %s", typ, key, state)
		return e
	}
	// Generous deadlines: polling returns as soon as the condition holds.
	tamper := wait(event.TypeVideoTamper, "cam-black/tamper", "active", 2*time.Minute)
	require.Equal(t, "tamper.covered", tamper.Rule)
	require.Equal(t, "cam-black", tamper.Device.ID)
	require.Len(t, tamper.Evidence, 1)
	f, err := gw.evidence.Open(tamper.Evidence[0].SHA256)
	require.NoError(t, err, "the snapshot was uploaded")
	b, _ := os.ReadFile(f.Name())
	f.Close()
	sum := sha256.Sum256(b)
	require.Equal(t, tamper.Evidence[0].SHA256, hex.EncodeToString(sum[:]))
	require.Equal(t, []byte{0xff, 0xd8}, b[:2])

	absent := wait(event.TypeVideoStaffAbsent, "cam-counter/staff_absent/w1", "active", 2*time.Minute)
	require.Equal(t, "minor", absent.Severity)
	require.NotNil(t, absent.Reading)
	require.Len(t, absent.Evidence, 1)

	wait(event.TypeVideoTamper, "cam-black/tamper", "cleared", 2*time.Minute)
	wait(event.TypeVideoStaffAbsent, "cam-counter/staff_absent/w1", "cleared", 2*time.Minute)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("worker did not stop")
	}
	ls, err := svc.Leases(context.Background())
	require.NoError(t, err)
	require.Empty(t, ls, "leases released on shutdown")
}

func counterSettingsAlways() lease.CameraSettings {
	s := counterSettings()
	s.Schedule = nil
	s.Zones[0].AbsentAfter = lease.Duration(5 * time.Second)
	return s
}
