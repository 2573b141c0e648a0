package worker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/analytics/lease"
	"github.com/offsite-gw/offsite/analytics/rules"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/event"
	profiles "github.com/offsite-gw/offsite/firmware-profiles"
	"github.com/offsite-gw/offsite/ingest/decode"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
	"github.com/offsite-gw/offsite/streams"
	"github.com/offsite-gw/offsite/streams/simcam"
)

// TestDemoScenarioAlerts runs the demo's own scenario for 10 simulated minutes (issue 16):
// the demo cameras whose picture goes black and returns, whose counter window empties and
// fills, a camera that reboots every 3 minutes, and a gas detector whose reading crosses the
// low and then the high limit. The pictures go through the real detectors, the gas readings
// through the real rules engine with the shipped profile, everything through the real event
// log and alerts. Officers must get at most one open alert per alarm key, counting the
// occurrences, and one gas alert at the high severity — all in Chinese.
func TestDemoScenarioAlerts(t *testing.T) {
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.FixedZone("CST", 8*3600)) // a Monday morning
	const simulated = 10 * time.Minute
	timeline := demoVideoEvents(t, start, simulated)
	timeline = append(timeline, rebootEvents(start, simulated, 3*time.Minute, 20*time.Second)...)
	sort.SliceStable(timeline, func(i, j int) bool { return timeline[i].OccurredAt.Before(timeline[j].OccurredAt) })

	schema := []store.Migrations{devices.Migrations, events.Migrations, rules.Migrations}
	storetest.Each(t, schema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := start
		clock := func() time.Time { return now }
		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		log := &events.Log{DB: db, GatewayID: "demo-gw", Now: clock, Logger: quiet}
		require.NoError(t, log.Initialize())
		alerts := &events.Alerts{Log: log, Logger: quiet}
		require.NoError(t, alerts.Initialize())
		reg, err := profiles.NewRegistry(true, "")
		require.NoError(t, err)
		eng := &rules.Engine{DB: db, Profiles: reg, Devices: demoDirectory{}, Now: clock, Logger: quiet,
			Emit: func(ctx context.Context, evs []event.Event) error { _, err := log.Append(ctx, evs...); return err }}
		require.NoError(t, eng.Initialize())

		gas := func(at time.Duration) float64 { // %LEL: low limit 10, high limit 20
			switch {
			case at >= 2*time.Minute && at < 2*time.Minute+30*time.Second:
				return 12
			case at >= 2*time.Minute+30*time.Second && at < 3*time.Minute+30*time.Second:
				return 35
			case at >= 3*time.Minute+30*time.Second && at < 4*time.Minute:
				return 15
			}
			return 3
		}
		next := 0
		for step := time.Duration(0); step <= simulated; step += time.Second {
			now = start.Add(step)
			for next < len(timeline) && !timeline[next].OccurredAt.After(now) {
				e := timeline[next]
				e.ID = events.NewID(e.OccurredAt)
				_, err := log.Append(ctx, e)
				require.NoError(t, err)
				next++
			}
			if step%(30*time.Second) == 0 {
				eng.Observe(ctx, "gas-1", []decode.Reading{{Metric: "lel", Value: gas(step)}}, now)
			}
			require.NoError(t, eng.Tick(ctx))
		}
		require.NoError(t, eng.Close())

		all, err := log.Since(ctx, 0, events.Filter{}, 100000)
		require.NoError(t, err)
		list, err := alerts.List(ctx, devices.Scope{}, events.AlertFilter{Limit: 5000})
		require.NoError(t, err)

		// At most one alert not closed per alarm key, and per condition (GroupKey).
		open := map[string]int{}
		for _, al := range list {
			if al.State != events.AlertClosed {
				open[al.GroupKey]++
				require.LessOrEqual(t, open[al.GroupKey], 1, "two open alerts for %s", al.GroupKey)
			}
		}
		activations := map[string]int{} // active edges per alarm key, as the log has them
		for _, e := range all {
			if e.State == event.StateActive && !strings.HasPrefix(e.Type, event.AlertPrefix) {
				activations[e.AlarmKey]++
			}
		}
		byKey := map[string]events.Alert{}
		for _, al := range list {
			byKey[al.AlarmKey] = al
		}
		check := func(key string, atLeast int) {
			t.Helper()
			al, ok := byKey[key]
			require.True(t, ok, "no alert for %s (keys: %v)", key, activations)
			require.GreaterOrEqual(t, activations[key], atLeast, "%s flapped fewer times than the scenario makes it", key)
			require.Equal(t, activations[key], al.Occurrences, "%s: one occurrence per activation", key)
			t.Logf("%s: one alert, %d occurrences, first %s, last %s", key, al.Occurrences, al.FirstAt.Sub(start.UTC()), al.LastAt.Sub(start.UTC()))
		}
		check("goes-black/tamper", 8)               // black for 20 s of every 40 s
		check("counter-empties/staff_absent/w1", 5) // the clerk leaves for 40 s of every minute
		check("back-office/signal", 3)              // reboots at 3, 6 and 9 minutes
		require.Equal(t, 3, byKey["back-office/signal"].Occurrences, "one alarm per outage")

		// The gas reading over both limits: one alert, at the high severity.
		var gasAlerts []events.Alert
		for _, al := range list {
			if al.DeviceID == "gas-1" {
				gasAlerts = append(gasAlerts, al)
			}
		}
		require.Len(t, gasAlerts, 1, "low and high limit of one reading are one alert")
		require.Equal(t, "critical", gasAlerts[0].Severity)
		require.Contains(t, gasAlerts[0].Message, "35 %LEL，超过高限 20 %LEL")
		full, err := alerts.Get(ctx, devices.Scope{}, gasAlerts[0].ID)
		require.NoError(t, err)
		var steps []string
		for _, s := range full.Steps {
			steps = append(steps, s.Action)
		}
		require.Equal(t, []string{"open", "raise", "recover"}, steps)

		// Every sentence a person reads is Chinese: no English phrase in any message.
		for _, e := range all {
			requireChinese(t, e.Type+" "+e.AlarmKey, e.Message)
		}
		for _, al := range list {
			requireChinese(t, "alert "+al.AlarmKey, al.Message)
		}
	})
}

