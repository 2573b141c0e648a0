package api_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/ingest"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
	"github.com/offsite-gw/offsite/streams"
)

// fakeRateLimits stands in for the embedded broker's list of rate-limited devices.
type fakeRateLimits struct{ stats []ingest.RateLimitStat }

func (f *fakeRateLimits) RateLimited() []ingest.RateLimitStat { return f.stats }

// RTSP consumers: only an admin creates, lists and revokes them; the secret is answered once
// and its Digest HA1 is what the store keeps; each change is audited.
func TestRTSPConsumersRoutes(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		h := newFullHarness(t, db)
		_, maint := h.user("weihu", auth.RoleMaintainer, nil, nil)

		r := h.do("POST", "/api/v1/rtsp-consumers", maint, map[string]string{"name": "analytics-1"})
		require.Equal(t, 403, r.status, string(r.body))
		r = h.do("GET", "/api/v1/rtsp-consumers", h.house, nil)
		require.Equal(t, 403, r.status)

		r = h.do("POST", "/api/v1/rtsp-consumers", h.admin, map[string]string{"name": "analytics-1", "note": "host A"})
		require.Equal(t, 201, r.status, string(r.body))
		var created struct {
			Consumer streams.Consumer `json:"consumer"`
			Username string           `json:"username"`
			Secret   string           `json:"secret"`
			URL      string           `json:"url"`
		}
		r.json(t, &created)
		require.Equal(t, "analytics-1", created.Username)
		require.Equal(t, "admin", created.Consumer.CreatedBy)
		require.Len(t, created.Secret, 32)
		cred, ok, err := h.consumers.RTSPCredential(context.Background(), "analytics-1")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, streams.DigestHA1("analytics-1", created.Secret), cred.HA1)

		r = h.do("POST", "/api/v1/rtsp-consumers", h.admin, map[string]string{"name": "analytics-1"})
		require.Equal(t, 409, r.status)
		r = h.do("POST", "/api/v1/rtsp-consumers", h.admin, map[string]string{"name": "Analytics 1!"})
		require.Equal(t, 400, r.status)
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		require.NoError(t, json.Unmarshal(r.body, &e))
		require.Equal(t, "bad_consumer_name", e.Error.Code)

		r = h.do("DELETE", "/api/v1/rtsp-consumers/analytics-1", h.admin, nil)
		require.Equal(t, 200, r.status, string(r.body))
		_, ok, err = h.consumers.RTSPCredential(context.Background(), "analytics-1")
		require.NoError(t, err)
		require.False(t, ok, "revoked consumer still logs in")
		r = h.do("DELETE", "/api/v1/rtsp-consumers/nobody", h.admin, nil)
		require.Equal(t, 404, r.status)

		r = h.do("GET", "/api/v1/rtsp-consumers", h.admin, nil)
		require.Equal(t, 200, r.status)
		var list struct{ Consumers []streams.Consumer }
		r.json(t, &list)
		require.Len(t, list.Consumers, 1)
		require.NotNil(t, list.Consumers[0].RevokedAt)
		require.NotContains(t, string(r.body), created.Secret)

		r = h.do("GET", "/api/v1/audit?action=rtsp_consumer.create", h.admin, nil)
		require.Equal(t, 200, r.status)
		require.Contains(t, string(r.body), "rtsp_consumer.create")
		r = h.do("GET", "/api/v1/audit?action=rtsp_consumer.revoke", h.admin, nil)
		require.Contains(t, string(r.body), "rtsp_consumer.revoke")
	})
}

// Rate-limited devices are listed to those who may see the device.
func TestRateLimitedRoute(t *testing.T) {
	h := newFullHarness(t, storetest.SQLite(t, testSchema...))
	h.rateLimits.stats = []ingest.RateLimitStat{{Device: "sen-house-1", Site: "site-house", Dropped: 4980, Last: time.Now(), Limit: 10.0 / 60}}
	r := h.do("GET", "/api/v1/ingest/rate-limited", h.house, nil)
	require.Equal(t, 200, r.status, string(r.body))
	var got struct{ Devices []ingest.RateLimitStat }
	r.json(t, &got)
	require.Len(t, got.Devices, 1)
	require.Equal(t, int64(4980), got.Devices[0].Dropped)
	r = h.do("GET", "/api/v1/ingest/rate-limited", h.env, nil)
	require.Equal(t, 200, r.status)
	r.json(t, &got)
	require.Empty(t, got.Devices, "another department's device")
}
