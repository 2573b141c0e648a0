package rules_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/analytics/rules"
	"github.com/offsite-gw/offsite/events/event"
	profiles "github.com/offsite-gw/offsite/firmware-profiles"
)

const minute = time.Minute

var (
	pm10Threshold = profiles.Rule{ID: "pm10-now", Kind: "threshold", Metric: "pm10", Op: ">", Value: 150,
		Hysteresis: 10, Severity: "major", Message: "请督促洒水降尘"}
	pm10Duration = profiles.Rule{ID: "pm10-high", Kind: "duration", Metric: "pm10", Op: ">", Value: 150,
		For: dur("10m"), Hysteresis: 10, Severity: "major", Department: "市生态环境局", Message: "请督促洒水降尘、停止土方作业"}
	tempRate = profiles.Rule{ID: "temperature-rising", Kind: "rate", Metric: "temperature", Op: ">", Value: 5,
		Per: dur("10m"), Severity: "minor", Message: "疑似库门未关或制冷故障"}
	silent = profiles.Rule{ID: "silent", Kind: "silence", Severity: "minor", For: dur("5m")}
)

func TestThreshold(t *testing.T) {
	t.Run("fires", func(t *testing.T) {
		h := newHarness(t, nil, testProfile(pm10Threshold))
		h.observe(0, "pm10", 120)
		h.observe(1*minute, "pm10", 182)
		evs := h.out.events()
		require.Len(t, evs, 1)
		e := evs[0]
		require.Equal(t, "sensor.threshold", e.Type)
		require.Equal(t, event.StateActive, e.State)
		require.Equal(t, "dev-1/pm10-now", e.AlarmKey)
		require.Equal(t, "pm10-now", e.Rule)
		require.Equal(t, "major", e.Severity)
		require.Equal(t, "市住房和城乡建设局", e.Department, "department from the site when the rule has none")
		require.Equal(t, day0.Add(1*minute).UTC(), e.OccurredAt)
		require.Equal(t, &event.Reading{Metric: "pm10", Value: 182, Unit: "µg/m³", Limit: pf(150)}, e.Reading)
		require.Equal(t, "7 号地块 东侧 PM10 182 µg/m³，超过 150 µg/m³。请督促洒水降尘", e.Message)
		require.Equal(t, "site-7", e.Site.ID)
		require.Equal(t, &event.Device{ID: "dev-1", Name: "东侧", Kind: "sensor", Profile: "test-dust"}, e.Device)
		require.NoError(t, e.Validate())
	})
	t.Run("does not fire at or below the limit", func(t *testing.T) {
		h := newHarness(t, nil, testProfile(pm10Threshold))
		h.series(0, 30*minute, 30*time.Second, "pm10", constant(150))
		h.observe(31*minute, "temperature", 900) // another metric
		require.Empty(t, h.out.events())
	})
}

func TestThresholdHysteresis(t *testing.T) {
	t.Run("no flap around the limit", func(t *testing.T) {
		h := newHarness(t, nil, testProfile(pm10Threshold))
		h.observe(0, "pm10", 160)
		for i := 1; i <= 40; i++ {
			v := 149.0
			if i%2 == 0 {
				v = 151
			}
			h.observe(time.Duration(i)*minute, "pm10", v) // between 140 and 150+: still active
		}
		h.observe(41*minute, "pm10", 140) // exactly limit - hysteresis: clears (> means back to ≤ 140)
		require.Equal(t, []string{"active", "cleared"}, h.out.states())
		cl := h.out.events()[1]
		require.Equal(t, "dev-1/pm10-now", cl.AlarmKey)
		require.Equal(t, 140.0, cl.Reading.Value)
		require.Contains(t, cl.Message, "告警解除")
	})
	t.Run("must go back past the hysteresis to clear", func(t *testing.T) {
		h := newHarness(t, nil, testProfile(pm10Threshold))
		h.observe(0, "pm10", 160)
		h.observe(1*minute, "pm10", 145)
		h.observe(2*minute, "pm10", 141)
		require.Equal(t, []string{"active"}, h.out.states())
	})
	t.Run("below ops clear above limit plus hysteresis", func(t *testing.T) {
		cold := profiles.Rule{ID: "too-cold", Kind: "threshold", Metric: "temperature", Op: "<", Value: -25, Hysteresis: 2, Severity: "minor"}
		h := newHarness(t, nil, testProfile(cold))
		h.observe(0, "temperature", -26)
		h.observe(1*minute, "temperature", -24) // not past -23
		require.Equal(t, []string{"active"}, h.out.states())
		h.observe(2*minute, "temperature", -23)
		require.Equal(t, []string{"active", "cleared"}, h.out.states())
	})
}

