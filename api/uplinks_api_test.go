package api_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/api"
	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/events/uplink/provincesim"
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// A provincesim receiver rejects one event: the uplink's status and dead letter show it, and
// an admin re-sends it once the receiver accepts it.
func TestUplinksAndDeadLetters(t *testing.T) {
	var rejecting atomic.Bool
	rejecting.Store(true)
	sim := &provincesim.Handler{Secret: []byte("province-secret"), Reject: func(ev map[string]json.RawMessage) string {
		var msg string
		_ = json.Unmarshal(ev["message"], &msg)
		if msg == "拒收" && rejecting.Load() {
			return "supervision_item_unknown"
		}
		return ""
	}}
	require.NoError(t, sim.Initialize())
	ps := &provincesim.Server{Addr: "127.0.0.1:0", Handler: sim}
	require.NoError(t, ps.Start())
	t.Cleanup(ps.Stop)

	var ups *uplink.Set
	h := newEventsHarness(t, storetest.SQLite(t, testSchema...), func(h *evHarness, s *api.Server) {
		ups = &uplink.Set{GatewayID: "gw-test", Log: h.log, Configs: []uplink.Config{{Name: "province", BaseURL: ps.URL(),
			Secret: "province-secret", BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond}}}
		require.NoError(t, ups.Initialize())
		t.Cleanup(ups.Close)
		s.Uplinks = ups
	})
	missing, err := h.srv.UndocumentedRoutes()
	require.NoError(t, err)
	require.Empty(t, missing)
	ctx := context.Background()
	evs, err := h.log.Append(ctx,
		event.Event{Type: "sensor.threshold", Department: deptHouse, Message: "超标", OccurredAt: time.Now()},
		event.Event{Type: "sensor.threshold", Department: deptHouse, Message: "拒收", OccurredAt: time.Now()},
		event.Event{Type: "device.offline", Department: deptEnv, Message: "离线", OccurredAt: time.Now()})
	require.NoError(t, err)

	status := func(token string) uplink.Status {
		r := h.do("GET", "/api/v1/uplinks", token, nil)
		require.Equal(t, 200, r.status, string(r.body))
		var out struct{ Uplinks []uplink.Status }
		r.json(t, &out)
		require.Len(t, out.Uplinks, 1)
		return out.Uplinks[0]
	}
	require.Eventually(t, func() bool { return status(h.admin).Cursor == evs[2].Seq }, 10*time.Second, 20*time.Millisecond)
	st := status(h.admin)
	require.Equal(t, "province", st.Name)
	require.EqualValues(t, 1, st.DeadLetters)
	require.EqualValues(t, 2, st.Delivered)
	require.True(t, sim.Has(evs[0].ID))
	require.False(t, sim.Has(evs[1].ID))

	// Roles: maintainers see the status, only admins the dead letters.
	_, maint := h.user("weihu", auth.RoleMaintainer, nil, nil)
	require.Equal(t, "province", status(maint).Name)
	require.Equal(t, 403, h.do("GET", "/api/v1/uplinks", h.house, nil).status)
	require.Equal(t, 403, h.do("GET", "/api/v1/uplinks/province/dead-letters", maint, nil).status)
	require.Equal(t, 403, h.do("POST", "/api/v1/uplinks/province/dead-letters/resend", maint, map[string]any{}).status)

	deadLetters := func(q string) []uplink.DeadLetter {
		r := h.do("GET", "/api/v1/uplinks/province/dead-letters"+q, h.admin, nil)
		require.Equal(t, 200, r.status, string(r.body))
		var out struct {
			DeadLetters []uplink.DeadLetter `json:"dead_letters"`
		}
		r.json(t, &out)
		return out.DeadLetters
	}
	dls := deadLetters("")
	require.Len(t, dls, 1)
	require.Equal(t, evs[1].ID, dls[0].EventID)
	require.Contains(t, dls[0].Reason, "supervision_item_unknown")
	require.Equal(t, 404, h.do("GET", "/api/v1/uplinks/nope/dead-letters", h.admin, nil).status)
	require.Equal(t, 400, h.do("GET", "/api/v1/uplinks/province/dead-letters?all=maybe", h.admin, nil).status)

	// Still rejected: it stays a dead letter with the new answer.
	r := h.do("POST", "/api/v1/uplinks/province/dead-letters/resend", h.admin, map[string]any{"ids": []string{evs[1].ID}})
	require.Equal(t, 200, r.status, string(r.body))
	var res uplink.ResendResult
	r.json(t, &res)
	require.Empty(t, res.Delivered)
	require.Len(t, res.Rejected, 1)
	require.Equal(t, 404, h.do("POST", "/api/v1/uplinks/province/dead-letters/resend", h.admin, map[string]any{"ids": []string{evs[0].ID}}).status)
	require.Equal(t, 400, h.do("POST", "/api/v1/uplinks/province/dead-letters/resend", h.admin, map[string]any{"ids": []string{"x"}}).status)

	// Accepted now: resolved, gone from the default list, kept with all=true.
	rejecting.Store(false)
	r = h.do("POST", "/api/v1/uplinks/province/dead-letters/"+evs[1].ID+"/resend", h.admin, nil)
	require.Equal(t, 200, r.status, string(r.body))
	r.json(t, &res)
	require.Equal(t, []string{evs[1].ID}, res.Delivered)
	require.True(t, sim.Has(evs[1].ID))
	require.Empty(t, deadLetters(""))
	all := deadLetters("?all=true")
	require.Len(t, all, 1)
	require.NotNil(t, all[0].ResolvedAt)
	require.EqualValues(t, 0, status(h.admin).DeadLetters)

	var got []string
	for _, e := range h.auditEntries(audit.Filter{Action: "uplink."}) {
		got = append(got, e.Action+" "+e.Target+" "+e.Result)
	}
	require.Equal(t, []string{"uplink.resend province ok", "uplink.resend province failed", "uplink.resend province failed",
		"uplink.resend province ok"}, reverse(got))
}

func reverse(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}
