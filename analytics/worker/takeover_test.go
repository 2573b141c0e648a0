package worker_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/analytics/leases"
	"github.com/offsite-gw/offsite/analytics/worker"
	"github.com/offsite-gw/offsite/internal/store/storetest"
	"github.com/offsite-gw/offsite/streams/simcam"
)

type cuttable struct {
	dead atomic.Bool
}

func (c *cuttable) RoundTrip(r *http.Request) (*http.Response, error) {
	if c.dead.Load() {
		return nil, errors.New("network down")
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestTwoWorkersTakeOver: two workers split four cameras and never analyse one camera at the
// same time; when one loses the gateway (it "dies"), its cameras run on the other within
// TTL plus a renewal.
func TestTwoWorkersTakeOver(t *testing.T) {
	clip := readClip(t, makeClip(t, "takeover", "-f lavfi -i testsrc2=s=320x180:r=25:d=10 -g 25 -keyint_min 25", ""))
	ids := cameraList{"cam-a", "cam-b", "cam-c", "cam-d"}
	var simcams []simcam.Camera
	for _, id := range ids {
		simcams = append(simcams, simcam.Camera{Path: id, Clip: clip})
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	cams := &simcam.Server{Cameras: simcams, Logger: quiet}
	require.NoError(t, cams.Initialize())
	defer cams.Close()

	const ttl, renew = 3 * time.Second, time.Second
	svc := &leases.Service{DB: storetest.SQLite(t, testSchema...), Cameras: ids, TTL: ttl, RenewEvery: renew, RTSPURL: cams.URL}
	gw := startFakeGateway(t, svc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	net := &cuttable{}
	a := &worker.Worker{Client: &worker.Client{BaseURL: gw.addr, Username: "analytics", Password: "pw", HTTP: &http.Client{Transport: net, Timeout: time.Second}},
		ID: "w-a", Capacity: 10, Logger: quiet}
	b := &worker.Worker{Client: &worker.Client{BaseURL: gw.addr, Username: "analytics", Password: "pw"}, ID: "w-b", Capacity: 10, Logger: quiet}
	go a.Run(ctx)
	time.Sleep(300 * time.Millisecond)
	go b.Run(ctx)

	var both atomic.Value // a camera seen analysed by both workers at once
	overlap := func() {
		seen := map[string]bool{}
		for _, id := range a.Cameras() {
			seen[id] = true
		}
		for _, id := range b.Cameras() {
			if seen[id] {
				both.Store(id)
			}
		}
	}
	require.Eventually(t, func() bool {
		overlap()
		return len(a.Cameras()) == 2 && len(b.Cameras()) == 2
	}, 15*time.Second, 50*time.Millisecond, "the workers split the cameras")

	net.dead.Store(true)
	died := time.Now()
	require.Eventually(t, func() bool {
		overlap()
		return len(b.Cameras()) == 4 && len(a.Cameras()) == 0
	}, 15*time.Second, 50*time.Millisecond, "b takes all cameras, a stops")
	took := time.Since(died)
	require.Nil(t, both.Load(), "a camera was analysed by both workers at once")
	t.Logf("cameras moved %v after the worker died (TTL %v, renew %v)", took, ttl, renew)
	require.Less(t, took, ttl+2*renew+time.Second)
}