func TestDuration(t *testing.T) {
	t.Run("fires when held for the whole duration", func(t *testing.T) {
		h := newHarness(t, nil, testProfile(pm10Duration))
		h.series(0, 9*minute+30*time.Second, 30*time.Second, "pm10", constant(182))
		require.Empty(t, h.out.events(), "9.5 minutes is not 10")
		h.observe(10*minute, "pm10", 182)
		evs := h.out.events()
		require.Len(t, evs, 1)
		require.Equal(t, day0.Add(10*minute).UTC(), evs[0].OccurredAt)
		require.Equal(t, "市生态环境局", evs[0].Department, "the rule's department wins over the site's")
		require.Equal(t, "7 号地块 东侧 PM10 182 µg/m³，超过 150 µg/m³ 已持续 10 分钟。请督促洒水降尘、停止土方作业", evs[0].Message)
		h.series(10*minute+30*time.Second, 20*minute, 30*time.Second, "pm10", constant(170))
		require.Len(t, h.out.events(), 1, "one alarm while it lasts")
		h.observe(21*minute, "pm10", 120)
		require.Equal(t, []string{"active", "cleared"}, h.out.states())
	})
	t.Run("does not fire when the condition breaks before", func(t *testing.T) {
		h := newHarness(t, nil, testProfile(pm10Duration))
		h.series(0, 6*minute, 30*time.Second, "pm10", constant(182))
		h.observe(6*minute+30*time.Second, "pm10", 150) // breaks it
		h.series(7*minute, 16*minute, 30*time.Second, "pm10", constant(182))
		require.Empty(t, h.out.events(), "9 + 6 minutes is not 10 in a row")
	})
	t.Run("fires on the tick when the last reading still stands", func(t *testing.T) {
		h := newHarness(t, nil, testProfile(pm10Duration))
		h.series(0, 9*minute, minute, "pm10", constant(182))
		h.tick(9*minute + 59*time.Second)
		require.Empty(t, h.out.events())
		h.tick(10*minute + 200*time.Millisecond)
		evs := h.out.events()
		require.Len(t, evs, 1)
		require.Equal(t, day0.Add(10*minute).UTC(), evs[0].OccurredAt)
	})
	t.Run("does not fire across a gap in the data", func(t *testing.T) {
		h := newHarness(t, nil, testProfile(pm10Duration))
		h.series(0, 3*minute, minute, "pm10", constant(182))
		h.tick(15 * minute) // last reading 12 minutes old: stale (heartbeat 1m)
		h.series(16*minute, 25*minute, minute, "pm10", constant(182))
		require.Empty(t, h.out.events(), "after the gap it starts again at 16m")
		h.observe(26*minute, "pm10", 182)
		require.Equal(t, []string{"active"}, h.out.states())
	})
}

