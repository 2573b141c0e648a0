package lease_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/analytics/lease"
)

func TestParseSettings(t *testing.T) {
	for _, tc := range []struct {
		name, in, err string
	}{
		{"empty object", `{}`, ""},
		{"full", `{"sensitivity":0.7,"timezone":"Asia/Shanghai","schedule":[{"from":"08:00","to":"12:00"},{"days":[6,7],"from":"22:00","to":"06:00"}],
			"zones":[{"id":"q","kind":"queue","polygon":[[0,0],[1,0],[1,1]],"max_people":8,"crowd_for":30}],"tamper":{"for":"5s"},"motion":false}`, ""},
		{"unknown field", `{"sensitivty":0.5}`, "not valid JSON"},
		{"bad kind", `{"zones":[{"id":"a","kind":"door","polygon":[[0,0],[1,0],[1,1]]}]}`, "kind"},
		{"pixel coordinates", `{"zones":[{"id":"a","kind":"area","polygon":[[0,0],[640,0],[640,360]]}]}`, "outside 0…1"},
		{"two points", `{"zones":[{"id":"a","kind":"area","polygon":[[0,0],[1,0]]}]}`, "3 to"},
		{"duplicate zone", `{"zones":[{"id":"a","kind":"area","polygon":[[0,0],[1,0],[1,1]]},{"id":"a","kind":"area","polygon":[[0,0],[1,0],[1,1]]}]}`, "twice"},
		{"bad time", `{"schedule":[{"from":"8:00","to":"17:00"}]}`, "HH:MM"},
		{"bad day", `{"schedule":[{"days":[0],"from":"08:00","to":"17:00"}]}`, "day 0"},
		{"bad tz", `{"timezone":"../../etc/passwd"}`, "timezone"},
		{"sensitivity", `{"sensitivity":2}`, "sensitivity"},
		{"trailing", `{} {}`, "after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := lease.ParseSettings([]byte(tc.in))
			if tc.err == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tc.err)
			}
		})
	}
}

func TestWorkingHours(t *testing.T) {
	s, err := lease.ParseSettings([]byte(`{"schedule":[{"days":[1,2,3,4,5],"from":"08:30","to":"17:30"},{"days":[5],"from":"22:00","to":"02:00"}]}`))
	require.NoError(t, err)
	sh, _ := time.LoadLocation("Asia/Shanghai")
	at := func(day, h, m int) time.Time { return time.Date(2026, 11, day, h, m, 0, 0, sh) } // 23 Nov 2026 is a Monday
	require.True(t, s.Working(at(23, 8, 30)))
	require.False(t, s.Working(at(23, 8, 29)))
	require.False(t, s.Working(at(23, 17, 30)))
	require.False(t, s.Working(at(28, 10, 0)), "Saturday")
	require.True(t, s.Working(at(27, 23, 0)), "Friday night shift")
	require.True(t, s.Working(at(28, 1, 59)), "Friday's shift past midnight")
	require.False(t, s.Working(at(29, 1, 0)), "Saturday's night has no shift")
	require.True(t, s.Working(at(23, 1, 0).UTC().Add(8*time.Hour)), "UTC input is converted")
	empty := lease.DefaultSettings()
	require.True(t, empty.Working(at(28, 3, 0)), "no schedule: always working")
}

func FuzzParseSettings(f *testing.F) {
	for _, s := range []string{`{}`, `{"zones":[{"id":"a","kind":"counter","polygon":[[0,0],[1,0],[1,1]],"absent_after":"5m"}]}`,
		`{"schedule":[{"days":[1],"from":"24:00","to":"00:00"}],"timezone":"UTC"}`, `{"sensitivity":1e308}`, `{"tamper":{"for":-1}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := lease.ParseSettings(b)
		if err != nil {
			return
		}
		// What parses must validate, survive a round trip, and answer Working without panic.
		require.NoError(t, s.Validate())
		_ = s.Working(time.Now())
		out, err := jsonRoundTrip(s)
		require.NoError(t, err)
		require.Equal(t, len(s.Zones), len(out.Zones))
	})
}
