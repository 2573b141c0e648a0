package streams_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/streams"
	"github.com/offsite-gw/offsite/streams/internal/whepclient"
	"github.com/offsite-gw/offsite/streams/simcam"
)

// A connected viewer keeps its session through a frozen encoder (stalled) and a camera reboot
// (offline), and receives frames again afterwards without a new WHEP POST.
func TestCameraRestartViewerResumes(t *testing.T) {
	sim := startSim(t, &simcam.Server{Cameras: []simcam.Camera{{Path: "c", Clip: demoClip(t, "hall-entrance")}}})
	r := newRelay(t, nil) // stall 1 s, offline 3 s, backoff 200 ms..1 s
	require.NoError(t, r.m.AddCamera(streams.CameraConfig{ID: "cam", URL: sim.URL("c"), AlwaysOn: true}))
	cam, _ := r.m.Camera("cam")
	waitFor(t, 10*time.Second, "online", func() bool { return cam.Status().State == "online" })

	v := r.viewer(t, "cam")
	require.NoError(t, v.WaitFrames(ctxT(t, 10*time.Second), 10))

	// frozen encoder: stalled, then back online on the same session
	sim.SetPaused("c", true)
	waitFor(t, 5*time.Second, "stalled", func() bool { return cam.Status().State == "stalled" })
	sim.SetPaused("c", false)
	waitFor(t, 5*time.Second, "online after stall", func() bool { return cam.Status().State == "online" })

	// reboot: sessions dropped and refused for 2 s
	sim.SetDown("c", true)
	waitFor(t, 5*time.Second, "offline", func() bool { return cam.Status().State == "offline" })
	before := v.Stats().Frames
	time.Sleep(2 * time.Second)
	sim.SetDown("c", false)
	waitFor(t, 10*time.Second, "online after reboot", func() bool { return cam.Status().State == "online" })
	require.NoError(t, v.WaitFrames(ctxT(t, 10*time.Second), before+25), "viewer must resume without a new POST: %+v", v.Stats())
	require.Equal(t, 1, r.whep.Sessions())

	st := r.states.get("cam")
	require.True(t, containsSeq(st, streams.StateOnline, streams.StateStalled, streams.StateOnline), "%v", st)
	require.True(t, containsSeq(st, streams.StateOnline, streams.StateOffline, streams.StateConnecting), "%v", st)
	require.Equal(t, streams.StateOnline, st[len(st)-1])
	require.Equal(t, "video.signal_lost", streams.EventType(streams.StateOnline, streams.StateStalled))
	require.Equal(t, "device.online", streams.EventType(streams.StateOffline, streams.StateOnline))
}

func containsSeq(s []streams.State, seq ...streams.State) bool {
	for i := 0; i+len(seq) <= len(s); i++ {
		if slices.Equal(s[i:i+len(seq)], seq) {
			return true
		}
	}
	return false
}

// 50 viewers come and go (half by DELETE, half by just vanishing); sessions, goroutines and
// heap return to their baseline.
func TestViewerChurnNoLeaks(t *testing.T) {
	sim := startSim(t, &simcam.Server{Cameras: []simcam.Camera{{Path: "c", Clip: demoClip(t, "hall-entrance")}}})
	r := newRelay(t, nil)
	require.NoError(t, r.m.AddCamera(streams.CameraConfig{ID: "cam", URL: sim.URL("c"), AlwaysOn: true}))
	cam, _ := r.m.Camera("cam")
	waitFor(t, 10*time.Second, "online", func() bool { return cam.Status().State == "online" })

	api, err := whepclient.NewAPI(false)
	require.NoError(t, err)
	// warm-up: one session so lazily started pion machinery is in the baseline
	w := &whepclient.Client{API: api, Endpoint: r.endpoint("cam"), Token: testToken}
	require.NoError(t, w.Start(context.Background()))
	require.NoError(t, w.WaitFrames(ctxT(t, 10*time.Second), 3))
	require.NoError(t, w.Close(true))
	waitFor(t, 5*time.Second, "warm-up session gone", func() bool { return r.whep.Sessions() == 0 })
	time.Sleep(500 * time.Millisecond)
	baseG, baseHeap := settle()

	for round := 0; round < 5; round++ {
		var cs []*whepclient.Client
		for i := 0; i < 10; i++ {
			c := &whepclient.Client{API: api, Endpoint: r.endpoint("cam"), Token: testToken}
			require.NoError(t, c.Start(ctxT(t, 10*time.Second)))
			cs = append(cs, c)
		}
		for _, c := range cs {
			require.NoError(t, c.WaitFrames(ctxT(t, 10*time.Second), 3))
		}
		require.Equal(t, 10, r.whep.Sessions())
		for i, c := range cs {
			_ = c.Close(i%2 == 0) // odd ones close the peer without DELETE: the relay must notice
		}
		waitFor(t, 15*time.Second, "all sessions ended", func() bool { return r.whep.Sessions() == 0 })
	}
	require.Equal(t, 0, cam.Status().Readers)
	var g int
	var heap uint64
	waitFor(t, 15*time.Second, "goroutines back to baseline", func() bool {
		g, heap = settle()
		return g <= baseG+5
	})
	t.Logf("goroutines %d → %d, heap %d KB → %d KB", baseG, g, baseHeap>>10, heap>>10)
	require.Less(t, heap, baseHeap+8<<20, "heap must return near baseline")
	ends := 0
	for _, e := range r.sessions.all() {
		if e.Kind == "end" {
			ends++
		}
	}
	require.Equal(t, 51, ends, "every session is audited")
}

func settle() (int, uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapAlloc
}

// TestHelperViewerProcess is not a test: it is the viewer process that
// TestKilledViewerSessionEnds starts and kills with SIGKILL.
func TestHelperViewerProcess(t *testing.T) {
	ep := os.Getenv("OFFSITE_TEST_VIEWER_ENDPOINT")
	if ep == "" {
		t.Skip("helper process only")
	}
	c := &whepclient.Client{Endpoint: ep, Token: testToken}
	require.NoError(t, c.Start(context.Background()))
	require.NoError(t, c.WaitFrames(ctxT(t, 10*time.Second), 3))
	fmt.Println("PLAYING")
	time.Sleep(time.Minute)
}

// A viewer that vanishes without DELETE or DTLS close (its process killed) loses its session
// within 2 × DisconnectTimeout, and the session end is audited.
func TestKilledViewerSessionEnds(t *testing.T) {
	sim := startSim(t, &simcam.Server{Cameras: []simcam.Camera{{Path: "c", Clip: demoClip(t, "hall-entrance")}}})
	r := newRelay(t, nil) // DisconnectTimeout 3 s
	require.NoError(t, r.m.AddCamera(streams.CameraConfig{ID: "cam", URL: sim.URL("c")}))
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperViewerProcess$")
	cmd.Env = append(os.Environ(), "OFFSITE_TEST_VIEWER_ENDPOINT="+r.endpoint("cam"))
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, _ := bufio.NewReader(out).ReadString('\n')
	require.Equal(t, "PLAYING\n", line)
	require.Equal(t, 1, r.whep.Sessions())
	killed := time.Now()
	require.NoError(t, cmd.Process.Kill())
	waitFor(t, 12*time.Second, "the session of the killed viewer to end", func() bool { return r.whep.Sessions() == 0 })
	t.Logf("session ended %s after the viewer was killed", time.Since(killed).Round(100*time.Millisecond))
	ev := r.sessions.all()
	require.Equal(t, "end", ev[len(ev)-1].Kind)
	cam, _ := r.m.Camera("cam")
	require.Equal(t, 0, cam.Status().Readers)
}
