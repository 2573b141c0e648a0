package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

func newLog(t testing.TB, db *store.DB) *events.Log {
	t.Helper()
	l := &events.Log{DB: db, GatewayID: "410702-gw-01", RingSize: 64}
	require.NoError(t, l.Initialize())
	return l
}

func reading(dev string, v float64) event.Event {
	limit := 150.0
	return event.Event{
		Type: "sensor.threshold", Severity: "major", State: event.StateActive,
		Site:       &event.Site{ID: "site-1", Name: "某建筑工地", RegionCode: "410702"},
		Device:     &event.Device{ID: dev, Kind: "sensor", Profile: "generic-json"},
		Department: "市生态环境局",
		Reading:    &event.Reading{Metric: "pm10", Value: v, Unit: "µg/m³", Limit: &limit},
		AlarmKey:   dev + "/pm10-high", Rule: "pm10-high", Message: "PM10 超标",
	}
}

func TestLogAppendIdempotentConflict(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l := newLog(t, db)
		out, err := l.Append(ctx, reading("dev-1", 182), reading("dev-2", 190))
		require.NoError(t, err)
		require.Len(t, out, 2)
		require.Less(t, out[0].Seq, out[1].Seq)
		require.Len(t, out[0].ID, 26)

		// Stored bytes are the contract shape and are what Get returns.
		var m map[string]any
		require.NoError(t, json.Unmarshal(out[0].Raw, &m))
		for _, k := range []string{"id", "type", "severity", "state", "occurred_at", "gateway_id", "site", "device", "department", "reading", "alarm_key", "rule", "message"} {
			require.Contains(t, m, k)
		}
		require.Equal(t, "410702-gw-01", m["gateway_id"])
		require.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`, m["occurred_at"])
		got, err := l.Get(ctx, out[0].ID)
		require.NoError(t, err)
		require.Equal(t, string(out[0].Raw), string(got.Raw))
		require.Equal(t, out[0].Seq, got.Seq)

		// Same id, same content: no new entry.
		again := out[0]
		again.Seq, again.Raw = 0, nil
		re, err := l.Append(ctx, again)
		require.NoError(t, err)
		require.Equal(t, out[0].Seq, re[0].Seq)
		head, _ := l.Head()
		require.Equal(t, out[1].Seq, head)

		// Same id, different content: conflict, and the batch it was in is not logged.
		changed := again
		changed.Message = "改过的"
		_, err = l.Append(ctx, reading("dev-3", 1), changed)
		require.Equal(t, errs.KindConflict, errs.KindOf(err))
		evs, err := l.Since(ctx, 0, events.Filter{}, 100)
		require.NoError(t, err)
		require.Len(t, evs, 2)

		// Invalid events are refused.
		bad := reading("dev-4", 1)
		bad.Type = "Not A Type"
		_, err = l.Append(ctx, bad)
		require.Equal(t, errs.KindInvalid, errs.KindOf(err))

		seq, err := l.SeqOf(ctx, out[1].ID)
		require.NoError(t, err)
		require.Equal(t, out[1].Seq, seq)
		_, err = l.SeqOf(ctx, "01JD0000000000000000000000")
		require.Equal(t, errs.KindNotFound, errs.KindOf(err))
	})
}

func TestLogSinceFilterAndRestart(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l := newLog(t, db)
		var batch []event.Event
		for i := 0; i < 150; i++ {
			e := reading(fmt.Sprintf("dev-%d", i%3), float64(i))
			e.State, e.AlarmKey = "", ""
			if i%5 == 0 {
				e.Type = "device.offline"
				e.Severity = "minor"
			}
			batch = append(batch, e)
		}
		_, err := l.Append(ctx, batch...)
		require.NoError(t, err)

		// Ring (recent) and store (older than the ring) give the same answers.
		fresh := newLog(t, db) // a restarted process: empty ring
		for _, lg := range []*events.Log{l, fresh} {
			evs, through, err := lg.Scan(ctx, 0, events.Filter{Types: []string{"device."}}, 1000)
			require.NoError(t, err)
			require.Len(t, evs, 30)
			head, _ := lg.Head()
			require.Equal(t, head, through)
			evs, err = lg.Since(ctx, 0, events.Filter{Device: "dev-1", MinSeverity: "major"}, 1000)
			require.NoError(t, err)
			for _, e := range evs {
				require.Equal(t, "dev-1", e.Device.ID)
				require.Equal(t, "major", e.Severity)
			}
			require.NotEmpty(t, evs)
			page, err := lg.Since(ctx, 100, events.Filter{}, 10)
			require.NoError(t, err)
			require.Len(t, page, 10)
			require.EqualValues(t, 101, page[0].Seq-firstSeq(t, lg)+1)
		}
	})
}

func firstSeq(t *testing.T, l *events.Log) int64 {
	evs, err := l.Since(context.Background(), 0, events.Filter{}, 1)
	require.NoError(t, err)
	return evs[0].Seq
}

func TestLogConcurrentAppendsAreOrdered(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l := newLog(t, db)
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 25; i++ {
					e := reading(fmt.Sprintf("w%d", w), float64(i))
					e.State, e.AlarmKey = "", ""
					_, err := l.Append(ctx, e)
					require.NoError(t, err)
				}
			}()
		}
		wg.Wait()
		evs, err := l.Since(ctx, 0, events.Filter{}, 1000)
		require.NoError(t, err)
		require.Len(t, evs, 100)
		for i := 1; i < len(evs); i++ {
			require.Greater(t, evs[i].Seq, evs[i-1].Seq)
		}
	})
}

func TestParseEvent(t *testing.T) {
	e, err := events.ParseEvent([]byte(`{"type":"video.tamper","severity":"critical","device":{"id":"cam-1"}}`))
	require.NoError(t, err)
	require.False(t, e.OccurredAt.IsZero())
	for _, body := range []string{
		`{"type":"alert.opened"}`,
		`{"type":"video.tamper","bogus":1}`,
		`{"type":"video.tamper","severity":"huge"}`,
		`{"type":"video.tamper","state":"active"}`,
		`{"id":"not-a-ulid","type":"video.tamper"}`,
		`[]`, `{"type":"x.y"} {}`,
	} {
		_, err := events.ParseEvent([]byte(body))
		require.Error(t, err, body)
		require.Equal(t, errs.KindInvalid, errs.KindOf(err), body)
	}
	_ = time.Now
}

func FuzzEventJSON(f *testing.F) {
	f.Add([]byte(`{"type":"sensor.threshold","severity":"major","state":"active","alarm_key":"d/r","occurred_at":"2026-11-27T10:15:04.123Z","reading":{"metric":"pm10","value":182,"limit":150}}`))
	f.Add([]byte(`{"id":"01JD0000000000000000000000","type":"video.tamper","evidence":[{"kind":"snapshot","url":"x","sha256":"00"}]}`))
	f.Add([]byte(`{"type":"a.b","occurred_at":"0001-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := events.ParseEvent(body)
		if err != nil {
			require.NotEqual(t, errs.KindInternal, errs.KindOf(err))
			return
		}
		require.NoError(t, e.Validate())
		_, err = json.Marshal(&e)
		require.NoError(t, err)
	})
}
