package events_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

func newAlerts(t *testing.T, db *store.DB, now *time.Time) (*events.Log, *events.Alerts) {
	l := &events.Log{DB: db, GatewayID: "gw", Now: func() time.Time { return *now }}
	require.NoError(t, l.Initialize())
	a := &events.Alerts{Log: l, Escalation: []events.EscalationRule{
		{Severity: "major", After: []time.Duration{10 * time.Minute, time.Hour}},
		{Severity: "major", Department: "市市场监督管理局", After: []time.Duration{time.Minute}},
	}}
	require.NoError(t, a.Initialize())
	return l, a
}

func types(t *testing.T, l *events.Log, prefix string) []string {
	evs, err := l.Since(context.Background(), 0, events.Filter{Types: []string{prefix}}, 1000)
	require.NoError(t, err)
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

func TestAlarmDedupeAndClear(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
		l, a := newAlerts(t, db, &now)

		_, err := l.Append(ctx, reading("dev-1", 182), reading("dev-1", 190), reading("dev-1", 200))
		require.NoError(t, err)
		list, err := a.List(ctx, devices.Scope{}, events.AlertFilter{})
		require.NoError(t, err)
		require.Len(t, list, 1, "an active alarm opens one alert however often it repeats")
		require.True(t, list[0].AlarmActive)

		clear := reading("dev-1", 100)
		clear.State = event.StateCleared
		_, err = l.Append(ctx, clear)
		require.NoError(t, err)
		al, err := a.Get(ctx, devices.Scope{}, list[0].ID)
		require.NoError(t, err)
		require.False(t, al.AlarmActive)
		require.Equal(t, events.AlertOpened, al.State)

		require.NotNil(t, al.RecoveredAt, "clearing shows the alert recovered (已恢复)")
		require.Equal(t, 1, al.Occurrences)

		// Re-activation while the alert is not closed is an occurrence of the same alert.
		now = now.Add(time.Minute)
		_, err = l.Append(ctx, reading("dev-1", 210))
		require.NoError(t, err)
		list, err = a.List(ctx, devices.Scope{}, events.AlertFilter{AlarmKey: "dev-1/pm10-high"})
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, 2, list[0].Occurrences)
		require.True(t, list[0].AlarmActive)
		require.Nil(t, list[0].RecoveredAt)
		require.Equal(t, []string{"alert.opened", "alert.recovered", "alert.recurred"}, types(t, l, "alert."))

		// alert.opened carries the source's context and the alert id.
		evs, err := l.Since(ctx, 0, events.Filter{Types: []string{"alert.opened"}}, 10)
		require.NoError(t, err)
		require.Equal(t, "市生态环境局", evs[0].Department)
		require.Equal(t, "410702", evs[0].Site.RegionCode)
		require.NotNil(t, evs[0].Alert)
		require.Equal(t, events.AlertOpened, evs[0].Alert.State)
	})
}

