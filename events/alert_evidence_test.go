package events_test

import (
	"context"
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

func tamper(state string, at time.Time, evidence ...event.Evidence) event.Event {
	return event.Event{ID: events.NewID(at), Type: event.TypeVideoTamper, Severity: "major", State: state, AlarmKey: "cam-1/tamper",
		OccurredAt: at, Site: &event.Site{ID: "site-1", RegionCode: "410702"}, Department: "市市场监督管理局",
		Device: &event.Device{ID: "cam-1", Kind: "camera"}, Message: "摄像机遮挡", Evidence: evidence}
}

func clipOf(ref event.Event, sum string, at time.Time) event.Event {
	start, end, done := ref.OccurredAt.Add(-10*time.Second), ref.OccurredAt.Add(20*time.Second), true
	ea := ref.OccurredAt
	return event.Event{ID: events.NewID(at), Type: event.TypeEvidenceAdded, Severity: "info", OccurredAt: at, Site: ref.Site,
		Department: ref.Department, Device: ref.Device, Message: "证据录像已生成", RefEventID: ref.ID,
		Evidence: []event.Evidence{{Kind: "clip", URL: "/api/v1/evidence/" + sum[0:2] + "/" + sum[2:4] + "/" + sum + ".mp4", SHA256: sum,
			MIME: "video/mp4", Codec: "h264", CameraID: "cam-1", Start: &start, End: &end, EventAt: &ea, Complete: &done}}}
}

func sums(evs []events.AlertEvidence) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Kind+":"+e.SHA256[:4])
	}
	return out
}

// An alert's evidence is its source event's, then the clips of its events — the source and
// later occurrences of its alarm while it was not closed — each file once; a clip of another
// event, or of an occurrence after the alert closed (a new alert), is not in it. A clip is
// visible to whoever may see the event it is of.
func TestAlertEvidenceHoldsTheClipsOfItsEvents(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
		l, a := newAlerts(t, db, &now)
		h := func(c byte) string { return strings.Repeat(string(c), 64) }
		step := func() time.Time { now = now.Add(time.Minute); return now }

		ev1 := tamper(event.StateActive, step(), event.Evidence{Kind: "snapshot", URL: "/api/v1/evidence/aa/aa/" + h('a') + ".jpg", SHA256: h('a')})
		_, err := l.Append(ctx, ev1)
		require.NoError(t, err)
		_, err = l.Append(ctx, clipOf(ev1, h('1'), step()))
		require.NoError(t, err)
		_, err = l.Append(ctx, tamper(event.StateCleared, step()))
		require.NoError(t, err)
		ev2 := tamper(event.StateActive, step())
		_, err = l.Append(ctx, ev2)
		require.NoError(t, err)
		other := tamper("", step())
		other.AlarmKey = ""
		_, err = l.Append(ctx, other, clipOf(ev2, h('2'), step()), clipOf(ev1, h('2'), step()), clipOf(other, h('9'), step()))
		require.NoError(t, err)

		list, err := a.List(ctx, devices.Scope{}, events.AlertFilter{})
		require.NoError(t, err)
		require.Len(t, list, 1)
		first, err := a.Get(ctx, devices.Scope{}, list[0].ID)
		require.NoError(t, err)
		got, err := a.Evidence(ctx, first)
		require.NoError(t, err)
		require.Equal(t, []string{"snapshot:aaaa", "clip:1111", "clip:2222"}, sums(got), "the clip shared by two of its events once")
		require.Equal(t, ev1.ID, got[1].RefEventID)
		require.Equal(t, ev1.OccurredAt, got[1].EventAt.UTC())
		require.Equal(t, "h264", got[1].Codec)

		// Closed; the next occurrence opens a new alert, whose clip is its own.
		for i, act := range []func(context.Context, devices.Scope, string, events.Action) (events.Alert, error){a.Claim, a.Handle, a.Feedback, a.Close} {
			do := events.Action{Actor: "officer"}
			if i == 2 {
				do.Outcome = "rectify_ordered"
			}
			_, err = act(ctx, devices.Scope{}, first.ID, do)
			require.NoError(t, err)
		}
		_, err = l.Append(ctx, tamper(event.StateCleared, step()))
		require.NoError(t, err)
		ev3 := tamper(event.StateActive, step())
		_, err = l.Append(ctx, ev3, clipOf(ev3, h('3'), step()))
		require.NoError(t, err)
		first, err = a.Get(ctx, devices.Scope{}, first.ID)
		require.NoError(t, err)
		got, err = a.Evidence(ctx, first)
		require.NoError(t, err)
		require.Equal(t, []string{"snapshot:aaaa", "clip:1111", "clip:2222"}, sums(got))
		list, err = a.List(ctx, devices.Scope{}, events.AlertFilter{State: events.AlertOpened})
		require.NoError(t, err)
		require.Len(t, list, 1)
		second, err := a.Get(ctx, devices.Scope{}, list[0].ID)
		require.NoError(t, err)
		got, err = a.Evidence(ctx, second)
		require.NoError(t, err)
		require.Equal(t, []string{"clip:3333"}, sums(got))

		// Who may open a clip: scope and type of the event it is of.
		market := devices.Scope{Departments: []string{"市市场监督管理局"}}
		env := devices.Scope{Departments: []string{"市生态环境局"}}
		for _, c := range []struct {
			sc     devices.Scope
			typeOK func(string) bool
			want   bool
		}{
			{market, nil, true},
			{devices.Scope{Regions: []string{"4107"}}, nil, true},
			{env, nil, false},
			{market, func(t string) bool { return t != event.TypeVideoTamper }, false},
			{market, func(t string) bool { return t == event.TypeVideoTamper }, true},
		} {
			ok, err := l.EvidenceVisible(ctx, c.sc, h('1'), c.typeOK)
			require.NoError(t, err)
			require.Equal(t, c.want, ok, "%+v", c.sc)
		}
		ok, err := l.EvidenceVisible(ctx, market, h('0'), nil)
		require.NoError(t, err)
		require.False(t, ok, "a file no event carries")
	})
}
