package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/api"
	"github.com/offsite-gw/offsite/api/dashboard"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// Every error answer — wrong method included, with the dashboard mounted as in the gateway —
// is JSON {"error":{"code","message"}} (the review found plain-text 405s under a JSON type).
func TestEveryErrorAnswerIsJSON(t *testing.T) {
	h := newHarness(t, storetest.SQLite(t, testSchema...), nil)
	h.srv.UI = dashboard.Handler()
	h.srv.Listen = "127.0.0.1:0"
	require.NoError(t, h.srv.Start())
	t.Cleanup(func() { _ = h.srv.Shutdown(t.Context()) })
	base := "http://" + h.srv.Addr()
	for _, c := range []struct {
		method, path, token string
		status              int
	}{
		{"POST", "/", "", 405},
		{"DELETE", "/healthz", "", 405},
		{"PUT", "/api/v1/users", h.admin, 405},
		{"PATCH", "/api/v1/cameras/x/whep/y", h.admin, 405},
		{"POST", "/api/v1/nope", h.admin, 405},
		{"GET", "/api/v1/nope", h.admin, 404},
		{"GET", "/api/v1/users", "", 401},
		{"POST", "/api/v1/sites", h.admin, 415},
	} {
		req, _ := http.NewRequest(c.method, base+c.path, strings.NewReader("x"))
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		if c.method == "POST" && c.path == "/api/v1/sites" {
			req.Header.Set("Content-Type", "text/plain")
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		require.Equal(t, c.status, res.StatusCode, "%s %s: %s", c.method, c.path, b)
		require.Contains(t, res.Header.Get("Content-Type"), "application/json", "%s %s", c.method, c.path)
		var eb api.ErrorBody
		require.NoError(t, json.Unmarshal(b, &eb), "%s %s: %q", c.method, c.path, b)
		require.NotEmpty(t, eb.Error.Code, "%s %s", c.method, c.path)
		require.NotEmpty(t, eb.Error.Message, "%s %s: %s", c.method, c.path, b)
	}
}
