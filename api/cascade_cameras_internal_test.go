package api

import (
	"testing"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/streams"
)

// A tile at the centre must say why a site camera is dark in the words that fit the cause:
// the link (site gateway unreachable), the credential, or the site's own camera.
func TestChildViewReason(t *testing.T) {
	siteOK := devices.InventoryDevice{ID: "cam-1", SiteID: "s1", Kind: devices.KindCamera, Gateway: "gw-1", State: "online"}
	siteDown := siteOK
	siteDown.State, siteDown.Reason = "offline", "camera_unreachable"
	cases := []struct {
		name       string
		dev        devices.InventoryDevice
		relay      *streams.CameraStatus
		state, why string
	}{
		{"not pulled: the site's view", siteOK, nil, "online", ""},
		{"pull plays", siteOK, &streams.CameraStatus{State: "online"}, "online", ""},
		{"pull starting", siteOK, &streams.CameraStatus{State: "connecting"}, "online", ""},
		{"site refuses connections", siteOK, &streams.CameraStatus{State: "offline", Reason: "dial tcp 127.0.0.1:8555: connect: connection refused; retrying in 2s"}, "offline", "gateway_unreachable"},
		{"site dropped the stream", siteOK, &streams.CameraStatus{State: "offline", Reason: "EOF; retrying in 1s"}, "offline", "gateway_unreachable"},
		{"pull went silent", siteOK, &streams.CameraStatus{State: "stalled", Reason: "no packets for 5s"}, "offline", "gateway_unreachable"},
		{"site refuses the centre", siteOK, &streams.CameraStatus{State: "offline", Reason: "bad status code: 401 (Unauthorized)"}, "offline", "gateway_auth_failed"},
		{"camera down at the site", siteDown, &streams.CameraStatus{State: "stalled", Reason: "no packets for 5s"}, "offline", "camera_unreachable"},
	}
	for _, c := range cases {
		status := map[string]streams.CameraStatus{}
		if c.relay != nil {
			st := *c.relay
			st.ID = c.dev.ID
			status[c.dev.ID] = st
		}
		cv := childView(c.dev, status)
		if cv.State != c.state || cv.ReasonCode != c.why {
			t.Errorf("%s: state %q reason %q, want %q %q", c.name, cv.State, cv.ReasonCode, c.state, c.why)
		}
	}
}
