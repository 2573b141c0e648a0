package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/events/uplink"
)

// siteSecret is what demo.json says gateway id signs to the centre with.
func siteSecret(t *testing.T, dir, id string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "demo.json"))
	require.NoError(t, err)
	var dj struct {
		Gateways []struct{ ID, Secret string }
	}
	require.NoError(t, json.Unmarshal(b, &dj))
	for _, g := range dj.Gateways {
		if g.ID == id {
			require.NotEmpty(t, g.Secret)
			return g.Secret
		}
	}
	t.Fatalf("no gateway %s in demo.json", id)
	return ""
}

// doSigned sends method path (body) to base with the headers a centre signs with, made by
// sign (nil: unsigned); it returns the answer and the headers sent, for a replay.
func doSigned(t *testing.T, base, method, path string, body []byte, hdr http.Header) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func signedHeaders(t *testing.T, gateway, secret, method, path string, body []byte, at time.Time) http.Header {
	t.Helper()
	req, _ := http.NewRequest(method, "http://x"+path, nil)
	require.NoError(t, uplink.SignRequest(req, gateway, uplink.AlgSM3, []byte(secret), at, uplink.RequestSigned(method, path, body)))
	req.Header.Set("Content-Type", "application/json")
	return req.Header
}

// TestRecordingStartedAtCentreIsMadeAtSite: an officer at the city centre starts a 取证录像 of a
// camera of site gateway demo-gw-city with the centre's API. The centre forwards it, signed,
// to the site, which records from its pre-roll and lists it; both audit it, the site naming
// the centre and the officer. The clip's evidence.added travels up to the centre like any site
// event, and the centre serves the clip (fetched from the site) with the sha256 it names.
// Requests to the site that are unsigned, signed with another key, stale or replayed are
// refused with 401, audited and counted; a site that cannot be reached is 503
// site_unreachable, and one without an address the old 409 record_at_site.
func TestRecordingStartedAtCentreIsMadeAtSite(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the demo city and records a minute of video")
	}
	p := startProvince(t, "province-secret-"+ulid.Make().String())
	dir, dj, out := startCity(t, p)
	centre := dj.HTTP
	const site = "demo-gw-city"
	siteURL, siteUsers := siteOf(t, dj, site)
	admin := login(t, centre, "admin", password(dj, "admin"))
	siteAdmin := login(t, siteURL, "admin", userPassword(siteUsers, "admin"))
	camera := ""
	for _, c := range dj.Cameras {
		if c.Gateway == site {
			camera = c.ID
			break
		}
	}
	require.NotEmpty(t, camera)
	centreRec := centre + "/api/v1/cameras/" + camera + "/recordings"
	siteRec := siteURL + "/api/v1/cameras/" + camera + "/recordings"

	// The centre knows the camera once the site's inventory arrives, and the site's camera is
	// online (its pre-roll fills); the centre's list is the site's.
	require.Eventually(t, func() bool {
		code, b := get(t, centreRec, admin)
		return code == 200 && strings.Contains(string(b), `"gateway":"`+site+`"`)
	}, 90*time.Second, 500*time.Millisecond, "the centre lists the site's recordings of %s\n%s", camera, out)
	require.Eventually(t, func() bool {
		_, b := get(t, siteURL+"/api/v1/cameras/"+camera, siteAdmin)
		return strings.Contains(string(b), `"state":"online"`)
	}, 90*time.Second, 500*time.Millisecond, "camera %s online at the site\n%s", camera, out)
	time.Sleep(3 * time.Second) // a keyframe in the pre-roll: the recording starts at the last one

	// The site's own checks answer through the centre.
	code, b := post(t, centreRec, admin, `{"minutes": 0, "reason": "中心取证"}`)
	require.Equal(t, 400, code, string(b))
	require.Contains(t, string(b), "minutes_out_of_range")
	code, b = post(t, centreRec, admin, `{"minutes": 1, "reason": " "}`)
	require.Equal(t, 400, code, string(b))
	require.Contains(t, string(b), "reason_required")

	code, b = post(t, centreRec, admin, `{"minutes": 1, "reason": "中心值班：远程取证"}`)
	require.Equal(t, 202, code, string(b))
	var started struct {
		ID, Gateway    string
		EventID        string `json:"event_id"`
		Started, Until time.Time
		MaxMinutes     int `json:"max_minutes"`
	}
	require.NoError(t, json.Unmarshal(b, &started))
	require.Equal(t, site, started.Gateway, "the answer names the gateway that records")
	require.NotEmpty(t, started.ID)
	require.NotEmpty(t, started.EventID)
	require.Positive(t, started.MaxMinutes)
	require.WithinDuration(t, started.Started.Add(time.Minute), started.Until, 2*time.Second)

	// The site lists the recording, made for the centre's officer; so does the centre.
	code, b = get(t, siteRec, siteAdmin)
	require.Equal(t, 200, code, string(b))
	require.Contains(t, string(b), started.ID)
	require.Contains(t, string(b), `"state":"recording"`)
	require.Contains(t, string(b), "admin @ demo-centre")
	code, b = get(t, centreRec, admin)
	require.Equal(t, 200, code, string(b))
	require.Contains(t, string(b), started.ID)
	code, b = get(t, siteURL+"/api/v1/events?type=evidence.manual", siteAdmin)
	require.Equal(t, 200, code)
	require.Contains(t, string(b), "取证录像：中心值班：远程取证")
	has := func(rows []auditRow, actor, result, detail string) bool {
		for _, r := range rows {
			if r.Actor == actor && r.Target == camera && r.Result == result && strings.Contains(r.Detail, detail) {
				return true
			}
		}
		return false
	}
	siteRows := auditOf(t, siteURL, siteAdmin, "camera.recording")
	require.True(t, has(siteRows, "centre:demo-centre", "ok", "centre demo-centre on behalf of user admin"), "audited at the site: %+v", siteRows)
	centreRows := auditOf(t, centre, admin, "camera.recording")
	require.True(t, has(centreRows, "admin", "ok", "forwarded to site gateway "+site), "audited at the centre: %+v", centreRows)

	// Signed requests the site refuses: 401, audited and counted.
	secret := siteSecret(t, dir, site)
	path := "/offsite/v1/cameras/" + camera + "/recordings"
	body := []byte(`{"minutes":1,"reason":"伪造","user":"mallory","centre":"demo-centre"}`)
	refused := func(hdr http.Header, sendBody []byte, method, wantCode string) {
		t.Helper()
		code, b := doSigned(t, siteURL, method, path, sendBody, hdr)
		require.Equal(t, 401, code, string(b))
		require.Contains(t, string(b), wantCode)
	}
	refused(http.Header{"Content-Type": {"application/json"}}, body, "POST", "unsigned")
	refused(signedHeaders(t, site, "not-the-secret", "POST", path, body, time.Now()), body, "POST", "bad_signature")
	refused(signedHeaders(t, site, secret, "POST", path, body, time.Now().Add(-time.Hour)), body, "POST", "stale_timestamp")
	// a good signature over another body, and one for another gateway
	refused(signedHeaders(t, site, secret, "POST", path, []byte(`{"minutes":1}`), time.Now()), body, "POST", "bad_signature")
	refused(signedHeaders(t, "demo-gw-other", secret, "POST", path, body, time.Now()), body, "POST", "bad_signature")
	// a good GET works once; its replay is refused
	hdr := signedHeaders(t, site, secret, "GET", path, nil, time.Now())
	code, b = doSigned(t, siteURL, "GET", path, nil, hdr)
	require.Equal(t, 200, code, string(b))
	require.Contains(t, string(b), started.ID)
	refused(hdr, nil, "GET", "replayed_request")
	siteRows = auditOf(t, siteURL, siteAdmin, "camera.recording")
	for _, code := range []string{"unsigned", "bad_signature", "stale_timestamp"} {
		require.True(t, has(siteRows, "uplink:?", "denied", code), "refusal %s audited at the site: %+v", code, siteRows)
	}
	require.True(t, has(auditOf(t, siteURL, siteAdmin, "camera.recordings"), "uplink:?", "denied", "replayed_request"))
	require.Equal(t, float64(3), metric(t, siteURL, `offsite_peer_recording_refused_total{code="bad_signature"}`))
	require.Equal(t, float64(1), metric(t, siteURL, `offsite_peer_recording_refused_total{code="replayed_request"}`))
	code, b = get(t, siteRec, siteAdmin)
	require.Equal(t, 200, code)
	require.NotContains(t, string(b), "mallory", "no refused request started a recording")

	// The recording ends at the site; its evidence.added reaches the centre, which serves the
	// clip (fetching it from the site) with the hash the event names.
	type clipEvent struct {
		GatewayID  string `json:"gateway_id"`
		RefEventID string `json:"ref_event_id"`
		Evidence   []struct {
			Kind, URL, SHA256 string
			CameraID          string `json:"camera_id"`
		}
	}
	var added clipEvent
	require.Eventually(t, func() bool {
		code, b := get(t, centre+"/api/v1/events?type=evidence.added&limit=500", admin)
		if code != 200 {
			return false
		}
		var l struct{ Events []clipEvent }
		if json.Unmarshal(b, &l) != nil {
			var arr []clipEvent
			if json.Unmarshal(b, &arr) != nil {
				return false
			}
			l.Events = arr
		}
		for _, e := range l.Events {
			if e.RefEventID == started.EventID {
				added = e
				return true
			}
		}
		return false
	}, 4*time.Minute, time.Second, "the recording's evidence.added reaches the centre\n%s", out)
	require.Equal(t, site, added.GatewayID)
	require.Len(t, added.Evidence, 1)
	clip := added.Evidence[0]
	require.Equal(t, "clip", clip.Kind)
	require.Equal(t, camera, clip.CameraID)
	resp, got := fetchRaw(t, centre+clip.URL+"?download=1", admin, nil)
	require.Equal(t, 200, resp.StatusCode, string(got))
	require.Equal(t, clip.SHA256, sha(got), "the centre serves the recorded clip's bytes")
	require.FileExists(t, evidencePath(filepath.Join(dir, "centre"), clip.SHA256, ".mp4"), "the centre kept its copy")
	code, b = get(t, siteRec, siteAdmin)
	require.Equal(t, 200, code)
	require.Contains(t, string(b), clip.SHA256, "the site's list shows the clip")

	// A recording attached to an alert at the centre is made for the site's event behind it.
	svc := login(t, siteURL, "analytics", userPassword(siteUsers, "analytics"))
	code, b = post(t, siteURL+"/api/v1/events", svc, fmt.Sprintf(`{"type":"video.tamper","severity":"major","state":"active","alarm_key":"%s/recfwd-test","occurred_at":%q,"device":{"id":%q},"message":"摄像机遮挡（中心取证测试）"}`,
		camera, time.Now().UTC().Format(time.RFC3339Nano), camera))
	require.Equal(t, 201, code, string(b))
	var tamper struct{ ID string }
	require.NoError(t, json.Unmarshal(b, &tamper))
	alertID := ""
	require.Eventually(t, func() bool {
		alertID = alertForEvent(t, centre, admin, tamper.ID)
		return alertID != ""
	}, 90*time.Second, 500*time.Millisecond, "the site's event raises an alert at the centre\n%s", out)
	code, b = post(t, centreRec, admin, fmt.Sprintf(`{"minutes": 1, "reason": "告警取证", "alert_id": %q}`, alertID))
	require.Equal(t, 202, code, string(b))
	var forAlert struct {
		EventID string `json:"event_id"`
	}
	require.NoError(t, json.Unmarshal(b, &forAlert))
	require.Equal(t, tamper.ID, forAlert.EventID, "the recording is evidence for the site's event of the alert")
	code, b = post(t, centreRec, admin, `{"minutes": 1, "reason": "告警取证", "alert_id": "no-such-alert"}`)
	require.Equal(t, 404, code, string(b))
	require.Contains(t, string(b), "alert_not_found")

	// A site the centre cannot reach: 503 site_unreachable; no address: the old 409.
	code, b = get(t, centre+"/api/v1/gateways/"+site, admin)
	require.Equal(t, 200, code, string(b))
	var gw map[string]any
	require.NoError(t, json.Unmarshal(b, &gw))
	setBase := func(u string) {
		t.Helper()
		body, err := json.Marshal(map[string]any{"name": gw["name"], "alg": gw["alg"], "base_url": u})
		require.NoError(t, err)
		code, b := send(t, http.MethodPut, centre+"/api/v1/gateways/"+site, admin, string(body))
		require.Equal(t, 200, code, string(b))
	}
	setBase("http://" + cbFreeAddr(t))
	code, b = post(t, centreRec, admin, `{"minutes": 1, "reason": "中心值班：远程取证"}`)
	require.Equal(t, 503, code, string(b))
	require.Contains(t, string(b), "site_unreachable")
	require.Contains(t, string(b), site)
	centreRows = auditOf(t, centre, admin, "camera.recording")
	require.True(t, has(centreRows, "admin", "failed", "site_unreachable site gateway "+site), "the failure is audited at the centre: %+v", centreRows)
	setBase("")
	code, b = post(t, centreRec, admin, `{"minutes": 1, "reason": "中心值班：远程取证"}`)
	require.Equal(t, 409, code, string(b))
	require.Contains(t, string(b), "record_at_site")
}