// A flapping condition (a camera that goes black every 20 s) is one alert with an occurrence
// per flap and the evidence of each; after an officer closed it, a recurrence is a new alert.
func TestFlappingAlarmIsOneAlertUntilClosed(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
		l, a := newAlerts(t, db, &now)
		tamper := func(state string, i int) event.Event {
			sum := fmt.Sprintf("%064x", i)
			return event.Event{Type: "video.tamper", Severity: "major", State: state, OccurredAt: now,
				Site: &event.Site{ID: "site-1", RegionCode: "410702"}, Device: &event.Device{ID: "cam-black", Kind: "camera"},
				Department: "市市场监督管理局", AlarmKey: "cam-black/tamper", Message: "摄像机画面被遮挡",
				Evidence: []event.Evidence{{Kind: "snapshot", URL: "/x", SHA256: sum}}}
		}
		for i := 1; i <= 18; i++ {
			_, err := l.Append(ctx, tamper(event.StateActive, i))
			require.NoError(t, err)
			now = now.Add(10 * time.Second)
			_, err = l.Append(ctx, tamper(event.StateCleared, 100+i))
			require.NoError(t, err)
			now = now.Add(10 * time.Second)
		}
		list, err := a.List(ctx, devices.Scope{}, events.AlertFilter{})
		require.NoError(t, err)
		require.Len(t, list, 1, "18 flaps, one alert")
		al := list[0]
		require.Equal(t, 18, al.Occurrences)
		require.Equal(t, time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), al.FirstAt)
		require.Equal(t, time.Date(2026, 11, 27, 10, 5, 40, 0, time.UTC), al.LastAt)
		require.False(t, al.AlarmActive)
		require.Equal(t, events.AlertOpened, al.State, "clearing does not close it")
		got, err := a.Get(ctx, devices.Scope{}, al.ID)
		require.NoError(t, err)
		require.Equal(t, "recur", got.Steps[2].Action)
		require.Equal(t, []string{fmt.Sprintf("%064x", 2)}, got.Steps[2].Attachments, "the new evidence is on the occurrence")
		keep, err := a.OpenEvidence(ctx)
		require.NoError(t, err)
		require.True(t, keep[fmt.Sprintf("%064x", 18)], "evidence of every occurrence is kept while the alert is open")

		all := devices.Scope{}
		for _, step := range []func() (events.Alert, error){
			func() (events.Alert, error) { return a.Claim(ctx, all, al.ID, events.Action{Actor: "li"}) },
			func() (events.Alert, error) { return a.Handle(ctx, all, al.ID, events.Action{Actor: "li"}) },
			func() (events.Alert, error) {
				return a.Feedback(ctx, all, al.ID, events.Action{Actor: "li", Outcome: "误报"})
			},
			func() (events.Alert, error) { return a.Close(ctx, all, al.ID, events.Action{Actor: "li"}) },
		} {
			_, err := step()
			require.NoError(t, err)
		}
		_, err = l.Append(ctx, tamper(event.StateActive, 99))
		require.NoError(t, err)
		list, err = a.List(ctx, devices.Scope{}, events.AlertFilter{})
		require.NoError(t, err)
		require.Len(t, list, 2, "a recurrence after closing is a new alert")
		require.Equal(t, 1, list[0].Occurrences)
		require.Equal(t, events.AlertOpened, list[0].State)
		require.Equal(t, events.AudienceMaintainers, list[0].Audience, "tamper is device health")
	})
}

// The low and the high limit of one gas reading are one alert whose severity rises.
func TestLowThenHighLimitIsOneAlertRising(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
		l, a := newAlerts(t, db, &now)
		gas := func(rule, sev, state string, v, limit float64, msg string) event.Event {
			return event.Event{Type: "sensor.threshold", Severity: sev, State: state,
				Site: &event.Site{ID: "site-1", RegionCode: "410702"}, Device: &event.Device{ID: "gas-1", Kind: "sensor"},
				Department: "市应急管理局", Reading: &event.Reading{Metric: "lel", Value: v, Unit: "%LEL", Limit: &limit},
				AlarmKey: "gas-1/" + rule, Rule: rule, Message: msg}
		}
		_, err := l.Append(ctx, gas("lel-low", "major", event.StateActive, 12, 10, "12 %LEL，超过低限 10 %LEL"))
		require.NoError(t, err)
		now = now.Add(30 * time.Second)
		_, err = l.Append(ctx, gas("lel-high", "critical", event.StateActive, 35, 20, "35 %LEL，超过高限 20 %LEL"),
			gas("lel-low", "major", event.StateActive, 35, 10, "35 %LEL，超过低限 10 %LEL"))
		require.NoError(t, err)
		list, err := a.List(ctx, devices.Scope{}, events.AlertFilter{})
		require.NoError(t, err)
		require.Len(t, list, 1, "one alert per measurement")
		require.Equal(t, "critical", list[0].Severity)
		require.Equal(t, "35 %LEL，超过高限 20 %LEL", list[0].Message)
		require.Equal(t, 1, list[0].Occurrences, "rising is the same occurrence")
		require.Equal(t, []string{"alert.opened", "alert.escalated"}, types(t, l, "alert."))
		esc, err := l.Since(ctx, 0, events.Filter{Types: []string{"alert.escalated"}}, 10)
		require.NoError(t, err)
		require.Equal(t, "critical", esc[0].Severity)
		require.Equal(t, events.AudienceOfficers, esc[0].Alert.Audience)

		// The high limit clears while the low one holds: still active; both clear: recovered.
		_, err = l.Append(ctx, gas("lel-high", "critical", event.StateCleared, 15, 20, "15 %LEL"))
		require.NoError(t, err)
		al, err := a.Get(ctx, devices.Scope{}, list[0].ID)
		require.NoError(t, err)
		require.True(t, al.AlarmActive)
		_, err = l.Append(ctx, gas("lel-low", "major", event.StateCleared, 5, 10, "5 %LEL"))
		require.NoError(t, err)
		al, err = a.Get(ctx, devices.Scope{}, list[0].ID)
		require.NoError(t, err)
		require.False(t, al.AlarmActive)
		require.Equal(t, "critical", al.Severity)

		// A low-limit rule and a "too low" rule on one metric are different conditions.
		_, err = l.Append(ctx, gas("lel-under", "minor", event.StateActive, 0, 1, "0 %LEL，低于 1 %LEL"))
		require.NoError(t, err)
		list, err = a.List(ctx, devices.Scope{}, events.AlertFilter{})
		require.NoError(t, err)
		require.Len(t, list, 2)
	})
}

