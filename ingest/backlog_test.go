package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/ingest"
	"github.com/offsite-gw/offsite/ingest/hj212"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// heldSink is SQLite telemetry that reports itself backlogged while held.
type heldSink struct {
	*ingest.SQLiteTelemetry
	held atomic.Bool
}

func (h *heldSink) Backlogged() bool { return h.held.Load() || h.SQLiteTelemetry.Backlogged() }

// TestHJ212HoldsStationsBackWhileTheStoreIsBehind: while the telemetry store is behind, an
// upload is neither journaled, answered nor dropped; it waits in TCP, and once the store
// catches up it is answered and stored.
func TestHJ212HoldsStationsBackWhileTheStoreIsBehind(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		reg := registry(t)
		devs := &devices.SQLStore{DB: db, Profiles: reg, Argon2: devices.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}}
		site := devices.Site{ID: "ww-plant", Name: "污水处理厂", RegionCode: "410702", Department: "市生态环境局"}
		require.NoError(t, devs.CreateSite(ctx, &site))
		d := devices.Device{ID: "ww-outlet", SiteID: "ww-plant", Kind: devices.KindSensor, Profile: "hj212-wastewater",
			HJ212: &devices.HJ212Credentials{MN: stationMN, PW: stationPW}}
		require.NoError(t, devs.CreateDevice(ctx, &d))
		dir := &ingest.Directory{Devices: devs, Profiles: reg, Logger: quietLogger(), RefreshInterval: -1}
		require.NoError(t, dir.Initialize())
		t.Cleanup(dir.Close)
		quar := &ingest.Quarantine{DB: db, Logger: quietLogger()}
		require.NoError(t, quar.Initialize())
		t.Cleanup(quar.Close)
		tel := &ingest.SQLiteTelemetry{Path: t.TempDir() + "/telemetry.db", Logger: quietLogger(), FlushInterval: 20 * time.Millisecond}
		require.NoError(t, tel.Initialize())
		t.Cleanup(tel.Close)
		sink := &heldSink{SQLiteTelemetry: tel}
		sink.held.Store(true)
		pipe := &ingest.Pipeline{Directory: dir, Sink: sink, Quarantine: quar, Logger: quietLogger(), Journal: &ingest.Journal{Dir: t.TempDir()}}
		require.NoError(t, pipe.Initialize())
		t.Cleanup(pipe.Close)
		require.True(t, pipe.Backlogged())
		l := &ingest.HJ212Listener{Listen: "127.0.0.1:0", Auth: devs, Directory: dir, Pipeline: pipe, Logger: quietLogger()}
		require.NoError(t, l.Initialize())
		t.Cleanup(l.Close)

		st := dialStation(t, l.Addr())
		at := time.Now().Add(-10 * time.Second).Truncate(time.Second)
		st.send(t, frame(realtime("20261203160000001", "5", at, "w01018-Rtd=38.2,w01018-Flag=N")))

		// Held: no answer comes (the answer means journaled), nothing reaches the pipeline.
		require.NoError(t, st.c.SetReadDeadline(time.Now().Add(500*time.Millisecond)))
		_, err := st.fr.Next()
		var ne net.Error
		require.True(t, errors.As(err, &ne) && ne.Timeout(), "no answer while the store is behind, got %v", err)
		require.Zero(t, pipe.Stats().Submitted)

		sink.held.Store(false)
		st.fr = hj212.NewReader(st.c, 0) // the timed-out read left the old reader's error sticky
		ans := st.next(t)
		require.Equal(t, hj212.CNDataAck, ans.CN)
		require.Equal(t, "20261203160000001", ans.QN)
		waitFor(t, 30*time.Second, func() (bool, string) {
			fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			require.NoError(t, pipe.Flush(fctx))
			require.NoError(t, tel.Flush(fctx))
			rs, err := tel.Latest(ctx, "ww-outlet")
			require.NoError(t, err)
			return len(rs) == 1 && rs[0].Value == 38.2, fmt.Sprintf("stored: %v", rs)
		})
		require.Zero(t, pipe.Stats().Dropped)
	})
}
