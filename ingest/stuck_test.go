package ingest_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/ingest"
)

// TestStuckInfluxNeverBlocksWrite: while InfluxDB hangs on every request, Write keeps
// returning (the backlog goes to the spool); when it answers again every reading arrives.
//
// A hung request lasts the whole write timeout (10 s), so a Write that waited on InfluxDB
// would take that long. A Write that spills the backlog waits for the spool's fsync, which
// on a busy disk (make test runs PostgreSQL and InfluxDB beside it) has taken over a second;
// the bound is set between the two.
func TestStuckInfluxNeverBlocksWrite(t *testing.T) {
	var stuck atomic.Bool
	stuck.Store(true)
	release := make(chan struct{})
	unstick := sync.OnceFunc(func() { stuck.Store(false); close(release) })
	var lines atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if stuck.Load() {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		sc := bufio.NewScanner(r.Body)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			if len(sc.Bytes()) > 0 {
				lines.Add(1)
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	defer unstick() // before srv.Close, also when the test fails while InfluxDB hangs
	s := &ingest.InfluxStore{URL: srv.URL, Bucket: "b/rp", SpoolDir: t.TempDir(), MaxPending: 1000, BatchSize: 500,
		FlushInterval: 10 * time.Millisecond, WriteTimeout: 10 * time.Second, RetryInterval: 200 * time.Millisecond, Logger: quietLogger()}
	require.NoError(t, s.Initialize())
	t.Cleanup(s.Close)
	base := time.Now()
	for i := range 20000 {
		t0 := time.Now()
		s.Write([]ingest.Reading{{Device: "d1", Metric: "m", Value: float64(i), Time: base.Add(time.Duration(i) * time.Millisecond), ReceiveTime: base}})
		require.Less(t, time.Since(t0), 5*time.Second, "Write %d waited on InfluxDB", i)
		if i%1000 == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	_, spooled := s.Backlog()
	require.Positive(t, spooled)
	unstick()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, s.Flush(ctx))
	require.Eventually(t, func() bool { return lines.Load() == 20000 }, 30*time.Second, 20*time.Millisecond, "got %d", lines.Load())
}
