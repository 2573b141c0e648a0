package streams_test

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/streams"
	"github.com/offsite-gw/offsite/streams/simcam"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPionLogsGoThroughSlog: pion's own loggers (ice, pc, dtls …) write into the gateway's
// structured logger with component=webrtc and their scope, not "ice WARNING …" lines on
// stderr beside it.
func TestPionLogsGoThroughSlog(t *testing.T) {
	// pion's default logger writes to os.Stderr as it is when the relay starts.
	r0, w0, err := os.Pipe()
	require.NoError(t, err)
	stderr := os.Stderr
	os.Stderr = w0
	var raw bytes.Buffer
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(&raw, r0); close(copied) }()
	restore := sync.OnceFunc(func() { os.Stderr = stderr; _ = w0.Close(); <-copied })
	t.Cleanup(restore)

	var structured syncBuffer
	logger := slog.New(slog.NewJSONHandler(&structured, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sim := startSim(t, &simcam.Server{Cameras: []simcam.Camera{{Path: "waiting-area", Clip: demoClip(t, "waiting-area")}}, Logger: quietLogger()})
	r := newRelayWHEP(t, nil, func(w *streams.WHEP) { w.Logger = logger })
	require.NoError(t, r.m.AddCamera(streams.CameraConfig{ID: "cam1", URL: sim.URL("waiting-area")}))
	for range 3 {
		v := r.viewer(t, "cam1")
		require.NoError(t, v.WaitFrames(ctxT(t, 15*time.Second), 5))
		require.NoError(t, v.Close(false)) // a viewer that goes away without DELETE
	}
	waitFor(t, 20*time.Second, "sessions to end", func() bool { return r.whep.Sessions() == 0 })
	restore()

	for _, line := range strings.Split(raw.String(), "\n") {
		for _, lvl := range []string{"WARNING", "INFO", "DEBUG", "TRACE"} {
			require.NotContains(t, line, " "+lvl+": ", "a pion line outside the structured log")
		}
	}
	out := structured.String()
	require.Contains(t, out, `"component":"webrtc"`, "pion's logs did not reach the gateway's logger")
	require.Contains(t, out, `"scope":"ice"`)
}
