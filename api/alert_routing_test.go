package api_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// Issue 16 item 3: device-health alerts go to the maintainers of the site's region, violations
// and risks to the officers of the site's department — in the list, on the alert and on the
// live stream. An officer does not get maintenance work.
func TestAlertRoutingMaintainerVersusOfficer(t *testing.T) {
	h := newEventsHarness(t, storetest.SQLite(t, testSchema...), nil)
	base := h.start()
	_, maint := h.user("weihu", auth.RoleMaintainer, nil, []string{"4107"})     // looks after 新乡 (site-env is 410702)
	_, farMaint := h.user("weihu2", auth.RoleMaintainer, nil, []string{"3501"}) // another city
	officerStream := openStream(t, base, h.env, "", "&type=alert.")
	defer officerStream.close()
	maintStream := openStream(t, base, maint, "", "&type=alert.")
	defer maintStream.close()

	post := func(typ, key, msg string) {
		t.Helper()
		r := h.do("POST", "/api/v1/events", h.service, map[string]any{"type": typ, "severity": "major", "state": "active",
			"alarm_key": key, "device": map[string]any{"id": "cam-env-1"}, "message": msg})
		require.Equal(t, 201, r.status, string(r.body))
	}
	post("device.offline", "cam-env-1/offline", "摄像机离线")
	post("video.tamper", "cam-env-1/tamper", "摄像机画面被遮挡")
	post("video.staff_absent", "cam-env-1/staff_absent", "窗口无人值守")

	list := func(token string) []events.Alert {
		r := h.do("GET", "/api/v1/alerts", token, nil)
		require.Equal(t, 200, r.status, string(r.body))
		var out struct{ Alerts []events.Alert }
		r.json(t, &out)
		return out.Alerts
	}
	typesOf := func(als []events.Alert) []string {
		var out []string
		for _, a := range als {
			out = append(out, a.Type)
		}
		return out
	}
	require.Equal(t, []string{"video.staff_absent"}, typesOf(list(h.env)), "the officer gets the violation only")
	require.ElementsMatch(t, []string{"device.offline", "video.tamper"}, typesOf(list(maint)), "the maintainer gets his work orders")
	require.Empty(t, list(farMaint), "a maintainer of another region gets nothing")
	require.Len(t, list(h.admin), 3)
	r := h.do("GET", "/api/v1/alerts?limit=2", h.admin, nil)
	var page struct {
		Alerts []events.Alert
		Limit  int
		More   bool
	}
	r.json(t, &page)
	require.Len(t, page.Alerts, 2)
	require.True(t, page.More, "a list cut at its limit says so")
	r = h.do("GET", "/api/v1/alerts?limit=3", h.admin, nil)
	r.json(t, &page)
	require.False(t, page.More)

	// The alert itself: an officer cannot open a work order's page.
	for _, al := range list(maint) {
		require.Equal(t, 404, h.do("GET", "/api/v1/alerts/"+al.ID, h.env, nil).status)
		require.Equal(t, 404, h.do("POST", "/api/v1/alerts/"+al.ID+"/claim", h.env, nil).status)
		require.Equal(t, 200, h.do("GET", "/api/v1/alerts/"+al.ID, maint, nil).status)
		require.Equal(t, events.AudienceMaintainers, al.Audience)
	}

	// The live stream: the same split.
	read := func(s *sseStream, n int) []string {
		t.Helper()
		var got []string
		for len(got) < n {
			f, ok := s.next()
			require.True(t, ok)
			require.Equal(t, "alert.opened", f.typ)
			got = append(got, f.event.Message)
		}
		return got
	}
	require.Equal(t, []string{"窗口无人值守"}, read(officerStream, 1))
	require.Equal(t, []string{"摄像机离线", "摄像机画面被遮挡"}, read(maintStream, 2))

	// Nothing more reaches the officer: a marker violation arrives next, not the work orders.
	r = h.do("POST", "/api/v1/events", h.service, map[string]any{"type": "video.crowding", "severity": "minor", "state": "active",
		"alarm_key": "cam-env-1/crowding", "device": map[string]any{"id": "cam-env-1"}, "message": "人员聚集", "occurred_at": time.Now().UTC().Format(time.RFC3339)})
	require.Equal(t, 201, r.status, string(r.body))
	require.Equal(t, []string{"人员聚集"}, read(officerStream, 1))
}
