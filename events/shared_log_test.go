package events_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// Two centre instances share one PostgreSQL log: each appends from several producers while
// live readers on both instances, started at different points, each receive every event of
// both instances once, in seq order, with nothing missing — the other instance's events are
// woken by notification, and the ring never serves an event ahead of an earlier one it lacks.
func TestSharedLogTwoInstancesOneOrderNoGaps(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func() *events.Log {
		db, err := store.Open(ctx, dsn, "", testSchema...)
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		l := &events.Log{DB: db, GatewayID: "centre", RingSize: 256}
		require.NoError(t, l.Initialize())
		go l.Follow(ctx, time.Hour) // notifications only: the poll would hide a missed wake-up
		return l
	}
	a, b := open(), open()
	time.Sleep(200 * time.Millisecond) // not an assertion: lets both LISTENs start before the first append

	const perProducer, producers = 300, 3
	total := 2 * producers * perProducer
	type got struct {
		name string
		evs  []event.Event
	}
	results := make(chan got, 4)
	subscribe := func(name string, l *events.Log, after int64) {
		sctx, scancel := context.WithTimeout(ctx, time.Minute)
		ch := (&events.Feed{Log: l, Buffer: 8}).Subscribe(sctx, after, nil)
		go func() {
			defer scancel()
			var evs []event.Event
			for e := range ch {
				evs = append(evs, e)
				if len(evs) == total {
					break
				}
			}
			results <- got{name, evs}
		}()
	}
	subscribe("a-live", a, 0)
	subscribe("b-live", b, 0)

	var wg sync.WaitGroup
	for i, l := range []*events.Log{a, b} {
		for p := 0; p < producers; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; n < perProducer; n++ {
					e := reading(fmt.Sprintf("dev-%d-%d", i, p), float64(n))
					e.AlarmKey, e.State = "", ""
					_, err := l.Append(ctx, e)
					if err != nil {
						t.Errorf("append: %v", err)
						return
					}
				}
			}()
			if p == 1 && i == 1 {
				// Late readers join mid-stream and resume from the store, then live.
				subscribe("a-late", a, 0)
				subscribe("b-late", b, 0)
			}
		}
	}
	wg.Wait()
	for range 4 {
		r := <-results
		require.Equal(t, total, len(r.evs), "%s received every event of both instances", r.name)
		seen := map[string]bool{}
		for i, e := range r.evs {
			require.False(t, seen[e.ID], "%s received %s twice", r.name, e.ID)
			seen[e.ID] = true
			if i > 0 {
				require.Greater(t, e.Seq, r.evs[i-1].Seq, "%s: out of seq order", r.name)
			}
		}
	}
	// Live push across instances: an event appended on A wakes a reader on B by notification
	// (the poll here is an hour). The figure is logged; only a generous bound is asserted.
	head, _ := b.Head()
	live := (&events.Feed{Log: b}).Subscribe(ctx, head, nil)
	for i := 0; i < 5; i++ {
		e := reading("dev-live", float64(i))
		e.AlarmKey, e.State = "", ""
		sent := time.Now()
		out, err := a.Append(ctx, e)
		require.NoError(t, err)
		select {
		case got := <-live:
			require.Equal(t, out[0].ID, got.ID)
			t.Logf("appended on A, received on B after %s", time.Since(sent))
		case <-time.After(30 * time.Second):
			t.Fatal("an event appended on A never reached a live reader on B")
		}
	}
	// Both instances' heads agree with the store.
	require.Eventually(t, func() bool {
		ha, _ := a.Head()
		hb, _ := b.Head()
		return ha == hb
	}, 10*time.Second, 20*time.Millisecond)
}