// englishPhrase finds words of Latin letters, except units and abbreviations people read in
// Chinese text too.
var englishPhrase = regexp.MustCompile(`[A-Za-z]{3,}`)

var allowedLatin = map[string]bool{"LEL": true, "PM": true, "TSP": true, "dBA": true}

func requireChinese(t *testing.T, what, msg string) {
	t.Helper()
	for _, w := range englishPhrase.FindAllString(msg, -1) {
		if !allowedLatin[w] {
			t.Errorf("%s: message %q contains the English %q", what, msg, w)
		}
	}
}

// demoVideoEvents plays the demo's analytics cameras (streams/simcam) with the demo settings
// through the real detectors, one look per keyframe, looped for d of simulated time, and
// returns the events the worker would post.
func demoVideoEvents(t *testing.T, start time.Time, d time.Duration) []event.Event {
	var all map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(simcam.AnalyticsDemoSettings(), &all))
	dec, err := NewKeyframeDecoder()
	require.NoError(t, err)
	defer dec.Close()
	w := &Worker{}
	var out []event.Event
	for _, cam := range simcam.AnalyticsDemoCameras() {
		set, err := lease.ParseSettings(all[cam.Path])
		require.NoError(t, err)
		set.Defaults()
		require.NoError(t, set.Validate())
		kfs, err := Keyframes(cam.Clip)
		require.NoError(t, err)
		require.NotEmpty(t, kfs)
		// The clips have a keyframe every 2 s (50 frames at 25 fps); the worker looks at each.
		every := 2 * time.Second
		a := &Analyzer{CameraID: cam.Path, Settings: set}
		asg := lease.Assignment{CameraID: cam.Path, SiteID: "site-1", Settings: set}
		for i := 0; time.Duration(i)*every <= d; i++ {
			pic, err := dec.Decode(kfs[i%len(kfs)])
			require.NoError(t, err)
			sigs, err := a.Analyze(start.Add(time.Duration(i)*every), pic)
			require.NoError(t, err)
			for _, s := range sigs {
				e := w.event(asg, s)
				demoSite(&e)
				out = append(out, e)
			}
		}
		a.Close()
	}
	return out
}

// rebootEvents are what the gateway logs (gateway/video.go onState) for a camera that reboots
// every `every` for `down`: the relay notices the stall after 5 s and drops the session after
// 15 s; the camera answers again when it is back, and the first packets make it online.
func rebootEvents(start time.Time, d, every, down time.Duration) []event.Event {
	type change struct {
		at     time.Duration
		st     streams.State
		reason string
	}
	var changes []change
	for at := every; at < d; at += every {
		changes = append(changes,
			change{at + 5*time.Second, streams.StateStalled, "no packets for 5s"},
			change{at + 15*time.Second, streams.StateOffline, "stream lost: EOF; retrying in 1s"},
			change{at + 16*time.Second, streams.StateConnecting, ""},
			change{at + 17*time.Second, streams.StateOffline, "dial tcp 127.0.0.1:8554: connect: connection refused"},
			change{at + down + time.Second, streams.StateConnecting, ""},
			change{at + down + 2*time.Second, streams.StateOnline, ""})
	}
	var out []event.Event
	prev := streams.StateOnline
	for _, c := range changes {
		typ := streams.EventType(prev, c.st)
		prev = c.st
		if typ == "" {
			continue
		}
		e := event.Event{Type: typ, Device: &event.Device{ID: "back-office", Kind: "camera", Name: "后台办公室"},
			AlarmKey: "back-office/signal", Rule: "video.signal", OccurredAt: start.Add(c.at).UTC()}
		if typ == event.TypeVideoSignalLost {
			_, text := streams.ExplainReason(c.reason)
			e.Severity, e.State, e.Message, e.Detail = "major", event.StateActive, "摄像机视频信号中断："+text, c.reason
		} else {
			e.Severity, e.State, e.Message = "info", event.StateCleared, "摄像机视频信号恢复"
		}
		demoSite(&e)
		out = append(out, e)
	}
	return out
}

func demoSite(e *event.Event) {
	e.Site = &event.Site{ID: "site-1", Name: "城东便民服务中心", RegionCode: "410702"}
	e.Department = "市行政审批服务局"
}

// demoDirectory is the gas detector of the demo site (rules.Engine's device lookup).
type demoDirectory struct{}

func (demoDirectory) GetDevice(_ context.Context, id string) (devices.Device, error) {
	if id != "gas-1" {
		return devices.Device{}, errors.New("no such device")
	}
	return devices.Device{ID: "gas-1", SiteID: "site-1", Name: "后厨燃气", Kind: devices.KindSensor, Profile: "gas-detector"}, nil
}

func (demoDirectory) GetSite(_ context.Context, id string) (devices.Site, error) {
	return devices.Site{ID: "site-1", Name: "城东便民服务中心", RegionCode: "410702", Department: "市应急管理局"}, nil
}
