package ingest_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/ingest"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// TestPresenceSurvivesRestart: a sensor already reported offline stays offline across a
// gateway restart without a second device.offline, and comes back with device.online on its
// next message; a sensor that was online gets a full heartbeat from the restart before it is
// declared silent; the last time it was heard from is kept. On both store backends.
func TestPresenceSurvivesRestart(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		dir := &ingest.Directory{Devices: sensorFleet(), Profiles: registry(t), Logger: quietLogger(), RefreshInterval: -1}
		require.NoError(t, dir.Initialize())
		defer dir.Close()
		start := func(ch *changes) *ingest.Presence {
			// heartbeats × 0.002: dust-noise-monitor 5m → 0.6 s, coldchain-logger 10m → 1.2 s
			p := &ingest.Presence{Directory: dir, DB: db, Factor: 0.002, Tick: 20 * time.Millisecond, SaveInterval: 50 * time.Millisecond,
				OnChange: ch.add, Logger: quietLogger()}
			require.NoError(t, p.Initialize())
			return p
		}

		var first changes
		p := start(&first)
		// cold-1 never reports: offline after one heartbeat
		require.Eventually(t, func() bool { _, n := first.last("cold-1"); return n == 1 }, 5*time.Second, 10*time.Millisecond)
		// dust-1 reports
		seen := time.Now().Truncate(time.Millisecond)
		p.Seen("dust-1", seen)
		st, _ := p.State("dust-1")
		require.Equal(t, ingest.StateOnline, st.State)
		p.Close()

		// The gateway is down for longer than dust-1's heartbeat.
		time.Sleep(800 * time.Millisecond)
		var second changes
		restarted := time.Now()
		p = start(&second)
		defer p.Close()
		st, ok := p.State("cold-1")
		require.True(t, ok)
		require.Equal(t, ingest.StateOffline, st.State, "cold-1 was offline before the restart")
		st, _ = p.State("dust-1")
		require.Equal(t, ingest.StateOnline, st.State)
		require.True(t, st.LastSeen.Equal(seen), "last seen kept: %v, want %v", st.LastSeen, seen)

		// dust-1 gets a heartbeat from the restart, then goes offline once, with its real last data.
		require.Eventually(t, func() bool { _, n := second.last("dust-1"); return n == 1 }, 5*time.Second, 10*time.Millisecond)
		c, _ := second.last("dust-1")
		require.False(t, c.Online)
		require.GreaterOrEqual(t, c.At.Sub(restarted), 550*time.Millisecond, "declared silent before a heartbeat had passed since the restart")
		require.True(t, c.LastSeen.Equal(seen))

		// No second device.offline for cold-1 over two of its heartbeats.
		time.Sleep(2500*time.Millisecond - time.Since(restarted))
		_, n := second.last("cold-1")
		require.Zero(t, n, "cold-1 reported offline again after the restart")

		// cold-1 sends: back online with an event.
		p.Seen("cold-1", time.Now())
		c, n = second.last("cold-1")
		require.Equal(t, 1, n)
		require.True(t, c.Online)
	})
}
