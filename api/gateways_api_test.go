package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// signedDo sends a body to a centre route signed as a site gateway does.
func (h *fullHarness) signedDo(t *testing.T, method, path, gw, secret string, body []byte) resp {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	require.NoError(t, uplink.SignRequest(req, gw, uplink.AlgSM3, []byte(secret), time.Now(), body))
	res, err := h.srv.App().Test(req, -1)
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// Enrolment is the admin's; a maintainer reads the gateways' health; a site's signed batch and
// inventory go through the literal /offsite/v1/events:batch route; children's sites are
// listed with their gateway and scoped like the centre's own.
func TestGatewaysEnrolmentIntakeAndScope(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		h := newFullHarness(t, db)
		_, maint := h.user("weihu", auth.RoleMaintainer, nil, nil)
		env := h.env

		r := h.do("POST", "/api/v1/gateways", maint, map[string]any{"id": "gw-plant", "name": "污水厂网关"})
		require.Equal(t, 403, r.status, string(r.body))
		r = h.do("POST", "/api/v1/gateways", h.admin, map[string]any{"id": "gw-plant", "name": "污水厂网关", "base_url": "http://10.0.3.7:8080"})
		require.Equal(t, 201, r.status, string(r.body))
		var enrolled struct {
			ID, Secret, State string
		}
		r.json(t, &enrolled)
		require.Equal(t, "gw-plant", enrolled.ID)
		require.GreaterOrEqual(t, len(enrolled.Secret), 32)
		require.Equal(t, devices.GatewayUnknown, enrolled.State)
		r = h.do("POST", "/api/v1/gateways", h.admin, map[string]any{"id": "gw-plant"})
		require.Equal(t, 409, r.status)
		r = h.do("POST", "/api/v1/gateways", h.admin, map[string]any{"id": "bad id!", "base_url": "ftp://x"})
		require.Equal(t, 400, r.status)
		require.Contains(t, string(r.body), "base_url")

		// The list never shows the secret again.
		r = h.do("GET", "/api/v1/gateways", maint, nil)
		require.Equal(t, 200, r.status)
		require.NotContains(t, string(r.body), enrolled.Secret)
		r = h.do("GET", "/api/v1/gateways", env, nil)
		require.Equal(t, 403, r.status)

		// A batch, signed; then the same request replayed, and one signed with a wrong secret.
		ev := event.Event{ID: "01JDB00000000000000000PAN7", Type: "sensor.threshold", Severity: "major", State: "active",
			AlarmKey: "cod-1/cod-high", OccurredAt: time.Now().UTC().Truncate(time.Millisecond), GatewayID: "gw-plant",
			Site: &event.Site{ID: "plant", Name: "污水处理厂", RegionCode: "410702"}, Department: deptEnv, Message: "COD 超标"}
		raw, _ := json.Marshal(&ev)
		ev.Raw = raw
		body := uplink.EncodeBatch("gw-plant", []event.Event{ev})
		req := httptest.NewRequest("POST", "/offsite/v1/events:batch", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		require.NoError(t, uplink.SignRequest(req, "gw-plant", uplink.AlgSM3, []byte(enrolled.Secret), time.Now(), body))
		res, err := h.srv.App().Test(req, -1)
		require.NoError(t, err)
		b, _ := io.ReadAll(res.Body)
		require.Equal(t, 200, res.StatusCode, string(b))
		var answer uplink.BatchResponse
		require.NoError(t, json.Unmarshal(b, &answer))
		require.Equal(t, []string{ev.ID}, answer.Accepted, string(b))
		replay := httptest.NewRequest("POST", "/offsite/v1/events:batch", bytes.NewReader(body))
		replay.Header = req.Header.Clone()
		res, err = h.srv.App().Test(replay, -1)
		require.NoError(t, err)
		b, _ = io.ReadAll(res.Body)
		require.Equal(t, http.StatusUnauthorized, res.StatusCode)
		require.Contains(t, string(b), `"replayed_request"`)
		r = h.signedDo(t, "POST", "/offsite/v1/events:batch", "gw-plant", "a-wrong-secret-of-enough-length", body)
		require.Equal(t, 401, r.status)
		require.Equal(t, "bad_signature", r.errCode(t))

		// The officer of 市生态环境局 sees the alert the centre opened for it.
		r = h.do("GET", "/api/v1/alerts", env, nil)
		require.Equal(t, 200, r.status)
		require.Contains(t, string(r.body), ev.ID)

		// The inventory: the plant appears among the centre's sites, scoped.
		inv, _ := json.Marshal(devices.Inventory{GatewayID: "gw-plant", Revision: 1,
			Sites:   []devices.Site{{ID: "plant", Name: "污水处理厂", Department: deptEnv, RegionCode: "410702"}},
			Devices: []devices.InventoryDevice{{ID: "cod-1", SiteID: "plant", Kind: devices.KindSensor, Name: "COD 在线监测", State: "online"}}})
		r = h.signedDo(t, "PUT", "/offsite/v1/inventory", "gw-plant", enrolled.Secret, inv)
		require.Equal(t, 200, r.status, string(r.body))
		r = h.do("GET", "/api/v1/sites", env, nil)
		var sites struct{ Sites []map[string]any }
		r.json(t, &sites)
		found := false
		for _, s := range sites.Sites {
			require.NotEqual(t, deptHouse, s["department"])
			if s["id"] == "plant" {
				found = true
				require.Equal(t, "gw-plant", s["gateway"])
			}
		}
		require.True(t, found, "the child's site is listed: %s", r.body)
		r = h.do("GET", "/api/v1/devices/cod-1", env, nil)
		require.Equal(t, 200, r.status, string(r.body))
		require.Contains(t, string(r.body), `"gateway":"gw-plant"`)
		require.Contains(t, string(r.body), `"state":"online"`)
		r = h.do("GET", "/api/v1/devices/cod-1", h.house, nil)
		require.Equal(t, 404, r.status, "another department's officer does not see it")

		r = h.do("GET", "/api/v1/gateways/gw-plant", h.admin, nil)
		var g devices.Gateway
		r.json(t, &g)
		require.Equal(t, devices.GatewayOnline, g.State)
		require.EqualValues(t, 1, g.InventoryRevision)
		require.EqualValues(t, 2, g.Refused, "the replay and the wrong secret")

		// Rotating the secret: the old one stops working.
		r = h.do("POST", "/api/v1/gateways/gw-plant/secret", h.admin, nil)
		require.Equal(t, 200, r.status)
		r = h.signedDo(t, "PUT", "/offsite/v1/inventory", "gw-plant", enrolled.Secret, inv)
		require.Equal(t, 401, r.status)
		r = h.do("DELETE", "/api/v1/gateways/gw-plant", h.admin, nil)
		require.Equal(t, 204, r.status)
		r = h.do("GET", "/api/v1/devices/cod-1", h.admin, nil)
		require.Equal(t, 404, r.status, "its inventory goes with it")
	})
}
