package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/api"
	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/devices"
	profiles "github.com/offsite-gw/offsite/firmware-profiles"
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/store"
)

// cheap keeps password hashing fast in tests; TestHashDefaultParams covers the real cost.
var cheap = auth.Argon2Params{Memory: 1024, Time: 1, Threads: 1}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// catalog is a two-model stand-in for the profile registry.
type catalog struct{ ps []profiles.Profile }

func newCatalog() *catalog {
	return &catalog{ps: []profiles.Profile{
		{ID: "test-cam", Name: "测试摄像机", Kind: "camera", Vendor: "Test", Models: []string{"C1"},
			Firmware: profiles.Firmware{Supported: []string{"V5.7.*"}, Bad: []profiles.BadVersion{{Version: "V5.5.0", Reason: "CVE-2021-36260"}}},
			RTSP:     &profiles.RTSPSpec{Main: "rtsp://{host}:{port}/main", DefaultPort: 554}},
		{ID: "test-sensor", Name: "测试传感器", Kind: "sensor", Vendor: "Test", Models: []string{"S1"},
			Firmware: profiles.Firmware{Supported: []string{"*"}}},
	}}
}

func (c *catalog) List() []profiles.Profile { return c.ps }

func (c *catalog) Get(id string) (profiles.Profile, bool) {
	for _, p := range c.ps {
		if p.ID == id {
			return p, true
		}
	}
	return profiles.Profile{}, false
}

func (c *catalog) CheckFirmware(profileID, version string) profiles.FirmwareCheck {
	p, ok := c.Get(profileID)
	if !ok {
		return profiles.FirmwareCheck{Status: profiles.FirmwareUnknown, Reason: "no such profile"}
	}
	return p.CheckFirmware(version)
}

type harness struct {
	t       testing.TB
	db      *store.DB
	clock   *clock
	logs    *syncBuffer
	sealer  *devices.Sealer
	catalog *catalog
	srv     *api.Server
	auth    *auth.Service
	admin   string // admin token
	adminPW string
	tune    func(*auth.Service)
	// video, when set before restart, is served as Server.Video.
	video http.Handler
}

// newHarness starts an API on db with the admin of a first start logged in. tune adjusts the
// auth service (lock-out settings) before use.
func newHarness(t testing.TB, db *store.DB, tune func(*auth.Service)) *harness {
	t.Helper()
	key := devices.GenerateSealerKey()
	sealer, err := devices.NewSealer(key)
	require.NoError(t, err)
	h := &harness{t: t, db: db, clock: &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)},
		logs: &syncBuffer{}, sealer: sealer, catalog: newCatalog(), tune: tune}
	h.restart()
	pw, created, err := h.auth.EnsureAdmin(context.Background())
	require.NoError(t, err)
	require.True(t, created)
	h.adminPW = pw
	h.admin = h.login("admin", pw)
	return h
}

// restart builds a fresh Server and auth.Service on the same database, as a gateway restart
// would.
func (h *harness) restart() {
	h.t.Helper()
	logger := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	al := &audit.Log{DB: h.db, Logger: logger}
	h.auth = &auth.Service{DB: h.db, Audit: al, Logger: logger, Argon2: cheap, Now: h.clock.Now}
	if h.tune != nil {
		h.tune(h.auth)
	}
	h.srv = &api.Server{
		DB:       h.db,
		Auth:     h.auth,
		Devices:  &devices.SQLStore{DB: h.db, Sealer: h.sealer, Profiles: h.catalog, Argon2: devices.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}},
		Profiles: h.catalog,
		Firmware: h.catalog,
		Audit:    al,
		Logger:   logger,
		Version:  "test",
		Video:    h.video,
	}
	require.NoError(h.t, h.srv.Initialize())
}

// restartTrusting restarts with the test client trusted as a proxy, so X-Forwarded-For sets
// the client address a request comes from.
func (h *harness) restartTrusting() {
	h.t.Helper()
	h.restart()
	h.variant(func(s *api.Server) { s.TrustedProxies = []string{"0.0.0.0/0"} })
}

// variant replaces the Server by one with the same parts and tune's settings.
func (h *harness) variant(tune func(s *api.Server)) {
	h.t.Helper()
	old := h.srv
	h.srv = &api.Server{DB: old.DB, Auth: old.Auth, Devices: old.Devices, Profiles: old.Profiles, Firmware: old.Firmware,
		Audit: old.Audit, Logger: old.Logger, Version: old.Version}
	tune(h.srv)
	require.NoError(h.t, h.srv.Initialize())
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), string(r.body))
}

