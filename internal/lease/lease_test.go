package lease_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/internal/lease"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

var sets = []store.Migrations{lease.Migrations}

// Two keepers race for one lease: exactly one runs the job at any time; when the holder stops
// renewing (its process "dies": its context ends without a release), the other takes over
// after the lease expires, not before.
func TestLeaseOneHolderAndTakeoverAfterExpiry(t *testing.T) {
	storetest.Each(t, sets, func(t *testing.T, db *store.DB) {
		// Long enough that a loaded machine does not miss a renewal (every ttl/3).
		ttl := 3 * time.Second
		a := &lease.Keeper{DB: db, Holder: "instance-a", TTL: ttl}
		b := &lease.Keeper{DB: db, Holder: "instance-b", TTL: ttl}
		var running, overlaps atomic.Int32
		var who sync.Map
		job := func(name string) func(ctx context.Context) {
			return func(ctx context.Context) {
				if running.Add(1) > 1 {
					overlaps.Add(1)
				}
				who.Store("now", name)
				<-ctx.Done()
				running.Add(-1)
			}
		}
		actx, killA := context.WithCancel(context.Background())
		bctx, stopB := context.WithCancel(context.Background())
		defer stopB()
		aDone := make(chan struct{})
		go func() { defer close(aDone); a.Run(actx, "uplink/province", job("a")) }()
		require.Eventually(t, func() bool { return a.Held("uplink/province") }, 10*time.Second, 10*time.Millisecond)
		bDone := make(chan struct{})
		go func() { defer close(bDone); b.Run(bctx, "uplink/province", job("b")) }()
		time.Sleep(2 * ttl) // b polls meanwhile; a renews
		require.False(t, b.Held("uplink/province"), "b must not take a lease a renews")
		require.Zero(t, overlaps.Load())

		ok, err := b.TryAcquire(context.Background(), "uplink/province")
		require.NoError(t, err)
		require.False(t, ok)

		// a stops (and releases): b takes over at its next poll.
		killA()
		<-aDone
		require.Eventually(t, func() bool {
			v, _ := who.Load("now")
			return b.Held("uplink/province") && v == "b"
		}, 10*time.Second, 10*time.Millisecond, "b takes the lease over once a stops and runs the job")
		require.Zero(t, overlaps.Load(), "never two holders at once")

		ls, err := b.List(context.Background())
		require.NoError(t, err)
		require.Len(t, ls, 1)
		require.Equal(t, "instance-b", ls[0].Holder)
		require.True(t, ls[0].Mine)
		stopB()
		<-bDone
		ls, err = b.List(context.Background())
		require.NoError(t, err)
		require.Empty(t, ls, "a keeper that stops releases its lease")
	})
}

// A lease left behind by a holder that died (no release) is taken only after it expires.
func TestLeaseExpiredIsTaken(t *testing.T) {
	storetest.Each(t, sets, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		dead := &lease.Keeper{DB: db, Holder: "dead", TTL: 800 * time.Millisecond}
		ok, err := dead.TryAcquire(ctx, "escalation")
		require.NoError(t, err)
		require.True(t, ok)
		live := &lease.Keeper{DB: db, Holder: "live", TTL: time.Second}
		ok, err = live.TryAcquire(ctx, "escalation")
		require.NoError(t, err)
		require.False(t, ok, "an unexpired lease of another holder is not taken")
		require.Eventually(t, func() bool {
			ok, err := live.TryAcquire(ctx, "escalation")
			return err == nil && ok
		}, 10*time.Second, 50*time.Millisecond)
		ok, err = dead.TryAcquire(ctx, "escalation")
		require.NoError(t, err)
		require.False(t, ok, "the old holder cannot renew a lease taken over")
	})
}

// A nil Keeper (one instance on SQLite) runs the job directly.
func TestNilKeeperRunsJob(t *testing.T) {
	var k *lease.Keeper
	ran := false
	k.Run(context.Background(), "x", func(context.Context) { ran = true })
	require.True(t, ran)
	require.True(t, k.Held("x"))
}
