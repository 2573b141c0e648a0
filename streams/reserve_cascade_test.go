package streams_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/offsite-gw/offsite/streams"
	"github.com/offsite-gw/offsite/streams/simcam"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// A relay pulling from another's re-serve (a centre from a site) adds Manager.PullHeader's
// headers to its RTSP requests; the re-serve's VerifyPull sees them on PLAY, its claim reaches
// the pull's audit event, and a refusal is a 403 the puller retries, counted as bad_claim.
// However many viewers the downstream relay has, the re-serve plays one session.
func TestReservePullHeaderReachesVerifyPull(t *testing.T) {
	sim := startSim(t, &simcam.Server{Cameras: []simcam.Camera{{Path: "c", Clip: demoClip(t, "hall-entrance")}}})
	site := newRelay(t, nil)
	require.NoError(t, site.m.AddCamera(streams.CameraConfig{ID: "cam-1", URL: sim.URL("c")}))
	reg := prometheus.NewRegistry()
	var mu sync.Mutex
	var seen []string
	var events []streams.PullEvent
	refuse := true
	rs := &streams.Reserve{Manager: site.m, Listen: "127.0.0.1:0", Username: "centre", Password: "s3cret", Registerer: reg, Logger: quietLogger(),
		VerifyPull: func(p streams.PullRequest) (streams.PullClaim, error) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, p.Header["X-Test-Viewer"]...)
			if refuse {
				return streams.PullClaim{}, errors.New("statement does not verify")
			}
			return streams.PullClaim{Origin: "centre-1", User: p.Header["X-Test-Viewer"][0]}, nil
		},
		OnPull: func(e streams.PullEvent) { mu.Lock(); events = append(events, e); mu.Unlock() }}
	require.NoError(t, rs.Initialize())
	t.Cleanup(rs.Close)

	centre := newRelay(t, func(m *streams.Manager) {
		m.BackoffMin, m.BackoffMax = 100*time.Millisecond, 200*time.Millisecond
		m.PullHeader = func(camera string) map[string]string { return map[string]string{"X-Test-Viewer": "monitor@" + camera} }
	})
	require.NoError(t, centre.m.AddCamera(streams.CameraConfig{ID: "cam-1", URL: "rtsp://" + rs.Addr() + "/cam-1", Username: "centre", Password: "s3cret"}))

	v1 := centre.viewer(t, "cam-1")
	waitFor(t, 30*time.Second, "a refused pull is counted", func() bool {
		return rs.Refused(streams.RTSPRefusedClaim) >= 1
	})
	mu.Lock()
	require.Contains(t, seen, "monitor@cam-1")
	refuse = false
	mu.Unlock()
	require.NoError(t, v1.WaitFrames(ctxT(t, 30*time.Second), 10), "the pull is retried and plays once the claim verifies")
	v2 := centre.viewer(t, "cam-1")
	require.NoError(t, v2.WaitFrames(ctxT(t, 30*time.Second), 10))
	require.Equal(t, 1.0, sample(t, reg, "offsite_rtsp_reserve_sessions"), "two viewers downstream, one session here")
	mu.Lock()
	require.NotEmpty(t, events)
	require.Equal(t, "start", events[0].Kind)
	require.Equal(t, "centre-1", events[0].Origin)
	require.Equal(t, "monitor@cam-1", events[0].OnBehalfOf)
	mu.Unlock()
	waitFor(t, 10*time.Second, "bytes sent counted", func() bool {
		return sample(t, reg, "offsite_rtsp_reserve_sent_bytes_total") > 10_000
	})
}

// sample is the value of an unlabelled gauge or counter in reg (-1 if absent).
func sample(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			m := mf.GetMetric()[0]
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}