// A type whose policy says so closes its alert when the alarm clears; routes are per type.
func TestTypePolicyCloseOnClearAndRoute(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
		l, a := newAlerts(t, db, &now)
		a.Types = map[string]events.TypePolicy{"sensor.": {Route: events.AudienceAll, CloseOnClear: true}}
		clear := reading("dev-1", 100)
		clear.State = event.StateCleared
		_, err := l.Append(ctx, reading("dev-1", 182), clear)
		require.NoError(t, err)
		list, err := a.List(ctx, devices.Scope{}, events.AlertFilter{})
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, events.AlertClosed, list[0].State)
		require.Equal(t, events.AudienceAll, list[0].Audience)
		require.Equal(t, []string{"alert.opened", "alert.recovered", "alert.closed"}, types(t, l, "alert."))

		bad := &events.Alerts{Log: l, Types: map[string]events.TypePolicy{"video.tamper": {Route: "everyone"}}}
		require.ErrorContains(t, bad.Initialize(), "must be maintainers, officers or all")
	})
}

func TestAlertLifecycle(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
		l, a := newAlerts(t, db, &now)
		_, err := l.Append(ctx, reading("dev-1", 182))
		require.NoError(t, err)
		list, err := a.List(ctx, devices.Scope{}, events.AlertFilter{State: events.AlertOpened})
		require.NoError(t, err)
		id := list[0].ID
		all := devices.Scope{}
		att := strings.Repeat("ab", 32)

		conflict := func(_ events.Alert, err error) {
			t.Helper()
			require.Equal(t, errs.KindConflict, errs.KindOf(err), "%v", err)
		}
		conflict(a.Handle(ctx, all, id, events.Action{Actor: "li"}))
		conflict(a.Feedback(ctx, all, id, events.Action{Actor: "li", Outcome: "立案"}))
		conflict(a.Close(ctx, all, id, events.Action{Actor: "li"}))

		al, err := a.Claim(ctx, all, id, events.Action{Actor: "li", Note: "我来处理"})
		require.NoError(t, err)
		require.Equal(t, events.AlertClaimed, al.State)
		conflict(a.Claim(ctx, all, id, events.Action{Actor: "wang"}))
		_, err = a.Handle(ctx, all, id, events.Action{Actor: "wang"})
		require.Equal(t, errs.KindForbidden, errs.KindOf(err), "only the claimant handles")

		_, err = a.Handle(ctx, all, id, events.Action{Actor: "li", Note: "已到现场", Attachments: []string{att}})
		require.NoError(t, err)
		_, err = a.Handle(ctx, all, id, events.Action{Actor: "li", Note: "已要求停工洒水"})
		require.NoError(t, err)
		_, err = a.Feedback(ctx, all, id, events.Action{Actor: "li", Outcome: "无效"})
		require.Equal(t, errs.KindInvalid, errs.KindOf(err))
		al, err = a.Feedback(ctx, all, id, events.Action{Actor: "li", Outcome: "责令整改", Note: "限期三日"})
		require.NoError(t, err)
		require.Equal(t, "rectify_ordered", al.Outcome)
		conflict(a.Handle(ctx, all, id, events.Action{Actor: "li"}))
		al, err = a.Close(ctx, all, id, events.Action{Actor: "zhang"})
		require.NoError(t, err)
		require.Equal(t, events.AlertClosed, al.State)
		conflict(a.Close(ctx, all, id, events.Action{Actor: "zhang"}))

		got, err := a.Get(ctx, all, id)
		require.NoError(t, err)
		var steps []string
		for _, s := range got.Steps {
			steps = append(steps, s.Action)
		}
		require.Equal(t, []string{"open", "claim", "handle", "handle", "feedback", "close"}, steps)
		require.Equal(t, []string{att}, got.Steps[2].Attachments)

		// Every transition is on record as an event, in order, carrying the alert.
		require.Equal(t, []string{"alert.opened", "alert.claimed", "alert.handled", "alert.handled", "alert.fed_back", "alert.closed"},
			types(t, l, "alert."))
		evs, err := l.Since(ctx, 0, events.Filter{Types: []string{"alert.fed_back"}}, 10)
		require.NoError(t, err)
		require.Equal(t, "rectify_ordered", evs[0].Alert.Outcome)
		require.Equal(t, "责令整改", evs[0].Alert.OutcomeLabel)
		require.Equal(t, "li", evs[0].Alert.Actor)
		require.Equal(t, got.Steps[4].EventID, evs[0].ID)
	})
}

