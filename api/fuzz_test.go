package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/offsite-gw/offsite/api"
	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// FuzzRequestBodies sends bytes from outside to the routes that read a body, through the real
// fiber app: whatever comes, the answer is never a 500, and every error answer is the JSON
// error shape with a code and a message.
func FuzzRequestBodies(f *testing.F) {
	h := newHarness(f, storetest.SQLite(f, testSchema...), func(s *auth.Service) { s.IPBurst = 1 << 30 })
	h.srv.ImportMaxRows = 50
	f.Add(0, "application/json", []byte(`{"username":"admin","password":"x"}`))
	f.Add(1, "application/json", []byte(`{"id":"s1","name":"站","uscc":"x","region_code":"410702","department":"d"}`))
	f.Add(1, "text/plain", []byte(`{}`))
	f.Add(2, "text/csv", []byte("site_id,device_id,kind\ns,d,camera\n"))
	f.Add(3, "application/json", []byte(`{"password":"short"}`))
	f.Add(4, "application/json", []byte(`{"worker_id":"w","capacity":1e99}`))
	f.Add(1, "application/json", []byte(`{"latitude":"north"} trailing`))
	routes := []struct{ method, path string }{
		{"POST", "/api/v1/auth/login"}, {"POST", "/api/v1/sites"}, {"POST", "/api/v1/devices/import"},
		{"PUT", "/api/v1/users/nobody/password"}, {"POST", "/api/v1/devices"},
	}
	f.Fuzz(func(t *testing.T, route int, ctype string, body []byte) {
		if route < 0 {
			route = -route
		}
		r := routes[route%len(routes)]
		req := httptest.NewRequest(r.method, r.path, bytes.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		if r.path != "/api/v1/auth/login" {
			req.Header.Set("Authorization", "Bearer "+h.admin)
		}
		res, err := h.srv.App().Test(req, -1)
		if err != nil {
			t.Fatalf("%s %s: %v", r.method, r.path, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode >= 500 {
			t.Fatalf("%s %s with %q: %d %s", r.method, r.path, body, res.StatusCode, b)
		}
		if res.StatusCode >= 400 {
			var eb api.ErrorBody
			if err := json.Unmarshal(b, &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
				t.Fatalf("%s %s: error answer %d is not the JSON error shape: %q", r.method, r.path, res.StatusCode, b)
			}
		}
	})
}
