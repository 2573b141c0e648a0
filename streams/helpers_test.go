package streams_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/streams"
	"github.com/offsite-gw/offsite/streams/internal/whepclient"
	"github.com/offsite-gw/offsite/streams/simcam"
)

const testToken = "test-token"

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// demoClip returns one of the embedded demo clips by camera path.
func demoClip(t *testing.T, path string) []byte {
	for _, c := range simcam.DemoCameras() {
		if c.Path == path {
			return c.Clip
		}
	}
	t.Fatalf("no demo clip %s", path)
	return nil
}

func startSim(t *testing.T, s *simcam.Server) *simcam.Server {
	t.Helper()
	if s.Logger == nil {
		s.Logger = quietLogger()
	}
	require.NoError(t, s.Initialize())
	t.Cleanup(s.Close)
	return s
}

type stateLog struct {
	mu     sync.Mutex
	states map[string][]streams.State
}

func (l *stateLog) on(camera string, st streams.State, _ string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.states == nil {
		l.states = map[string][]streams.State{}
	}
	l.states[camera] = append(l.states[camera], st)
}

func (l *stateLog) get(camera string) []streams.State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]streams.State(nil), l.states[camera]...)
}

type relay struct {
	m        *streams.Manager
	whep     *streams.WHEP
	snap     *streams.Snapshot
	srv      *httptest.Server
	states   *stateLog
	sessions *sessionLog
}

type sessionLog struct {
	mu     sync.Mutex
	events []streams.SessionEvent
}

func (l *sessionLog) add(e streams.SessionEvent) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *sessionLog) all() []streams.SessionEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]streams.SessionEvent(nil), l.events...)
}

func newRelay(t *testing.T, tune func(m *streams.Manager)) *relay {
	t.Helper()
	return newRelayWHEP(t, tune, nil)
}

// newRelayWHEP is newRelay with a hook to set WHEP options before it starts.
func newRelayWHEP(t *testing.T, tune func(m *streams.Manager), tuneWHEP func(w *streams.WHEP)) *relay {
	t.Helper()
	r := &relay{states: &stateLog{}, sessions: &sessionLog{}}
	r.m = &streams.Manager{
		StallTimeout: time.Second, OfflineTimeout: 3 * time.Second,
		BackoffMin: 200 * time.Millisecond, BackoffMax: time.Second,
		IdleTimeout: 2 * time.Second, OnState: r.states.on, Logger: quietLogger(),
	}
	if tune != nil {
		tune(r.m)
	}
	require.NoError(t, r.m.Initialize())
	r.whep = &streams.WHEP{Manager: r.m, UDPListen: "127.0.0.1:0", TCPListen: "127.0.0.1:0",
		DisconnectTimeout: 3 * time.Second, OnSession: r.sessions.add, Logger: quietLogger()}
	if tuneWHEP != nil {
		tuneWHEP(r.whep)
	}
	require.NoError(t, r.whep.Initialize())
	r.snap = &streams.Snapshot{Manager: r.m}
	require.NoError(t, r.snap.Initialize())
	h := &streams.Handler{WHEP: r.whep, Snapshot: r.snap, AllowOrigin: "*",
		Authorize: func(req *http.Request, cameraID string) (string, error) {
			tok := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
			if tok == "" {
				tok = req.URL.Query().Get("token")
			}
			switch tok {
			case testToken:
				return "officer", nil
			case "":
				return "", errs.E(errs.KindUnauthorized, "unauthorized", "log in first")
			}
			return "", errs.E(errs.KindForbidden, "forbidden", "this user may not see camera %s", cameraID)
		}}
	require.NoError(t, h.Initialize())
	mux := http.NewServeMux()
	mux.Handle("/api/v1/cameras/", h)
	r.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		r.srv.Close()
		r.whep.Close()
		r.m.Close()
	})
	return r
}

func (r *relay) endpoint(camera string) string {
	return r.srv.URL + "/api/v1/cameras/" + camera + "/whep"
}

func (r *relay) viewer(t *testing.T, camera string) *whepclient.Client {
	t.Helper()
	c := &whepclient.Client{Endpoint: r.endpoint(camera), Token: testToken, DecodeAll: true}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, c.Start(ctx))
	t.Cleanup(func() { _ = c.Close(false) })
	return c
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// cacheDir is where generated test media is kept between runs (never committed).
func cacheDir(t *testing.T) string {
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	d = filepath.Join(d, "offsite-streams-test")
	require.NoError(t, os.MkdirAll(d, 0o755))
	return d
}

// genClip makes (once) an H.264 Annex-B clip with ffmpeg, or skips without ffmpeg (fails in CI).
func genClip(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	bin := need(t, "ffmpeg")
	p := filepath.Join(cacheDir(t), name)
	if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
		return b
	}
	tmp := p + ".tmp.h264"
	full := append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)
	full = append(full, "-f", "h264", tmp)
	out, err := exec.Command(bin, full...).CombinedOutput()
	require.NoError(t, err, string(out))
	require.NoError(t, os.Rename(tmp, p))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return b
}

// need returns the path of a tool, skipping the test without it (failing when CI=true).
func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI (apt-get install -y %s)", tool, tool)
		}
		t.Skipf("%s not installed (apt-get install -y %s)", tool, tool)
	}
	return p
}

func isHTTPStatus(err error, status int) bool {
	var he *whepclient.HTTPError
	return errors.As(err, &he) && he.Status == status
}

func (r *relay) viewerErr(ctx context.Context, camera string) error {
	c := &whepclient.Client{Endpoint: r.endpoint(camera), Token: testToken}
	err := c.Start(ctx)
	_ = c.Close(err == nil)
	return err
}