func TestAlertScope(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
		l, a := newAlerts(t, db, &now)
		env := reading("dev-1", 182)
		mkt := reading("dev-2", 182)
		mkt.Department = "市市场监督管理局"
		mkt.Site = &event.Site{ID: "site-2", RegionCode: "410703"}
		_, err := l.Append(ctx, env, mkt)
		require.NoError(t, err)

		envOfficer := devices.Scope{Departments: []string{"市生态环境局"}}
		mktOfficer := devices.Scope{Departments: []string{"市市场监督管理局"}, Regions: []string{"410703"}}
		wrongRegion := devices.Scope{Departments: []string{"市生态环境局"}, Regions: []string{"410703"}}

		envList, err := a.List(ctx, envOfficer, events.AlertFilter{})
		require.NoError(t, err)
		require.Len(t, envList, 1)
		require.Equal(t, "市生态环境局", envList[0].Department)
		mktList, err := a.List(ctx, mktOfficer, events.AlertFilter{})
		require.NoError(t, err)
		require.Len(t, mktList, 1)
		none, err := a.List(ctx, wrongRegion, events.AlertFilter{})
		require.NoError(t, err)
		require.Empty(t, none)

		_, err = a.Get(ctx, envOfficer, mktList[0].ID)
		require.Equal(t, errs.KindNotFound, errs.KindOf(err))
		_, err = a.Claim(ctx, envOfficer, mktList[0].ID, events.Action{Actor: "li"})
		require.Equal(t, errs.KindNotFound, errs.KindOf(err))
		_, err = a.Claim(ctx, mktOfficer, mktList[0].ID, events.Action{Actor: "wang"})
		require.NoError(t, err)

		// The live feed filter hides the other department's events too.
		evs, err := l.Since(ctx, 0, events.Filter{}, 100)
		require.NoError(t, err)
		f := events.ScopeFilter(envOfficer, events.Filter{})
		seen := 0
		for _, e := range evs {
			if f(&e) {
				seen++
				require.Equal(t, "市生态环境局", e.Department)
			}
		}
		require.Equal(t, 2, seen) // the reading and its alert.opened

		// GET /api/v1/events for the officer: the same, from the store and from the ring.
		fresh := newLog(t, db)
		for _, lg := range []*events.Log{l, fresh} {
			scoped, err := lg.Since(ctx, 0, events.Filter{Scope: envOfficer}, 100)
			require.NoError(t, err)
			require.Len(t, scoped, 2)
			for _, e := range scoped {
				require.Equal(t, "市生态环境局", e.Department)
			}
			scoped, err = lg.Since(ctx, 0, events.Filter{Scope: wrongRegion}, 100)
			require.NoError(t, err)
			require.Empty(t, scoped)
		}
	})
}

