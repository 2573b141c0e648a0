package api_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/api"
	"github.com/offsite-gw/offsite/streams"
)

// An RTSP re-serve pull is audited as who (the RTSP user), which camera, from where, how long
// and how much.
func TestPullAudit(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	start := api.PullAudit(streams.PullEvent{Kind: "start", Camera: "cam-1", User: "worker-1", RemoteAddr: "10.0.0.9:5000", Start: t0})
	require.Equal(t, "rtsp:worker-1", start.Actor)
	require.Equal(t, "camera.pull.start", start.Action)
	require.Equal(t, "cam-1", start.Target)
	require.Equal(t, "10.0.0.9:5000", start.IP)
	end := api.PullAudit(streams.PullEvent{Kind: "end", Camera: "cam-1", User: "worker-1", Start: t0, End: t0.Add(90 * time.Second), BytesSent: 1234})
	require.Equal(t, "camera.pull.end", end.Action)
	require.Contains(t, end.Detail, "(1m30s), 1234 bytes sent")
}
