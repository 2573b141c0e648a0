package streams_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/streams"
	"github.com/offsite-gw/offsite/streams/simcam"
)

// ffprobe (a real RTSP client) reads the re-served stream with the re-serve's credentials; the
// camera is pulled on demand for it; wrong credentials are refused.
func TestReserveFFprobe(t *testing.T) {
	ffprobe := need(t, "ffprobe")
	clip := genClip(t, "testsrc2-720p-g50.h264", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25", "-t", "6",
		"-c:v", "libx264", "-profile:v", "baseline", "-bf", "0", "-g", "50", "-preset", "veryfast", "-b:v", "1500k", "-pix_fmt", "yuv420p")
	sim := startSim(t, &simcam.Server{Cameras: []simcam.Camera{{Path: "hd", Clip: clip, Audio: true}}})
	r := newRelay(t, nil)
	require.NoError(t, r.m.AddCamera(streams.CameraConfig{ID: "cam-hd", URL: sim.URL("hd")}))
	var pullMu sync.Mutex
	var pulls []streams.PullEvent
	rs := &streams.Reserve{Manager: r.m, Listen: "127.0.0.1:0", Username: "worker", Password: "w0rk3r", Logger: quietLogger(),
		OnPull: func(e streams.PullEvent) { pullMu.Lock(); pulls = append(pulls, e); pullMu.Unlock() }}
	require.NoError(t, rs.Initialize())
	defer rs.Close()

	probe := func(user string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return exec.CommandContext(ctx, ffprobe, "-v", "error", "-rtsp_transport", "tcp",
			"-show_entries", "stream=codec_name,width,height,codec_type", "-of", "json",
			"rtsp://"+user+"@"+rs.Addr()+"/cam-hd").Output()
	}
	out, err := probe("worker:w0rk3r")
	require.NoError(t, err, string(out))
	var res struct {
		Streams []struct {
			CodecName string `json:"codec_name"`
			CodecType string `json:"codec_type"`
			Width     int    `json:"width"`
			Height    int    `json:"height"`
		} `json:"streams"`
	}
	require.NoError(t, json.Unmarshal(out, &res))
	require.Len(t, res.Streams, 2)
	require.Equal(t, "h264", res.Streams[0].CodecName)
	require.Equal(t, 1280, res.Streams[0].Width)
	require.Equal(t, 720, res.Streams[0].Height)
	require.Equal(t, "pcm_mulaw", res.Streams[1].CodecName)

	out, err = probe("worker:wrong")
	require.Error(t, err)
	_ = out

	// the re-serve's session ended, so the on-demand camera goes idle again
	cam, _ := r.m.Camera("cam-hd")
	waitFor(t, 8*time.Second, "camera idle after the reader left", func() bool { return cam.Status().State == "idle" })

	// The pull was reported (for the audit log) with who, which camera and from where; the
	// refused attempt never played, so it is not a pull.
	waitFor(t, 5*time.Second, "pull start and end", func() bool { pullMu.Lock(); defer pullMu.Unlock(); return len(pulls) == 2 })
	pullMu.Lock()
	defer pullMu.Unlock()
	require.Equal(t, "start", pulls[0].Kind)
	require.Equal(t, "end", pulls[1].Kind)
	for _, p := range pulls {
		require.Equal(t, "cam-hd", p.Camera)
		require.Equal(t, "worker", p.User)
		require.Contains(t, p.RemoteAddr, "127.0.0.1:")
	}
	require.Positive(t, pulls[1].BytesSent)
}

// The snapshot endpoint returns a JPEG decoded by ffmpeg from the cached GOP.
func TestSnapshot(t *testing.T) {
	need(t, "ffmpeg")
	sim := startSim(t, &simcam.Server{Cameras: []simcam.Camera{{Path: "c", Clip: demoClip(t, "service-window")}}})
	r := newRelay(t, nil)
	require.NoError(t, r.m.AddCamera(streams.CameraConfig{ID: "snap", URL: sim.URL("c")}))
	jpeg, at, err := r.snap.JPEG(ctxT(t, 15*time.Second), "snap")
	require.NoError(t, err)
	require.Greater(t, len(jpeg), 1000)
	require.Equal(t, []byte{0xff, 0xd8}, jpeg[:2], "JPEG SOI")
	require.WithinDuration(t, time.Now(), at, 5*time.Second)

	// through HTTP, with the token in the query as browsers do for <img>
	resp, err := r.srv.Client().Get(r.srv.URL + "/api/v1/cameras/snap/snapshot.jpg?token=" + testToken)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "image/jpeg", resp.Header.Get("Content-Type"))

	resp2, err := r.srv.Client().Get(r.srv.URL + "/api/v1/cameras/snap/snapshot.jpg")
	require.NoError(t, err)
	resp2.Body.Close()
	require.Equal(t, 401, resp2.StatusCode)
	resp3, err := r.srv.Client().Get(r.srv.URL + "/api/v1/cameras/nope/snapshot.jpg?token=" + testToken)
	require.NoError(t, err)
	var body map[string]map[string]string
	require.NoError(t, json.NewDecoder(resp3.Body).Decode(&body))
	resp3.Body.Close()
	require.Equal(t, 404, resp3.StatusCode)
	require.Equal(t, "camera_not_found", body["error"]["code"])

	missing := &streams.Snapshot{Manager: r.m, FFmpegPath: "/nonexistent/ffmpeg"}
	require.NoError(t, missing.Initialize())
	_, _, err = missing.JPEG(context.Background(), "snap")
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "need ffmpeg"), err.Error())
	require.Equal(t, 503, streams.StatusOf(err))
}