func TestEscalation(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
		l, a := newAlerts(t, db, &now)
		mkt := reading("dev-2", 182)
		mkt.Department = "市市场监督管理局"
		minor := reading("dev-3", 1)
		minor.Severity = "minor" // no rule for minor here: never escalates
		_, err := l.Append(ctx, reading("dev-1", 182), mkt, minor)
		require.NoError(t, err)

		n, err := a.EscalateDue(ctx, now.Add(30*time.Second))
		require.NoError(t, err)
		require.Zero(t, n)
		n, err = a.EscalateDue(ctx, now.Add(2*time.Minute)) // department rule: 1 minute
		require.NoError(t, err)
		require.Equal(t, 1, n)
		n, err = a.EscalateDue(ctx, now.Add(3*time.Minute)) // once per level
		require.NoError(t, err)
		require.Zero(t, n)
		n, err = a.EscalateDue(ctx, now.Add(2*time.Hour)) // env alert: both levels reached at once
		require.NoError(t, err)
		require.Equal(t, 2, n)

		evs, err := l.Since(ctx, 0, events.Filter{Types: []string{"alert.escalated"}}, 10)
		require.NoError(t, err)
		require.Len(t, evs, 3)
		require.Equal(t, "市市场监督管理局", evs[0].Department)
		require.Equal(t, 1, evs[0].Alert.Level)
		require.Equal(t, []int{1, 2}, []int{evs[1].Alert.Level, evs[2].Alert.Level})

		// A claimed alert no longer escalates.
		list, err := a.List(ctx, devices.Scope{}, events.AlertFilter{State: events.AlertOpened})
		require.NoError(t, err)
		for _, al := range list {
			_, err := a.Claim(ctx, devices.Scope{}, al.ID, events.Action{Actor: "li"})
			require.NoError(t, err)
		}
		n, err = a.EscalateDue(ctx, now.Add(100*time.Hour))
		require.NoError(t, err)
		require.Zero(t, n)
	})
}

// Evidence of alerts still open is reported so retention keeps it; once the alert is closed
// its files may age out like any other.
func TestOpenEvidence(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
		l, a := newAlerts(t, db, &now)
		snap, att := strings.Repeat("cd", 32), strings.Repeat("ef", 32)
		e := reading("dev-9", 300)
		e.Evidence = []event.Evidence{{Kind: "snapshot", URL: "/api/v1/evidence/cd/cd/" + snap + ".jpg", SHA256: snap}}
		_, err := l.Append(ctx, e)
		require.NoError(t, err)
		list, err := a.List(ctx, devices.Scope{}, events.AlertFilter{State: events.AlertOpened})
		require.NoError(t, err)
		require.Len(t, list, 1)
		id, all := list[0].ID, devices.Scope{}
		_, err = a.Claim(ctx, all, id, events.Action{Actor: "li"})
		require.NoError(t, err)
		_, err = a.Handle(ctx, all, id, events.Action{Actor: "li", Attachments: []string{att}})
		require.NoError(t, err)

		keep, err := a.OpenEvidence(ctx)
		require.NoError(t, err)
		require.True(t, keep[snap], "the alert's snapshot is kept")
		require.True(t, keep[att], "an attachment of a step is kept")

		_, err = a.Feedback(ctx, all, id, events.Action{Actor: "li", Outcome: "误报"})
		require.NoError(t, err)
		_, err = a.Close(ctx, all, id, events.Action{Actor: "li"})
		require.NoError(t, err)
		keep, err = a.OpenEvidence(ctx)
		require.NoError(t, err)
		require.Empty(t, keep, "nothing is held for a closed alert")
	})
}
