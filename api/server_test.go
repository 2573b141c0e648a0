package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/api"
	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

func TestHealthz(t *testing.T) {
	h := newHarness(t, storetest.SQLite(t, testSchema...), nil)
	r := h.do("GET", "/healthz", "", nil)
	require.Equal(t, 200, r.status)
	require.JSONEq(t, `{"status":"ok","version":"test"}`, string(r.body))

	require.NoError(t, h.db.Close())
	r = h.do("GET", "/healthz", "", nil)
	require.Equal(t, 503, r.status)
	require.Equal(t, "database_unavailable", r.errCode(t))
}

// TestOpenAPICoversRoutes keeps the hand-written document honest in both directions: with
// every component set, every route under /api/v1 is described, and everything described under
// /api/v1 is served.
func TestOpenAPICoversRoutes(t *testing.T) {
	h := newFullHarness(t, storetest.SQLite(t, testSchema...))
	r := h.do("GET", "/api/v1/openapi.json", h.admin, nil)
	require.Equal(t, 200, r.status)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	r.json(t, &doc)
	require.Equal(t, "3.1.0", doc.OpenAPI)

	served := map[string]bool{}
	for _, rt := range h.srv.App().GetRoutes(true) {
		if rt.Method == fiber.MethodHead || !strings.HasPrefix(rt.Path, "/api/v1/") {
			continue
		}
		p := api.OpenAPIPath(rt.Path)
		served[strings.ToLower(rt.Method)+" "+p] = true
		_, ok := doc.Paths[p][strings.ToLower(rt.Method)]
		require.True(t, ok, "route %s %s is not in api/openapi.json", rt.Method, p)
	}
	require.Greater(t, len(served), 60, "every component is served")
	methods := map[string]bool{"get": true, "post": true, "put": true, "delete": true, "patch": true, "options": true}
	for p, item := range doc.Paths {
		if !strings.HasPrefix(p, "/api/v1/") {
			continue
		}
		for m := range item {
			if methods[m] {
				require.True(t, served[m+" "+p], "api/openapi.json describes %s %s, which is not served", m, p)
			}
		}
	}
	missing, err := h.srv.UndocumentedRoutes()
	require.NoError(t, err)
	require.Empty(t, missing)
}

// Routes added under /api/v1 after Initialize (here: test routes on the app) get the group's
// authentication; panics become 500 with the details only in the log.
func TestPanicRecovery(t *testing.T) {
	h := newHarness(t, storetest.SQLite(t, testSchema...), nil)
	_, viewer := h.user("wall", auth.RoleViewer, nil, nil)
	func(r fiber.Router) {
		r.Get("/test/panic", func(c *fiber.Ctx) error { panic("boom") })
		r.Get("/test/whoami", h.srv.RequireRole(auth.RoleAdmin, auth.RoleOfficer), func(c *fiber.Ctx) error {
			u, ok := api.UserOf(c)
			require.True(t, ok)
			require.NotEmpty(t, api.RequestID(c.UserContext()))
			return c.JSON(fiber.Map{"user": u.Username})
		})
		r.Post("/test/err", func(c *fiber.Ctx) error {
			var v struct{ N int }
			if err := api.DecodeJSON(c, &v); err != nil {
				return err
			}
			return errs.E(errs.KindConflict, "already_claimed", "alert %d is already claimed", v.N)
		})
	}(h.srv.App().Group("/api/v1"))

	r := h.do("GET", "/api/v1/test/panic", h.admin, nil)
	require.Equal(t, 500, r.status)
	require.Equal(t, "internal", r.errCode(t))
	require.NotContains(t, string(r.body), "boom", "internal details stay in the log")
	require.Contains(t, h.logs.String(), "boom")
	require.Equal(t, 200, h.do("GET", "/healthz", "", nil).status, "the server keeps serving")

	// Routes added later get the same authentication and role checks.
	require.Equal(t, 401, h.do("GET", "/api/v1/test/whoami", "", nil).status)
	require.Equal(t, 403, h.do("GET", "/api/v1/test/whoami", viewer, nil).status)
	r = h.do("GET", "/api/v1/test/whoami", h.admin, nil)
	require.Equal(t, 200, r.status)
	require.JSONEq(t, `{"user":"admin"}`, string(r.body))

	r = h.do("POST", "/api/v1/test/err", h.admin, map[string]int{"N": 7})
	require.Equal(t, 409, r.status)
	var eb api.ErrorBody
	r.json(t, &eb)
	require.Equal(t, "already_claimed", eb.Error.Code)
	require.Equal(t, "alert 7 is already claimed", eb.Error.Message)
}