// errCode returns error.code of an error answer.
func (r resp) errCode(t testing.TB) string {
	t.Helper()
	var e api.ErrorBody
	r.json(t, &e)
	return e.Error.Code
}

// do sends one request through app.Test. body may be nil, a string (sent as is) or a value
// (sent as JSON).
func (h *harness) do(method, path, token string, body any, headers ...string) resp {
	h.t.Helper()
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
		ctype = "text/csv"
	default:
		j, err := json.Marshal(b)
		require.NoError(h.t, err)
		rd = bytes.NewReader(j)
		ctype = "application/json"
	}
	req := httptest.NewRequest(method, path, rd)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := h.srv.App().Test(req, 10_000)
	require.NoError(h.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(h.t, err)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func (h *harness) login(username, password string) string {
	h.t.Helper()
	r := h.do("POST", "/api/v1/auth/login", "", map[string]string{"username": username, "password": password})
	require.Equal(h.t, 200, r.status, string(r.body))
	var lr api.LoginResponse
	r.json(h.t, &lr)
	require.NotEmpty(h.t, lr.Token)
	return lr.Token
}

// user creates a user through the API and returns its id and a token.
func (h *harness) user(username string, role auth.Role, departments, regions []string) (string, string) {
	h.t.Helper()
	pw := userPassword
	r := h.do("POST", "/api/v1/users", h.admin, map[string]any{
		"username": username, "display_name": username, "role": role,
		"departments": departments, "regions": regions, "password": pw,
	})
	require.Equal(h.t, 201, r.status, string(r.body))
	var u auth.User
	r.json(h.t, &u)
	return u.ID, h.login(username, pw)
}

// uscc completes 17 characters with the GB 32100 check character.
func uscc(first17 string) string {
	c, ok := devices.USCCCheckChar(first17)
	if !ok {
		panic("bad uscc prefix " + first17)
	}
	return first17 + string(c)
}

const (
	deptEnv = "市生态环境局"
	deptMkt = "市市场监督管理局"
)

// seed creates two sites of two departments with a camera and a sensor each.
func (h *harness) seed() {
	h.t.Helper()
	for _, s := range []map[string]any{
		{"id": "site-env", "name": "城东污水处理厂", "uscc": uscc("91410702MA44A1B2C"), "region_code": "410702", "department": deptEnv, "address": "河南省新乡市红旗区"},
		{"id": "site-mkt", "name": "城西农贸市场", "uscc": uscc("91410703MA44A1B2D"), "region_code": "410703", "department": deptMkt},
	} {
		r := h.do("POST", "/api/v1/sites", h.admin, s)
		require.Equal(h.t, 201, r.status, string(r.body))
	}
	for _, d := range []map[string]any{
		{"id": "cam-env-1", "site_id": "site-env", "kind": "camera", "name": "进水口", "profile": "test-cam", "firmware": "V5.7.3",
			"stream": map[string]any{"host": "10.0.0.10", "username": "viewer", "password": "Cam-Secret-env-1"}},
		{"id": "cam-env-2", "site_id": "site-env", "kind": "camera", "name": "出水口", "profile": "test-cam", "firmware": "V5.5.0",
			"stream": map[string]any{"host": "10.0.0.11"}},
		{"id": "sen-mkt-1", "site_id": "site-mkt", "kind": "sensor", "name": "温湿度", "profile": "test-sensor", "firmware": "1.0",
			"mqtt": map[string]any{"username": "sen-mkt-1", "secret": "Mqtt-Secret-mkt-1"}},
	} {
		r := h.do("POST", "/api/v1/devices", h.admin, d)
		require.Equal(h.t, 201, r.status, string(r.body))
	}
}

// auditEntries reads the audit log directly.
func (h *harness) auditEntries(f audit.Filter) []audit.Entry {
	h.t.Helper()
	es, err := (&audit.Log{DB: h.db}).List(context.Background(), f)
	require.NoError(h.t, err)
	return es
}

const time1m = time.Minute

// userPassword is the password of every user made by harness.user.
const userPassword = "Very-Secret-Pass-42"