func TestRate(t *testing.T) {
	t.Run("fires on a fast rise", func(t *testing.T) {
		h := newHarness(t, nil, testProfile(tempRate))
		h.series(0, 4*minute, minute, "temperature", constant(-18))
		h.observe(5*minute, "temperature", -15)
		h.observe(6*minute, "temperature", -12.5) // +5.5 in 6 minutes
		evs := h.out.events()
		require.Len(t, evs, 1)
		require.Equal(t, "sensor.threshold", evs[0].Type)
		require.Equal(t, "7 号地块 东侧 温度 10 分钟 内上升 5.5 °C（现为 -12.5 °C），超过 5 °C。疑似库门未关或制冷故障", evs[0].Message)
		// Levels off: once the low point leaves the window the change is small again.
		h.series(7*minute, 20*minute, minute, "temperature", constant(-12.5))
		require.Equal(t, []string{"active", "cleared"}, h.out.states())
	})
	t.Run("does not fire on a slow rise", func(t *testing.T) {
		h := newHarness(t, nil, testProfile(tempRate))
		h.series(0, 120*minute, minute, "temperature", func(d time.Duration) float64 { return -18 + 0.4*d.Minutes() })
		require.Empty(t, h.out.events(), "0.4 °C a minute is 4 °C per 10 minutes")
	})
	t.Run("falling rule", func(t *testing.T) {
		drop := profiles.Rule{ID: "pm10-drop", Kind: "rate", Metric: "pm10", Op: "<", Value: -100, Per: dur("5m"), Severity: "info"}
		h := newHarness(t, nil, testProfile(drop))
		h.observe(0, "pm10", 300)
		h.observe(1*minute, "pm10", 250)
		require.Empty(t, h.out.events())
		h.observe(2*minute, "pm10", 150)
		require.Equal(t, []string{"active"}, h.out.states())
	})
}

func TestSilence(t *testing.T) {
	t.Run("fires when no data, clears when data comes back", func(t *testing.T) {
		h := newHarness(t, nil, testProfile(silent))
		h.observe(0, "pm10", 80)
		h.tick(4*minute + 59*time.Second)
		require.Empty(t, h.out.events())
		h.tick(5*minute + 300*time.Millisecond)
		evs := h.out.events()
		require.Len(t, evs, 1)
		require.Equal(t, "sensor.silent", evs[0].Type)
		require.Equal(t, "dev-1/silent", evs[0].AlarmKey)
		require.Equal(t, day0.Add(5*minute).UTC(), evs[0].OccurredAt)
		require.Nil(t, evs[0].Reading)
		require.Equal(t, "7 号地块 东侧 已 5 分钟 无数据（最后一次 11-27 10:00）", evs[0].Message)
		for d := 6 * minute; d < 60*minute; d += minute {
			h.tick(d)
		}
		require.Len(t, h.out.events(), 1, "one alarm for one silence")
		h.observe(60*minute, "noise", 50)
		require.Equal(t, []string{"active", "cleared"}, h.out.states())
	})
	t.Run("does not fire while data comes", func(t *testing.T) {
		h := newHarness(t, nil, testProfile(silent))
		for d := time.Duration(0); d <= 60*minute; d += 4 * minute {
			h.observe(d, "pm10", 80)
			h.tick(d + 3*minute + 59*time.Second)
		}
		require.Empty(t, h.out.events())
	})
	t.Run("metric silence and the heartbeat default", func(t *testing.T) {
		r := profiles.Rule{ID: "pm10-silent", Kind: "silence", Metric: "pm10", Severity: "minor"} // for: 3 × 1m heartbeat
		h := newHarness(t, nil, testProfile(r))
		h.observe(0, "pm10", 80)
		for d := minute; d <= 10*minute; d += minute {
			h.observe(d, "noise", 50) // other metrics do not count
		}
		evs := h.out.events()
		require.Len(t, evs, 1)
		require.Equal(t, day0.Add(3*minute).UTC(), evs[0].OccurredAt)
		require.Contains(t, evs[0].Message, "PM10 数据")
	})
}

