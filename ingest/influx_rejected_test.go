package ingest_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/ingest"
)

// A write InfluxDB refuses as bad data (here a field type conflict: pm10 was stored as an
// integer by someone else) is kept on disk, counted as dropped, and does not hold up the writes
// after it — which a retry loop on the refused request would do forever.
func TestInfluxRefusedWriteIsKeptAndSkipped(t *testing.T) {
	db := startInflux(t)
	resp, err := http.Post(db.url+"/write?db=offsite", "text/plain", strings.NewReader("reading,device=other pm10=1i"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)

	var dropped atomic.Int64
	var reason atomic.Value
	spool := t.TempDir()
	tel := &ingest.InfluxStore{URL: db.url, Bucket: "offsite/autogen", SpoolDir: spool, Logger: quietLogger(),
		FlushInterval: 20 * time.Millisecond, RetryInterval: 100 * time.Millisecond, WriteTimeout: 3 * time.Second,
		OnDrop: func(n, total int64, why string) { dropped.Store(total); reason.Store(why) }}
	require.NoError(t, tel.Initialize())
	t.Cleanup(tel.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := time.Now().Truncate(time.Millisecond)
	tel.Write([]ingest.Reading{{Device: "dust-1", Metric: "pm10", Value: 80.5, Time: now.Add(-2 * time.Second)}})
	require.NoError(t, tel.Flush(ctx))
	require.Equal(t, int64(1), dropped.Load())
	require.Contains(t, reason.Load(), "field type conflict")

	kept, err := filepath.Glob(filepath.Join(spool, "rejected", "*.lp"))
	require.NoError(t, err)
	require.Len(t, kept, 1)
	b, err := os.ReadFile(kept[0])
	require.NoError(t, err)
	require.Contains(t, string(b), "device=dust-1 pm10=80.5")

	// The next writes go through (another metric), nothing waits in the spool.
	tel.Write([]ingest.Reading{{Device: "dust-1", Metric: "pm25", Value: 31, Time: now}})
	require.NoError(t, tel.Flush(ctx))
	_, backlog := tel.Backlog()
	require.Zero(t, backlog)
	latest, err := tel.Latest(ctx, "dust-1")
	require.NoError(t, err)
	require.Len(t, latest, 1)
	require.Equal(t, "pm25", latest[0].Metric)
	require.Equal(t, 31.0, latest[0].Value)
}
