package uplink_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/events/uplink/provincesim"
	"github.com/offsite-gw/offsite/internal/lease"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// Two centre instances configure the same uplink on one PostgreSQL: only the lease holder
// delivers (the other is on standby), and when it stops, the other takes over from the
// durable cursor: the receiver gets every event of both instances once, in log order.
func TestUplinkOneDelivererAcrossInstances(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := &provincesim.Handler{Secret: []byte("sec"), Latency: 5 * time.Millisecond}
	require.NoError(t, h.Initialize())
	srv := &provincesim.Server{Addr: "127.0.0.1:0", Handler: h}
	require.NoError(t, srv.Start())
	defer srv.Stop()

	type instance struct {
		log *events.Log
		up  *uplink.Uplink
	}
	// The production TTL: a shorter one lets a loaded machine miss a renewal, and then B takes
	// over while A still delivers — correct (receivers de-duplicate), but not what this test
	// is about. A stopping instance releases its lease, so B takes over at its next poll (2 s).
	start := func(name string) instance {
		db, err := store.Open(ctx, dsn, "", append(testSchema, lease.Migrations)...)
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		l := &events.Log{DB: db, GatewayID: "city-centre"}
		require.NoError(t, l.Initialize())
		go l.Follow(ctx, 0)
		u := &uplink.Uplink{Config: uplink.Config{Name: "province", BaseURL: srv.URL(), Secret: "sec", BatchSize: 20,
			BackoffMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond, Timeout: 2 * time.Second},
			GatewayID: "city-centre", Log: l, Logger: quiet,
			Lease: &lease.Keeper{DB: db, Holder: name, TTL: 10 * time.Second, Logger: quiet}}
		require.NoError(t, u.Initialize())
		return instance{l, u}
	}
	a := start("A")
	waitFor(t, 10*time.Second, "A delivers", func() bool { return !a.up.Status().Standby })
	b := start("B")
	appendN := func(in instance, from, n int) {
		for i := from; i < from+n; i += 10 {
			batch := make([]event.Event, 10)
			for j := range batch {
				batch[j] = ev(i + j)
			}
			_, err := in.log.Append(ctx, batch...)
			require.NoError(t, err)
		}
	}
	appendN(a, 0, 200)
	appendN(b, 200, 200)
	waitFor(t, 30*time.Second, "A delivers both instances' events", func() bool { return len(h.Received()) == 400 })
	require.True(t, b.up.Status().Standby, "B stands by while A holds the lease")
	require.False(t, a.up.Status().Standby)
	require.Zero(t, b.up.Status().Requests, "B sent nothing")

	a.up.Close() // A stops; B takes over from the cursor A left
	appendN(b, 400, 200)
	waitFor(t, 30*time.Second, "B takes the uplink over", func() bool { return !b.up.Status().Standby })
	waitFor(t, 30*time.Second, "B delivers the rest", func() bool { return len(h.Received()) == 600 })
	defer b.up.Close()
	require.Zero(t, h.Stats().Duplicates, "B resumed from the cursor, not from the beginning")
	requireDelivered(t, b.log, h, events.Filter{})
}