func TestSchedules(t *testing.T) {
	working := option(func(e *rules.Engine) {
		e.Schedules = map[string]rules.Schedule{
			"working-hours": {Windows: []string{"08:30-12:00", "13:30-17:30"}, Calendar: "working"},
		}
		e.Holidays = rules.Holidays{Off: []string{"2026-10-01..2026-10-07"}, Workdays: []string{"2026-09-27", "2026-10-10"}}
		e.Overrides = []rules.Override{{Rule: "pm10-now", Schedule: "working-hours"}}
	})
	cases := []struct {
		name string
		at   time.Time
		fire bool
	}{
		{"working day inside hours", time.Date(2026, 11, 27, 9, 0, 0, 0, shanghai), true},
		{"working day lunch break", time.Date(2026, 11, 27, 12, 30, 0, 0, shanghai), false},
		{"working day evening", time.Date(2026, 11, 27, 20, 0, 0, 0, shanghai), false},
		{"saturday", time.Date(2026, 11, 28, 9, 0, 0, 0, shanghai), false},
		{"national day holiday (thursday)", time.Date(2026, 10, 1, 9, 0, 0, 0, shanghai), false},
		{"make-up working sunday 调休", time.Date(2026, 9, 27, 9, 0, 0, 0, shanghai), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, nil, testProfile(pm10Threshold), working)
			h.clk.Set(c.at)
			h.e.Observe(t.Context(), "dev-1", reading("pm10", 200), c.at)
			require.NoError(t, h.e.Tick(t.Context()))
			if c.fire {
				require.Equal(t, []string{"active"}, h.out.states())
			} else {
				require.Empty(t, h.out.events())
			}
		})
	}

	t.Run("window end clears an active alarm and drops a pending one", func(t *testing.T) {
		noise := profiles.Rule{ID: "noise-day", Kind: "duration", Metric: "noise", Op: ">", Value: 70, For: dur("10m"),
			Severity: "major", During: "06:00-22:00"}
		h := newHarness(t, nil, testProfile(noise))
		start := 21*time.Hour + 40*time.Minute - 10*time.Hour // day0 is 10:00 → 21:40
		h.series(start, start+15*minute, minute, "noise", constant(80))
		require.Equal(t, []string{"active"}, h.out.states())
		h.tick(12 * time.Hour) // 22:00
		require.Equal(t, []string{"active", "cleared"}, h.out.states())
		require.Contains(t, h.out.events()[1].Message, "监测时段（06:00-22:00）已结束")
		h.series(12*time.Hour+minute, 12*time.Hour+60*minute, minute, "noise", constant(80))
		require.Len(t, h.out.events(), 2, "nothing raised or pending outside the window")
		// Next morning 06:00 it starts counting from zero.
		h.series(20*time.Hour, 20*time.Hour+9*minute, minute, "noise", constant(80))
		require.Len(t, h.out.events(), 2)
		h.observe(20*time.Hour+10*minute, "noise", 80)
		require.Len(t, h.out.events(), 3)
	})
}

func TestOverrides(t *testing.T) {
	t.Run("site override disables", func(t *testing.T) {
		h := newHarness(t, nil, testProfile(pm10Threshold), func(e *rules.Engine) {
			e.Overrides = []rules.Override{{Site: "site-7", Rule: "pm10-now", Disable: true}}
		})
		h.observe(0, "pm10", 500)
		require.Empty(t, h.out.events())
	})
	t.Run("device override beats site override and changes value and severity", func(t *testing.T) {
		h := newHarness(t, nil, testProfile(pm10Threshold), func(e *rules.Engine) {
			e.Overrides = []rules.Override{
				{Device: "dev-1", Rule: "pm10-now", Value: pf(100), Severity: "critical", Department: "区住建局"},
				{Site: "site-7", Rule: "pm10-now", Disable: true},
			}
		})
		h.observe(0, "pm10", 120)
		evs := h.out.events()
		require.Len(t, evs, 1)
		require.Equal(t, "critical", evs[0].Severity)
		require.Equal(t, "区住建局", evs[0].Department)
		require.Equal(t, 100.0, *evs[0].Reading.Limit)
	})
	t.Run("override adds a rule", func(t *testing.T) {
		h := newHarness(t, nil, testProfile(), func(e *rules.Engine) {
			e.Overrides = []rules.Override{{Profile: "test-dust", Rule: "noise-any", Kind: "threshold", Metric: "noise",
				Op: ">=", Value: pf(85), Severity: "minor", Message: "噪声过大"}}
		})
		h.observe(0, "noise", 84)
		require.Empty(t, h.out.events())
		h.observe(minute, "noise", 85)
		require.Equal(t, []string{"active"}, h.out.states())
		require.Equal(t, "7 号地块 东侧 噪声 85 dB(A)，达到 85 dB(A)。噪声过大", h.out.events()[0].Message)
	})
	t.Run("another site keeps the default", func(t *testing.T) {
		h := newHarness(t, nil, testProfile(pm10Threshold), func(e *rules.Engine) {
			e.Overrides = []rules.Override{{Site: "site-9", Rule: "pm10-now", Disable: true}}
		})
		h.observe(0, "pm10", 500)
		require.Len(t, h.out.events(), 1)
	})
}

