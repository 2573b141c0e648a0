package streams_test

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/streams"
	"github.com/offsite-gw/offsite/streams/simcam"
)

//go:embed browsertest/player.html
var playerHTML []byte

type browserStats struct {
	State         string `json:"state"`
	Status        int    `json:"status"`
	Error         string `json:"error"`
	FramesDecoded int    `json:"framesDecoded"`
	FrameWidth    int    `json:"frameWidth"`
	FirstFrameMs  int    `json:"firstFrameMs"`
}

// Headless Chromium plays a camera over WHEP and decodes frames (the camera sends SPS/PPS only
// in the SDP and a keyframe every 4 s); after a camera reboot it decodes again without reloading.
func TestBrowserWHEP(t *testing.T) {
	dir, _ := filepath.Abs("browsertest")
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	missing := ""
	if _, err := exec.LookPath("node"); err != nil {
		missing = "node is not installed"
	} else if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		missing = "streams/browsertest/node_modules is missing (run npm ci there)"
	} else if _, err := os.Stat(chromium); err != nil {
		missing = "chromium is not installed (apt-get install -y chromium)"
	}
	if missing != "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(missing)
		}
		t.Skip(missing)
	}

	sim := startSim(t, &simcam.Server{Cameras: []simcam.Camera{{Path: "c", Clip: demoClip(t, "waiting-area"), Audio: true}}})
	r := newRelay(t, nil)
	require.NoError(t, r.m.AddCamera(streams.CameraConfig{ID: "cam-b", URL: sim.URL("c"), AlwaysOn: true}))
	cam, _ := r.m.Camera("cam-b")
	waitFor(t, 10*time.Second, "online", func() bool { return cam.Status().State == "online" })

	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write(playerHTML)
	}))
	defer page.Close()
	pageURL := page.URL + "/?endpoint=" + url.QueryEscape(r.endpoint("cam-b")) + "&token=" + testToken

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "play.mjs", pageURL, "40000")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	var mu sync.Mutex
	var last browserStats
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var s browserStats
			if json.Unmarshal(sc.Bytes(), &s) == nil {
				mu.Lock()
				last = s
				mu.Unlock()
			}
		}
	}()
	get := func() browserStats {
		mu.Lock()
		defer mu.Unlock()
		return last
	}
	waitFor(t, 30*time.Second, "Chromium to decode frames", func() bool { return get().FramesDecoded > 10 })
	s := get()
	require.Equal(t, 201, s.Status, s.Error)
	require.Equal(t, 640, s.FrameWidth)
	t.Logf("first frame decoded %d ms after page start (camera keyframe interval 4 s)", s.FirstFrameMs)

	sim.SetDown("c", true)
	waitFor(t, 6*time.Second, "camera offline", func() bool { return cam.Status().State == "offline" })
	time.Sleep(time.Second)
	sim.SetDown("c", false)
	waitFor(t, 10*time.Second, "camera online", func() bool { return cam.Status().State == "online" })
	before := get().FramesDecoded
	waitFor(t, 15*time.Second, "Chromium to decode again after the reboot", func() bool { return get().FramesDecoded > before+25 })
	require.Equal(t, 1, r.whep.Sessions(), "the same session, no reload")
}
