package rules_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/analytics/rules"
	profiles "github.com/offsite-gw/offsite/firmware-profiles"
)

const sampleConfig = `
schedules:
  working-hours:
    windows: ["08:30-12:00", "13:30-17:30"]
    calendar: working
  night:
    windows: ["22:00-06:00"]
    days: [mon, tue, wed, thu, fri]
holidays:
  off: [2026-10-01..2026-10-07, 2026-01-01]
  workdays: [2026-09-27, 2026-10-10]
cooldown: 10m
overrides:
  - site: site-7
    rule: pm10-high
    value: 120
    for: 15m
    schedule: working-hours
  - device: dev-9
    rule: silent
    disable: true
  - profile: coldchain-logger
    rule: door-warm
    kind: threshold
    metric: temperature
    op: ">"
    value: -10
    severity: minor
`

func TestParseConfig(t *testing.T) {
	c, err := rules.ParseConfig([]byte(sampleConfig))
	require.NoError(t, err)
	require.Equal(t, []string{"2026-10-01..2026-10-07", "2026-01-01"}, c.Holidays.Off, "YAML dates stay strings")
	require.Equal(t, profiles.Duration(10*time.Minute), c.Cooldown)
	require.Len(t, c.Overrides, 3)
	require.Equal(t, 120.0, *c.Overrides[0].Value)
	require.Equal(t, profiles.Duration(15*time.Minute), *c.Overrides[0].For)

	// JSON is accepted too.
	_, err = rules.ParseConfig([]byte(`{"cooldown": "1m", "overrides": [{"rule": "x", "disable": true}]}`))
	require.NoError(t, err)
	c, err = rules.ParseConfig(nil)
	require.NoError(t, err)
	require.Empty(t, c.Overrides)
}

func TestConfigErrors(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown key", "overides: []", "field overides not found"},
		{"missing rule", "overrides: [{site: s1, value: 3}]", "rules.overrides[0] (site s1, rule ): rule is missing"},
		{"bad op", "overrides: [{rule: a, op: '=>'}]", `op "=>" is not one of`},
		{"bad severity", "overrides: [{rule: a, severity: urgent}]", `severity "urgent" is not one of info, minor, major, critical`},
		{"bad during", "overrides: [{rule: a, during: '25:00-06:00'}]", `during: window "25:00-06:00": start`},
		{"unknown schedule", "overrides: [{rule: a, schedule: lunch}]", `schedule "lunch" is not defined in rules.schedules`},
		{"disable with change", "overrides: [{rule: a, disable: true, value: 3}]", "disable: true together with changes"},
		{"incomplete new rule", "overrides: [{rule: a, kind: duration, metric: pm10, op: '>', value: 1, severity: major}]", "needs for > 0"},
		{"bare number duration", "overrides: [{rule: a, for: 600}]", "duration must be a string"},
		{"negative hysteresis", "overrides: [{rule: a, hysteresis: -1}]", "hysteresis must be ≥ 0"},
		{"bad holiday", "holidays: {off: [2026-13-01]}", `rules.holidays.off: date "2026-13-01"`},
		{"reversed range", "holidays: {off: ['2026-10-07..2026-10-01']}", "ends before it starts"},
		{"off and workday", "holidays: {off: [2026-10-01], workdays: [2026-10-01]}", "both a day off and a make-up working day"},
		{"bad day", "schedules: {x: {days: [monday]}}", `rules.schedules.x: day "monday"`},
		{"days and calendar", "schedules: {x: {days: [mon], calendar: working}}", "days and calendar"},
		{"bad calendar", "schedules: {x: {calendar: weekend}}", `calendar "weekend"`},
		{"whole day window", "schedules: {x: {windows: ['00:00-24:00']}}", "covers the whole day"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := rules.ParseConfig([]byte(c.yaml))
			require.Error(t, err)
			require.Contains(t, err.Error(), c.want)
		})
	}
}

func TestParseWindow(t *testing.T) {
	for in, want := range map[string]string{
		"08:30-12:00": "08:30-12:00", " 22:00-06:00 ": "22:00-06:00", "18:00-24:00": "18:00-24:00",
	} {
		w, err := rules.ParseWindow(in)
		require.NoError(t, err, in)
		require.Equal(t, want, w.String())
	}
	for _, bad := range []string{"", "8:30-12:00", "08:30", "08:30-08:30", "24:00-06:00", "08:60-09:00", "08:30-12:00x", "０８:30-12:00"} {
		_, err := rules.ParseWindow(bad)
		require.Error(t, err, bad)
	}
}

func TestEngineRefusesInvalidConfig(t *testing.T) {
	db := newHarness(t, nil, testProfile()).db
	e := &rules.Engine{DB: db, Profiles: profileMap{}, Devices: testDevices(0), Emit: (&sink{}).Emit,
		Overrides: []rules.Override{{Rule: "a", Schedule: "nope"}}}
	require.ErrorContains(t, e.Initialize(), `schedule "nope" is not defined`)
}

func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"08:30-12:00", "22:00-06:00", "18:00-24:00", "00:00-24:00", "9:00-10:00", "-", "23:59-00:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := rules.ParseWindow(s)
		if err != nil {
			return
		}
		require.True(t, w.Start >= 0 && w.Start < 1440 && w.End > 0 && w.End <= 1440 && w.Start != w.End, "%q → %+v", s, w)
		again, err := rules.ParseWindow(w.String())
		require.NoError(t, err)
		require.Equal(t, w, again)
	})
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(sampleConfig))
	f.Add([]byte(`{"overrides": [{"rule": "x", "kind": "silence", "severity": "info"}]}`))
	f.Add([]byte("holidays: {off: ['2026-01-01..2026-12-31']}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := rules.ParseConfig(data)
		if err != nil {
			return
		}
		// A valid config is accepted by the engine's own validation and does not panic when
		// rules are layered for a device.
		require.NoError(t, c.Validate())
		_, err = rules.ParseOverrides(nil, c.Schedules)
		require.NoError(t, err)
	})
}
