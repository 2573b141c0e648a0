package streams_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/streams"
	"github.com/offsite-gw/offsite/streams/simcam"
)

// The WHEP endpoint refuses without a token (401), with a token that may not see the camera
// (403), a non-SDP body (415); PATCH is 405 (no trickle ICE); OPTIONS advertises application/sdp.
func TestHandlerAuthAndMethods(t *testing.T) {
	r := newRelay(t, nil)
	require.NoError(t, r.m.AddCamera(streams.CameraConfig{ID: "cam", URL: "rtsp://127.0.0.1:1/none"}))
	do := func(method, path, token, ctype, body string) *http.Response {
		req, _ := http.NewRequest(method, r.srv.URL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	require.Equal(t, 401, do("POST", "/api/v1/cameras/cam/whep", "", "application/sdp", "v=0").StatusCode)
	require.Equal(t, 403, do("POST", "/api/v1/cameras/cam/whep", "other-user", "application/sdp", "v=0").StatusCode)
	require.Equal(t, 415, do("POST", "/api/v1/cameras/cam/whep", testToken, "application/json", "{}").StatusCode)
	require.Equal(t, 422, do("POST", "/api/v1/cameras/cam/whep", testToken, "application/sdp", "hello").StatusCode)
	require.Equal(t, 404, do("POST", "/api/v1/cameras/nope/whep", testToken, "application/sdp", "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n").StatusCode)
	require.Equal(t, 405, do("PATCH", "/api/v1/cameras/cam/whep/abc", testToken, "application/trickle-ice-sdpfrag", "").StatusCode)
	require.Equal(t, 404, do("DELETE", "/api/v1/cameras/cam/whep/abc", testToken, "", "").StatusCode)
	opt := do("OPTIONS", "/api/v1/cameras/cam/whep", "", "", "")
	require.Equal(t, 204, opt.StatusCode)
	require.Equal(t, "application/sdp", opt.Header.Get("Accept-Post"))
}

// Metrics are exported through the Registerer.
func TestMetrics(t *testing.T) {
	sim := startSim(t, &simcam.Server{Cameras: []simcam.Camera{{Path: "c", Clip: demoClip(t, "hall-entrance")}}})
	reg := prometheus.NewRegistry()
	r := newRelay(t, func(m *streams.Manager) { m.Registerer = reg })
	require.NoError(t, r.m.AddCamera(streams.CameraConfig{ID: "cam", URL: sim.URL("c"), AlwaysOn: true}))
	cam, _ := r.m.Camera("cam")
	waitFor(t, 10*time.Second, "online", func() bool { return cam.Status().State == "online" })
	mfs, err := reg.Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"offsite_streams_camera_state", "offsite_streams_packets_in_total", "offsite_streams_relay_latency_seconds"} {
		require.True(t, names[n], n)
	}
}
