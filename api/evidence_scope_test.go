package api_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// Evidence goes only to users who may see an event or alert it is attached to: an officer's
// photo attached to a housing alert is not served to a viewer of another department who has
// its URL (the security review's finding), nor to a maintainer (not device health); the
// refusals and the downloads are audited.
func TestEvidenceIsScopedToItsEventsAndAlerts(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		h := newEventsHarness(t, db, nil)
		r := h.do("POST", "/api/v1/events", h.service, houseEvent("扬尘超标"))
		require.Equal(t, 201, r.status, string(r.body))
		var alerts struct{ Alerts []struct{ ID string } }
		h.do("GET", "/api/v1/alerts", h.house, nil).json(t, &alerts)
		require.Len(t, alerts.Alerts, 1)
		id := alerts.Alerts[0].ID

		r = h.do("POST", "/api/v1/evidence", h.house, string(pngBytes), "Content-Type", "image/png")
		require.Equal(t, 201, r.status, string(r.body))
		var up struct{ SHA256, URL string }
		r.json(t, &up)
		require.Equal(t, 200, h.do("POST", "/api/v1/alerts/"+id+"/claim", h.house, map[string]any{"attachments": []string{up.SHA256}}).status)

		_, envViewer := h.user("kan-env", auth.RoleViewer, []string{deptEnv}, nil)
		_, houseViewer := h.user("kan-house", auth.RoleViewer, []string{deptHouse}, nil)
		_, maint := h.user("weihu", auth.RoleMaintainer, nil, nil)

		r = h.do("GET", up.URL, envViewer, nil)
		require.Equal(t, 404, r.status, "another department's evidence")
		require.Equal(t, "evidence_not_found", r.errCode(t))
		require.Equal(t, 404, h.do("GET", up.URL, h.env, nil).status)
		require.Equal(t, 404, h.do("GET", up.URL, maint, nil).status, "not device health")
		require.Equal(t, 404, h.do("GET", up.URL+"?token="+envViewer, "", nil).status, "<img src> too")

		for _, tok := range []string{houseViewer, h.house, h.admin} {
			r = h.do("GET", up.URL, tok, nil)
			require.Equal(t, 200, r.status)
			require.Equal(t, pngBytes, r.body)
		}

		downloads := h.auditEntries(audit.Filter{Action: "evidence.view"}) // inline: <img>, no ?download=1
		var denied, ok int
		for _, e := range downloads {
			require.Equal(t, up.SHA256+".png", e.Target)
			switch e.Result {
			case "denied", "failed":
				denied++
			case "ok":
				ok++
			}
		}
		require.Equal(t, 4, denied)
		require.Equal(t, 3, ok)
	})
}