func TestCooldownSuppressesStorm(t *testing.T) {
	h := newHarness(t, nil, testProfile(pm10Threshold))
	// 100 crossings in 200 seconds, each far past the hysteresis.
	for i := 0; i < 100; i++ {
		h.observe(time.Duration(2*i)*time.Second, "pm10", 200)
		h.observe(time.Duration(2*i+1)*time.Second, "pm10", 100)
	}
	require.Equal(t, []string{"active", "cleared"}, h.out.states())
	require.Equal(t, uint64(99), h.e.Stats().Suppressed)
	// After the cooldown (5m after the clear at 1s) the alarm may come again.
	h.observe(5*minute+2*time.Second, "pm10", 200)
	require.Equal(t, []string{"active", "cleared", "active"}, h.out.states())
}

func TestEmitFailureKeepsEvents(t *testing.T) {
	h := newHarness(t, nil, testProfile(pm10Threshold))
	h.out.setFail(true)
	h.observeNoTick(0, "pm10", 200)
	require.Error(t, h.e.Tick(t.Context()))
	require.Equal(t, int64(1), h.e.Stats().Pending)
	h.out.setFail(false)
	h.tick(500 * time.Millisecond) // still backing off
	require.Empty(t, h.out.events())
	h.tick(2 * time.Second)
	require.Equal(t, []string{"active"}, h.out.states())
	require.Equal(t, int64(0), h.e.Stats().Pending)
}

func reading(metric string, v float64) []decodeReading {
	return []decodeReading{{Metric: metric, Value: v}}
}

func TestDisabledRuleClearsItsAlarm(t *testing.T) {
	h := newHarness(t, nil, testProfile(pm10Threshold))
	h.observe(0, "pm10", 200)
	require.NoError(t, h.e.Close())
	h.start(testProfile(pm10Threshold), func(e *rules.Engine) {
		e.Overrides = []rules.Override{{Device: "dev-1", Rule: "pm10-now", Disable: true}}
	})
	h.tick(minute) // the restarted engine looks the device up and finds the rule gone
	require.Equal(t, []string{"active", "cleared"}, h.out.states())
	cl := h.out.events()[1]
	require.Equal(t, "dev-1/pm10-now", cl.AlarmKey)
	require.Equal(t, "major", cl.Severity)
	require.Contains(t, cl.Message, "已停用或删除")
	h.observe(2*minute, "pm10", 300)
	require.Len(t, h.out.events(), 2)
}

func TestRunEmitsSoonAfterTransition(t *testing.T) {
	h := newHarness(t, nil, testProfile(pm10Threshold), func(e *rules.Engine) { e.TickEvery = time.Hour })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); h.e.Run(ctx) }()
	h.e.Observe(ctx, "dev-1", reading("pm10", 200), day0)
	require.Eventually(t, func() bool { return len(h.out.events()) == 1 }, 5*time.Second, 5*time.Millisecond,
		"a transition wakes Run, it does not wait for the next tick")
	cancel()
	<-done
	require.NoError(t, h.e.Close())
}