func TestJSONErrors(t *testing.T) {
	h := newHarness(t, storetest.SQLite(t, testSchema...), nil)
	for _, tc := range []struct {
		body, ctype, code string
		status            int
	}{
		{`{"id": "s1", "name": }`, "application/json", "invalid_json", 400},
		{`{"id": "s1", "nme": "x"}`, "application/json", "unknown_field", 400},
		{`{"id": 5}`, "application/json", "invalid_json", 400},
		{`{"id": "s1"} {"id": "s2"}`, "application/json", "invalid_json", 400},
		{``, "application/json", "invalid_json", 400},
		{`id=s1`, "application/x-www-form-urlencoded", "unsupported_media_type", 415},
	} {
		req, _ := http.NewRequest("POST", "/api/v1/sites", strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+h.admin)
		req.Header.Set("Content-Type", tc.ctype)
		res, err := h.srv.App().Test(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(res.Body)
		require.Equal(t, tc.status, res.StatusCode, tc.body)
		var eb api.ErrorBody
		require.NoError(t, json.Unmarshal(b, &eb), string(b))
		require.Equal(t, tc.code, eb.Error.Code, tc.body)
		require.NotEmpty(t, eb.Error.Message)
	}
	r := h.do("PATCH", "/api/v1/sites/x", h.admin, map[string]any{})
	require.Contains(t, []int{404, 405}, r.status)
	require.NotEmpty(t, r.errCode(t))
}

func TestRequestIDAndAccessLog(t *testing.T) {
	h := newHarness(t, storetest.SQLite(t, testSchema...), nil)
	r := h.do("GET", "/api/v1/sites", h.admin, nil, "X-Request-ID", "wall-42")
	require.Equal(t, "wall-42", r.header.Get("X-Request-ID"))
	r = h.do("GET", "/api/v1/sites", h.admin, nil, "X-Request-ID", "bad id\nwith newline")
	id := r.header.Get("X-Request-ID")
	require.Len(t, id, 16, "an unusable id is replaced")

	var found bool
	for _, line := range strings.Split(h.logs.String(), "\n") {
		if !strings.Contains(line, `"msg":"http request"`) || !strings.Contains(line, id) {
			continue
		}
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec))
		require.Equal(t, "/api/v1/sites", rec["path"])
		require.Equal(t, "/api/v1/sites", rec["route"])
		require.EqualValues(t, 200, rec["status"])
		require.Equal(t, "admin", rec["user"])
		found = true
	}
	require.True(t, found, "access log line with the request id")

	// The error answer carries the id too, so a person can quote it.
	r = h.do("GET", "/api/v1/sites/none", h.admin, nil)
	var eb api.ErrorBody
	r.json(t, &eb)
	require.Equal(t, r.header.Get("X-Request-ID"), eb.Error.RequestID)
}

func TestMetrics(t *testing.T) {
	h := newHarness(t, storetest.SQLite(t, testSchema...), nil)
	h.do("GET", "/healthz", "", nil)
	h.do("GET", "/api/v1/sites/abc", h.admin, nil)
	r := h.do("GET", "/metrics", "", nil)
	require.Equal(t, 200, r.status)
	text := string(r.body)
	require.Contains(t, text, `offsite_http_requests_total{method="GET",route="/healthz",status="200"} 1`)
	require.Contains(t, text, `offsite_http_requests_total{method="GET",route="/api/v1/sites/:id",status="404"} 1`)
	require.Contains(t, text, `offsite_http_request_duration_seconds_bucket{method="GET",route="/healthz"`)
	require.Contains(t, text, "go_goroutines", "a fresh registry gets the Go collector")
	require.NotContains(t, text, "route=\"/api/v1/sites/abc\"", "raw paths are not labels")
}

func TestStartAndShutdown(t *testing.T) {
	h := newHarness(t, storetest.SQLite(t, testSchema...), nil)
	h.srv.Listen = "127.0.0.1:0"
	require.NoError(t, h.srv.Start())
	addr := h.srv.Addr()
	require.NotEmpty(t, addr)

	res, err := http.Get("http://" + addr + "/healthz")
	require.NoError(t, err)
	_ = res.Body.Close()
	require.Equal(t, 200, res.StatusCode)

	// A second server on the same address reports the bind error from Start.
	other := &api.Server{Listen: addr, DB: h.db, Auth: h.auth, Devices: h.srv.Devices}
	require.NoError(t, other.Initialize())
	require.Error(t, other.Start())

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, h.srv.Shutdown(ctx))
	_, err = http.Get("http://" + addr + "/healthz")
	require.Error(t, err)
}
