package rules_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// logSink wires Emit to a real events.Log on the same database, as the gateway does, so
// the tests count what the log really holds (Append is idempotent by id).
func logSink(t *testing.T, db *store.DB) (*events.Log, func(ctx context.Context, evs []event.Event) error) {
	l := &events.Log{DB: db, GatewayID: "test-gw", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	require.NoError(t, l.Initialize())
	return l, func(ctx context.Context, evs []event.Event) error {
		_, err := l.Append(ctx, evs...)
		return err
	}
}

func logged(t *testing.T, l *events.Log) []event.Event {
	evs, err := l.Since(t.Context(), 0, events.Filter{}, 1000)
	require.NoError(t, err)
	var out []event.Event
	for _, e := range evs {
		if e.Type == "sensor.threshold" {
			out = append(out, e)
		}
	}
	return out
}

func states(evs []event.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.State)
	}
	return out
}

// TestRestartDuringDuration: a duration condition that began 7 minutes before a restart fires
// 3 minutes after it, once; a clear still comes later; the alarm is not raised again by the
// next engine.
func TestRestartDuringDuration(t *testing.T) {
	const step = 10 * time.Second
	high := constant(182)
	for _, mode := range []string{"close", "crash"} {
		t.Run(mode, func(t *testing.T) {
			storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
				log, emit := logSink(t, db)
				h := newHarness(t, db, testProfile(pm10Duration), func(e *rulesEngine) { e.Emit = emit })
				h.series(0, 7*minute-step, step, "pm10", high)
				if mode == "close" {
					h.observeNoTick(7*minute, "pm10", 182)
					require.NoError(t, h.e.Close())
				} else {
					// kill -9: the reading at 7:00 was evaluated but never stored; the last
					// flush is a second old at most.
					h.observeNoTick(7*minute, "pm10", 182)
				}
				require.Empty(t, logged(t, log))

				h.start(testProfile(pm10Duration), func(e *rulesEngine) { e.Emit = emit }) // engine B, same DB
				h.series(7*minute+step, 10*minute-step, step, "pm10", high)
				require.Empty(t, logged(t, log), "not reset to 10 more minutes, not fired early")
				h.observe(10*minute, "pm10", 182)
				evs := logged(t, log)
				require.Equal(t, []string{"active"}, states(evs))
				require.Equal(t, day0.Add(10*minute).UTC(), evs[0].OccurredAt)
				require.Equal(t, "dev-1/pm10-high", evs[0].AlarmKey)

				// Restart again while the alarm is active: not raised again, cleared later.
				h.series(10*minute+step, 12*minute, step, "pm10", high)
				if mode == "close" {
					require.NoError(t, h.e.Close())
				}
				h.start(testProfile(pm10Duration), func(e *rulesEngine) { e.Emit = emit })
				h.series(12*minute+step, 20*minute, step, "pm10", high)
				require.Equal(t, []string{"active"}, states(logged(t, log)))
				h.observe(21*minute, "pm10", 100)
				evs = logged(t, log)
				require.Equal(t, []string{"active", "cleared"}, states(evs))
				require.Equal(t, day0.Add(21*minute).UTC(), evs[1].OccurredAt)
			})
		})
	}
}

// TestRestartWithUndeliveredEvent: the event log is down when the alarm fires, the gateway
// restarts; the stored pending event is delivered by the next engine with the same id, once.
// Then a crash right after a delivery whose "delivered" mark was not stored yet: the next
// engine emits the event again, and the log keeps one.
func TestRestartWithUndeliveredEvent(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		log, emit := logSink(t, db)
		h := newHarness(t, db, testProfile(pm10Threshold))
		h.out.setFail(true)
		h.observeNoTick(0, "pm10", 200)
		require.Error(t, h.e.Tick(t.Context()))
		require.ErrorContains(t, h.e.Close(), "event log down") // state is stored, the event stays pending
		require.Empty(t, h.out.events())

		h.start(testProfile(pm10Threshold), func(e *rulesEngine) { e.Emit = emit })
		require.Equal(t, int64(1), h.e.Stats().Pending)
		h.tick(time.Second)
		evs := logged(t, log)
		require.Equal(t, []string{"active"}, states(evs))
		require.Equal(t, day0.UTC(), evs[0].OccurredAt)

		// Clear, delivered, then crash before the delivery mark is stored.
		h.observe(minute, "pm10", 100)
		require.Equal(t, []string{"active", "cleared"}, states(logged(t, log)))
		h.start(testProfile(pm10Threshold), func(e *rulesEngine) { e.Emit = emit })
		h.tick(minute + time.Second)
		require.Equal(t, int64(0), h.e.Stats().Pending)
		require.Equal(t, []string{"active", "cleared"}, states(logged(t, log)), "re-emitted with the same id, logged once")
	})
}

// TestCrashBeforeTransitionStored: the reading at 10:00 makes the alarm in memory, the process
// dies before the state (and so the event) is stored. Nothing went out; the next engine makes
// the alarm from the next reading, once.
func TestCrashBeforeTransitionStored(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		log, emit := logSink(t, db)
		h := newHarness(t, db, testProfile(pm10Duration), func(e *rulesEngine) { e.Emit = emit })
		h.series(0, 9*minute+50*time.Second, 10*time.Second, "pm10", constant(182))
		h.observeNoTick(10*minute, "pm10", 182)
		require.Empty(t, logged(t, log))
		h.start(testProfile(pm10Duration), func(e *rulesEngine) { e.Emit = emit })
		h.series(10*minute+10*time.Second, 12*minute, 10*time.Second, "pm10", constant(182))
		evs := logged(t, log)
		require.Equal(t, []string{"active"}, states(evs))
		require.Equal(t, day0.Add(10*minute+10*time.Second).UTC(), evs[0].OccurredAt)
	})
}

// Issue 16 item 4: a gateway stopped for longer than a silence rule's time raises no silence
// alarm when it starts again — silence counts only while the gateway runs, afresh from the
// start; a device that then stays silent for the whole time is reported.
func TestRestartDoesNotCountGatewayDowntimeAsSilence(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		log, emit := logSink(t, db)
		h := newHarness(t, db, testProfile(silent), func(e *rulesEngine) { e.Emit = emit })
		h.series(0, 2*minute, 30*time.Second, "pm10", constant(50))
		require.NoError(t, h.e.Close())

		h.at(30 * minute) // the gateway was stopped for 28 minutes
		h.start(testProfile(silent), func(e *rulesEngine) { e.Emit = emit })
		h.tick(30*minute + time.Second)
		h.tick(34 * minute)
		silence := func() []event.Event {
			evs, err := log.Since(t.Context(), 0, events.Filter{Types: []string{"sensor.silent"}}, 10)
			require.NoError(t, err)
			return evs
		}
		require.Empty(t, silence(), "the gateway's own downtime is not the sensor's silence")
		h.tick(35*minute + time.Second)
		require.Len(t, silence(), 1, "5 minutes of silence while running is")
	})
}
