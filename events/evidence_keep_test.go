package events_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// Retention keeps the clips of open alerts and of alerts closed as 立案 for keep_for, and
// deletes the clips of other events after max_age.
func TestKeptEvidenceKeepsClipsOfOpenAndCaseFiledAlerts(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now()
		l, a := newAlerts(t, db, &now)
		all := devices.Scope{}
		alarm := func(key string) event.Event {
			e, err := l.Append(ctx, event.Event{Type: "video.tamper", Severity: "major", State: event.StateActive, OccurredAt: now,
				Device: &event.Device{ID: key}, AlarmKey: key + "/tamper", Message: "遮挡"})
			require.NoError(t, err)
			return e[0]
		}
		store := &events.EvidenceStore{Dir: t.TempDir(), MaxAge: time.Hour, KeepFor: 24 * time.Hour}
		clipOf := func(ref event.Event, content string) string {
			sum, url, err := store.Put(strings.NewReader(content), ".mp4")
			require.NoError(t, err)
			yes := true
			_, err = l.Append(ctx, event.Event{Type: event.TypeEvidenceAdded, Severity: "info", OccurredAt: now, RefEventID: ref.ID,
				Device: ref.Device, Evidence: []event.Evidence{{Kind: "clip", URL: url, SHA256: sum, MIME: "video/mp4", Complete: &yes}}})
			require.NoError(t, err)
			return sum
		}
		open := alarm("cam-open")
		filed := alarm("cam-filed")
		falseAlarm := alarm("cam-false")
		plain, err := l.Append(ctx, event.Event{Type: "video.motion", Severity: "info", OccurredAt: now, Device: &event.Device{ID: "cam-x"}})
		require.NoError(t, err)
		sums := map[string]string{"open": clipOf(open, "open"), "filed": clipOf(filed, "filed"),
			"false": clipOf(falseAlarm, "false"), "plain": clipOf(plain[0], "plain")}
		closeAs := func(ev event.Event, outcome string) {
			list, err := a.List(ctx, all, events.AlertFilter{})
			require.NoError(t, err)
			for _, al := range list {
				if al.EventID != ev.ID {
					continue
				}
				_, err = a.Claim(ctx, all, al.ID, events.Action{Actor: "li"})
				require.NoError(t, err)
				_, err = a.Handle(ctx, all, al.ID, events.Action{Actor: "li"})
				require.NoError(t, err)
				_, err = a.Feedback(ctx, all, al.ID, events.Action{Actor: "li", Outcome: outcome})
				require.NoError(t, err)
				_, err = a.Close(ctx, all, al.ID, events.Action{Actor: "li"})
				require.NoError(t, err)
				return
			}
			t.Fatalf("no alert of %s", ev.ID)
		}
		closeAs(filed, "立案")
		closeAs(falseAlarm, "误报")

		kept, err := a.KeptEvidence(ctx)
		require.NoError(t, err)
		require.True(t, kept[sums["open"]], "clip of an open alert")
		require.True(t, kept[sums["filed"]], "clip of an alert closed as 立案")
		require.False(t, kept[sums["false"]], "clip of an alert closed as 误报")
		require.False(t, kept[sums["plain"]], "clip of an event without alert")

		store.Keep = func(sum string) bool { return kept[sum] }
		exists := func(name string) bool {
			sum := sums[name]
			_, err := os.Stat(filepath.Join(store.Dir, sum[0:2], sum[2:4], sum+".mp4"))
			return err == nil
		}
		age := func(d time.Duration) {
			for _, sum := range sums {
				p := filepath.Join(store.Dir, sum[0:2], sum[2:4], sum+".mp4")
				if _, err := os.Stat(p); err == nil {
					require.NoError(t, os.Chtimes(p, now.Add(-d), now.Add(-d)))
				}
			}
		}
		age(2 * time.Hour) // past max_age, within keep_for
		_, _, err = store.Sweep(now)
		require.NoError(t, err)
		require.True(t, exists("open"))
		require.True(t, exists("filed"))
		require.False(t, exists("false"), "deleted after max_age")
		require.False(t, exists("plain"))
		age(25 * time.Hour) // past keep_for
		n, _, err := store.Sweep(now)
		require.NoError(t, err)
		require.Equal(t, 2, n, fmt.Sprintf("kept evidence goes after keep_for: %v", kept))
		require.False(t, exists("open"))
		require.False(t, exists("filed"))
	})
}
