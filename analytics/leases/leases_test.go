package leases_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/analytics/lease"
	"github.com/offsite-gw/offsite/analytics/leases"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

type cams []string

func (c cams) ListDevices(_ context.Context, f devices.DeviceFilter) ([]devices.Device, error) {
	var out []devices.Device
	for _, id := range c {
		out = append(out, devices.Device{ID: id, Kind: devices.KindCamera, SiteID: "site-1", Name: "cam " + id})
	}
	return out, nil
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newService(db *store.DB, n int) (*leases.Service, *clock) {
	var ids cams
	for i := 0; i < n; i++ {
		ids = append(ids, fmt.Sprintf("cam-%02d", i))
	}
	clk := &clock{t: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}
	return &leases.Service{DB: db, Cameras: ids, Now: clk.Now,
		RTSPURL: func(id string) string { return "rtsp://svc:pw@127.0.0.1:8554/" + id }}, clk
}

func ids(g lease.Grant) []string {
	var out []string
	for _, a := range g.Assignments {
		out = append(out, a.CameraID)
	}
	return out
}

// owners checks that no camera is leased live to two workers and returns camera → worker.
func owners(t *testing.T, svc *leases.Service) map[string]string {
	ls, err := svc.Leases(context.Background())
	require.NoError(t, err)
	out := map[string]string{}
	for _, l := range ls {
		if l.Live {
			_, dup := out[l.CameraID]
			require.False(t, dup, "camera %s leased twice", l.CameraID)
			out[l.CameraID] = l.WorkerID
		}
	}
	return out
}

func TestTwoWorkersSplitAndTakeOver(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		svc, clk := newService(db, 10)

		a, err := svc.Acquire(ctx, "w-a", 100)
		require.NoError(t, err)
		require.Len(t, a.Assignments, 10, "a lone worker takes every camera")
		require.Equal(t, "rtsp://svc:pw@127.0.0.1:8554/cam-00", a.Assignments[0].RTSPURL)
		require.Equal(t, 0.5, a.Assignments[0].Settings.Sensitivity)

		// b joins: nothing free yet; a sheds down to its share on its next heartbeat, b
		// picks up the rest on its next.
		b, err := svc.Acquire(ctx, "w-b", 100)
		require.NoError(t, err)
		require.Empty(t, b.Assignments)
		for i := 0; i < 2; i++ {
			clk.Add(5 * time.Second)
			a, err = svc.Acquire(ctx, "w-a", 100)
			require.NoError(t, err)
			b, err = svc.Acquire(ctx, "w-b", 100)
			require.NoError(t, err)
		}
		require.Len(t, a.Assignments, 5)
		require.Len(t, b.Assignments, 5)
		require.Empty(t, intersect(ids(a), ids(b)))
		require.Len(t, owners(t, svc), 10)

		// a dies (stops renewing): within TTL + one renewal b holds everything.
		start := clk.Now()
		for clk.Now().Sub(start) < 30*time.Second {
			clk.Add(5 * time.Second)
			b, err = svc.Acquire(ctx, "w-b", 100)
			require.NoError(t, err)
			owners(t, svc)
			if len(b.Assignments) == 10 {
				break
			}
		}
		require.Len(t, b.Assignments, 10)
		require.LessOrEqual(t, clk.Now().Sub(start), lease.DefaultTTL+lease.DefaultRenewEvery)

		// a comes back: its old leases are gone, it must not think it still has them.
		held, _, err := svc.Renew(ctx, "w-a", ids(a))
		require.NoError(t, err)
		require.Empty(t, held)

		// Clean shutdown of b frees everything at once.
		require.NoError(t, svc.Release(ctx, "w-b", nil))
		a, err = svc.Acquire(ctx, "w-a", 100)
		require.NoError(t, err)
		require.Len(t, a.Assignments, 10)
	})
}

func TestCapacityAndConcurrentWorkers(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		svc, clk := newService(db, 12)
		// Capacities 2, 5, 100: water-filling gives 2, 5, 5.
		caps := map[string]int{"w-small": 2, "w-mid": 5, "w-big": 100}
		var mu sync.Mutex
		got := map[string][]string{}
		for round := 0; round < 4; round++ {
			var wg sync.WaitGroup
			for w, c := range caps {
				wg.Add(1)
				go func() {
					defer wg.Done()
					g, err := svc.Acquire(ctx, w, c)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					got[w] = ids(g)
					mu.Unlock()
				}()
			}
			wg.Wait()
			owners(t, svc)
			clk.Add(time.Second)
		}
		require.Len(t, got["w-small"], 2)
		require.Len(t, got["w-mid"], 5)
		require.Len(t, got["w-big"], 5)
		all := map[string]bool{}
		for _, l := range got {
			for _, id := range l {
				require.False(t, all[id], "camera %s twice", id)
				all[id] = true
			}
		}
		require.Len(t, all, 12)
	})
}

func TestSettingsStoredAndDisabled(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		svc, _ := newService(db, 3)
		set, err := lease.ParseSettings([]byte(`{"sensitivity":0.8,"schedule":[{"days":[1,2,3,4,5],"from":"08:30","to":"17:30"}],
			"zones":[{"id":"c1","kind":"counter","polygon":[[0.1,0.5],[0.4,0.5],[0.4,1],[0.1,1]],"absent_after":"2m"}]}`))
		require.NoError(t, err)
		require.NoError(t, svc.PutSettings(ctx, "cam-01", set, "admin"))
		got, err := svc.Settings(ctx, "cam-01")
		require.NoError(t, err)
		require.Equal(t, 2*time.Minute, got.Zones[0].AbsentAfter.D())
		require.Equal(t, 0.8, got.Sensitivity)

		require.NoError(t, svc.PutSettings(ctx, "cam-02", lease.CameraSettings{Disabled: true}, "admin"))
		g, err := svc.Acquire(ctx, "w", 10)
		require.NoError(t, err)
		require.Equal(t, []string{"cam-00", "cam-01"}, ids(g))
		require.Equal(t, "c1", g.Assignments[1].Settings.Zones[0].ID)
	})
}

func intersect(a, b []string) []string {
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	var out []string
	for _, x := range b {
		if m[x] {
			out = append(out, x)
		}
	}
	return out
}
