package centre_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/centre"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// Many sites posting at once are committed together; each still gets its own answer: every
// batch's events stored once and in the order each site sent them, a replayed request refused
// with nothing of it stored, and the other batches of its group unaffected.
func TestConcurrentBatchesKeepOrderAndReplaysStayRefused(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		r := newRig(t, db)
		const sites, batches, perBatch = 8, 5, 20
		for i := range sites {
			g := devices.Gateway{ID: fmt.Sprintf("gw-%02d", i)}
			secret, err := r.gws.Enrol(ctx, &g, "")
			require.NoError(t, err)
			r.secrets[g.ID] = secret
		}
		var wg sync.WaitGroup
		sent := make([][]string, sites)
		replays := make([]error, sites)
		for i := range sites {
			gw := fmt.Sprintf("gw-%02d", i)
			wg.Go(func() {
				for b := range batches {
					evs := make([]event.Event, perBatch)
					for k := range evs {
						e := siteEvent(gw, events.NewID(time.Now()), "sensor.reading")
						e.State, e.AlarmKey = "", ""
						e.Message = fmt.Sprintf("%s batch %d event %d", gw, b, k)
						evs[k] = e
						sent[i] = append(sent[i], e.ID)
					}
					h, body := signed(t, gw, r.secrets[gw], evs...)
					resp, err := r.recv.Batch(ctx, h, body, "127.0.0.1")
					if !assert(t, err == nil && len(resp.Accepted) == perBatch, "%s batch %d: %v %+v", gw, b, err, resp) {
						return
					}
					if b == 2 { // the same request again, as an attacker would
						_, replays[i] = r.recv.Batch(ctx, h, body, "127.0.0.1")
					}
				}
			})
		}
		wg.Wait()
		for i := range sites {
			require.Equal(t, centre.RefusedReplay, errs.CodeOf(replays[i]), "site %d's replay", i)
		}
		got, err := r.log.Since(ctx, 0, events.Filter{Types: []string{"sensor.reading"}}, 5000)
		require.NoError(t, err)
		require.Len(t, got, sites*batches*perBatch, "every event once")
		byGateway := map[string][]string{}
		for _, e := range got {
			byGateway[e.GatewayID] = append(byGateway[e.GatewayID], e.ID)
		}
		for i := range sites {
			gw := fmt.Sprintf("gw-%02d", i)
			require.Equal(t, sent[i], byGateway[gw], "%s's events in the order it sent them", gw)
			g, err := r.gws.Get(ctx, gw)
			require.NoError(t, err)
			require.EqualValues(t, batches*perBatch, g.EventsReceived)
			require.EqualValues(t, 1, g.Refused, "the replay is counted against %s", gw)
		}
	})
}

// assert reports a failure from a goroutine (require must not be called off the test's own).
func assert(t *testing.T, ok bool, format string, args ...any) bool {
	t.Helper()
	if !ok {
		t.Errorf(format, args...)
	}
	return ok
}

// An id twice in one batch is stored once: the repeat is a duplicate when it is the same
// event and a rejected conflict when it is not.
func TestRepeatedIDWithinOneBatch(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		r := newRig(t, db)
		a := siteEvent("gw-hall", "01JDA0000000000000000000D1", "sensor.reading")
		a.State, a.AlarmKey = "", ""
		b := a
		b.ID = "01JDA0000000000000000000D2"
		changed := b
		changed.Message = "别的内容"
		h, body := signed(t, "gw-hall", r.secrets["gw-hall"], a, b, a, changed)
		resp, err := r.recv.Batch(ctx, h, body, "127.0.0.1")
		require.NoError(t, err)
		require.Equal(t, []string{a.ID, b.ID}, resp.Accepted)
		require.Equal(t, []string{a.ID}, resp.Duplicates)
		require.Len(t, resp.Rejected, 1)
		require.Equal(t, b.ID, resp.Rejected[0].ID)
		got := eventsOf(t, r.log, "sensor.reading")
		require.Len(t, got, 2)
		require.Equal(t, []string{a.ID, b.ID}, []string{got[0].ID, got[1].ID})
		require.Equal(t, "扬尘超标", got[1].Message)
	})
}
