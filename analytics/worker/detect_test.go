package worker_test

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/analytics/lease"
	"github.com/offsite-gw/offsite/analytics/worker"
	"github.com/offsite-gw/offsite/events/event"
)

var (
	shanghai, _ = time.LoadLocation("Asia/Shanghai")
	// A Monday at 10:00 (working hours) and 22:00 (after hours).
	monday10 = time.Date(2026, 11, 23, 10, 0, 0, 0, shanghai)
	monday22 = time.Date(2026, 11, 23, 22, 0, 0, 0, shanghai)
)

const (
	bg640 = "testsrc2=s=640x360:r=25:d=0.04,tpad=stop_mode=clone:stop_duration=60,noise=alls=6:allf=t"
	// A dark person-sized box that sways in the counter area.
	person = "color=c=0x202020:s=60x150:r=25:d=60"
)

type result struct {
	signals  []worker.Signal
	measures []worker.Measure
}

func (r result) of(typ, state string) []worker.Signal {
	var out []worker.Signal
	for _, s := range r.signals {
		if s.Type == typ && (state == "" || s.State == state) {
			out = append(out, s)
		}
	}
	return out
}

// analyzeClip feeds every keyframe of an Annex-B clip through the decoder and an Analyzer,
// one look per keyframe, timed from start at the clip's keyframe interval.
func analyzeClip(t *testing.T, clip string, set lease.CameraSettings, start time.Time, every time.Duration) result {
	t.Helper()
	b, err := os.ReadFile(clip)
	require.NoError(t, err)
	kfs, err := worker.Keyframes(b)
	require.NoError(t, err)
	require.NotEmpty(t, kfs)
	dec, err := worker.NewKeyframeDecoder()
	require.NoError(t, err)
	defer dec.Close()
	set.Defaults()
	require.NoError(t, set.Validate())
	var res result
	a := &worker.Analyzer{CameraID: "cam-1", Settings: set, Debug: func(m worker.Measure) { res.measures = append(res.measures, m) }}
	defer a.Close()
	for i, kf := range kfs {
		pic, err := dec.Decode(kf)
		require.NoError(t, err)
		sig, err := a.Analyze(start.Add(time.Duration(i)*every), pic)
		require.NoError(t, err)
		for i := range sig {
			s := &sig[i]
			if s.State == "active" {
				require.NotEmpty(t, s.Snapshot, "%s raised without a snapshot", s.AlarmKey)
				require.Equal(t, []byte{0xff, 0xd8}, s.Snapshot[:2], "snapshot is a JPEG")
			}
			s.Snapshot = nil // keep failure messages readable
			t.Logf("%5.0fs %s %s %s %s (%s=%v)", s.At.Sub(start).Seconds(), s.Type, s.State, s.AlarmKey, s.Reason, s.Metric, s.Value)
		}
		res.signals = append(res.signals, sig...)
	}
	if testing.Verbose() {
		for _, m := range res.measures {
			t.Logf("look %3.0fs mean=%.0f std=%.0f sharp=%.0f/%.0f shift=%.1f(%.2f) changed=%.4f motion=%.4f counts=%v occ=%v act=%v %s",
				m.At.Sub(start).Seconds(), m.Mean, m.Std, m.Sharp, m.Ref, m.Shift, m.Response, m.Changed, m.Motion, m.Counts, m.Occupancy, m.Activity, m.Reason)
		}
	}
	return res
}

const keyframeEvery = 2 * time.Second

func tamperSettings() lease.CameraSettings {
	return lease.CameraSettings{Tamper: lease.Tamper{For: lease.Duration(6 * time.Second), FrozenFor: lease.Duration(10 * time.Second)}}
}

func TestTamperFires(t *testing.T) {
	for _, tc := range []struct {
		name, input, filter, reason string
		cleared                     bool
	}{
		{"black", "-f lavfi -i testsrc2=s=640x360:r=25:d=12[a];color=c=black:s=640x360:r=25:d=24[b];testsrc2=s=640x360:r=25:d=24[c];[a][b][c]concat=n=3:v=1:a=0[out0]", "", worker.ReasonCovered, true},
		{"blurred", "-f lavfi -i testsrc2=s=640x360:r=25:d=50", "boxblur=8:enable='gte(t,16)'", worker.ReasonDefocused, false},
		{"frozen", "-f lavfi -i testsrc2=s=640x360:r=25:d=12", "tpad=stop_mode=clone:stop_duration=36", worker.ReasonFrozen, false},
		{"shifted", "-f lavfi -i testsrc2=s=720x400:r=25:d=50", "crop=640:360:x='if(gte(t,16),72,0)':y='if(gte(t,16),30,0)'", worker.ReasonMoved, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clip := makeClip(t, "tamper-"+tc.name, tc.input, tc.filter)
			res := analyzeClip(t, clip, tamperSettings(), monday10, keyframeEvery)
			raised := res.of(event.TypeVideoTamper, "active")
			require.Len(t, raised, 1, "one tamper alarm")
			require.Equal(t, tc.reason, raised[0].Reason)
			require.Equal(t, "cam-1/tamper", raised[0].AlarmKey)
			require.Greater(t, raised[0].At.Sub(monday10), 12*time.Second, "not before the change")
			if tc.cleared {
				require.Len(t, res.of(event.TypeVideoTamper, "cleared"), 1, "cleared when the picture is back")
			}
			require.Empty(t, res.of(event.TypeVideoMotion, ""), "no motion during working hours")
		})
	}
}

func TestTamperDoesNotFire(t *testing.T) {
	for _, tc := range []struct{ name, input, filter string }{
		{"moving scene", "-f lavfi -i testsrc2=s=640x360:r=25:d=50", ""},
		{"still scene with sensor noise", "-f lavfi -i " + bg640, ""},
		{"person walking", "-f lavfi -i " + bg640 + "[bg];" + person + "[p];[bg][p]overlay=x='100+200*sin(t/3)':y=150[out0]", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clip := makeClip(t, "calm", tc.input, tc.filter)
			res := analyzeClip(t, clip, tamperSettings(), monday10, keyframeEvery)
			require.Empty(t, res.of(event.TypeVideoTamper, ""))
		})
	}
}

func motionSettings() lease.CameraSettings {
	return lease.CameraSettings{Schedule: []lease.Period{{From: "08:30", To: "17:30"}}}
}

func TestMotion(t *testing.T) {
	walker := makeClip(t, "motion-walker", "-f lavfi -i "+bg640+"[bg];"+person+"[p];[bg][p]overlay=x='100+200*sin(t/3)':y=150:enable='between(t,20,40)'[out0]", "")
	still := makeClip(t, "motion-still", "-f lavfi -i "+bg640, "")

	t.Run("fires after hours", func(t *testing.T) {
		res := analyzeClip(t, walker, motionSettings(), monday22, keyframeEvery)
		raised := res.of(event.TypeVideoMotion, "active")
		require.Len(t, raised, 1)
		require.InDelta(t, 22, raised[0].At.Sub(monday22).Seconds(), 2.1)
		require.Len(t, res.of(event.TypeVideoMotion, "cleared"), 0, "clears 30 s after the last movement: past the clip")
	})
	t.Run("does not fire in working hours", func(t *testing.T) {
		res := analyzeClip(t, walker, motionSettings(), monday10, keyframeEvery)
		require.Empty(t, res.of(event.TypeVideoMotion, ""))
	})
	t.Run("does not fire on a still scene", func(t *testing.T) {
		res := analyzeClip(t, still, motionSettings(), monday22, keyframeEvery)
		require.Empty(t, res.of(event.TypeVideoMotion, ""))
	})
	t.Run("does not fire outside its zone", func(t *testing.T) {
		set := motionSettings()
		set.Zones = []lease.Zone{{ID: "door", Kind: lease.ZoneArea, Polygon: [][2]float64{{0.7, 0}, {1, 0}, {1, 0.4}, {0.7, 0.4}}}}
		res := analyzeClip(t, walker, set, monday22, keyframeEvery)
		require.Empty(t, res.of(event.TypeVideoMotion, ""))
	})
}

func counterSettings() lease.CameraSettings {
	return lease.CameraSettings{
		Schedule: []lease.Period{{Days: []int{1, 2, 3, 4, 5}, From: "08:30", To: "17:30"}},
		Zones: []lease.Zone{{ID: "w1", Name: "1号窗口", Kind: lease.ZoneCounter,
			Polygon:     [][2]float64{{0.1, 0.3}, {0.75, 0.3}, {0.75, 0.95}, {0.1, 0.95}},
			AbsentAfter: lease.Duration(12 * time.Second)}},
	}
}

func TestStaffAbsent(t *testing.T) {
	empties := makeClip(t, "staff-leaves", "-f lavfi -i "+bg640+"[bg];"+person+"[p];[bg][p]overlay=x='200+60*sin(t)':y=150:enable='lt(t,20)'[out0]", "")
	staffed := makeClip(t, "staff-stays", "-f lavfi -i "+bg640+"[bg];"+person+"[p];[bg][p]overlay=x='200+60*sin(t)':y=150[out0]", "")

	t.Run("fires when the counter empties", func(t *testing.T) {
		res := analyzeClip(t, empties, counterSettings(), monday10, keyframeEvery)
		raised := res.of(event.TypeVideoStaffAbsent, "active")
		require.Len(t, raised, 1)
		require.Equal(t, "cam-1/staff_absent/w1", raised[0].AlarmKey)
		require.InDelta(t, 32, raised[0].At.Sub(monday10).Seconds(), 4.1)
	})
	t.Run("does not fire while staffed", func(t *testing.T) {
		res := analyzeClip(t, staffed, counterSettings(), monday10, keyframeEvery)
		require.Empty(t, res.of(event.TypeVideoStaffAbsent, ""))
	})
	t.Run("does not fire after hours", func(t *testing.T) {
		res := analyzeClip(t, empties, counterSettings(), monday22, keyframeEvery)
		require.Empty(t, res.of(event.TypeVideoStaffAbsent, ""))
	})
}

// vtestClip is Debian opencv-doc's walking-people scene (768x576, 10 fps) as H.264 with a
// keyframe every second.
func vtestClip(t *testing.T) string {
	src := "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
	if _, err := os.Stat(src); err != nil {
		gz := src + ".gz"
		if _, err := os.Stat(gz); err != nil {
			t.Skip("vtest.avi not installed (apt-get install opencv-doc)")
		}
		src = filepath.Join(clipDir(t), "vtest.avi")
		if _, err := os.Stat(src); err != nil {
			f, err := os.Open(gz)
			require.NoError(t, err)
			defer f.Close()
			zr, err := gzip.NewReader(f)
			require.NoError(t, err)
			out, err := os.Create(src)
			require.NoError(t, err)
			_, err = io.Copy(out, zr)
			require.NoError(t, err)
			require.NoError(t, out.Close())
		}
	}
	return makeClip(t, "vtest", "-i "+src+" -g 10 -keyint_min 10", "")
}

func TestPeopleOnVtest(t *testing.T) {
	clip := vtestClip(t)
	walkway := [][2]float64{{0, 0.25}, {1, 0.25}, {1, 1}, {0, 1}}
	crowd := func(maxPeople int) lease.CameraSettings {
		return lease.CameraSettings{Zones: []lease.Zone{{ID: "hall", Kind: lease.ZoneQueue, Polygon: walkway,
			MaxPeople: maxPeople, CrowdFor: lease.Duration(5 * time.Second)}}}
	}
	t.Run("counts people", func(t *testing.T) {
		res := analyzeClip(t, clip, crowd(3), monday10, time.Second)
		var counts []int
		for _, m := range res.measures[5:] { // after the background has settled
			counts = append(counts, m.Counts["hall"])
		}
		sort.Ints(counts)
		median := counts[len(counts)/2]
		t.Logf("people per look: median %d, min %d, max %d", median, counts[0], counts[len(counts)-1])
		// The scene has 3-8 people walking at any time.
		require.GreaterOrEqual(t, median, 3)
		require.LessOrEqual(t, median, 9)
		raised := res.of(event.TypeVideoCrowding, "active")
		require.Len(t, raised, 1, "more than 3 people for 5 s")
		require.Equal(t, "cam-1/crowding/hall", raised[0].AlarmKey)
		require.Greater(t, raised[0].Value, 3.0)
	})
	t.Run("no crowding under the limit", func(t *testing.T) {
		res := analyzeClip(t, clip, crowd(12), monday10, time.Second)
		require.Empty(t, res.of(event.TypeVideoCrowding, ""))
		require.Empty(t, res.of(event.TypeVideoTamper, ""), "real scene is not tampering")
	})
	t.Run("occupancy limit", func(t *testing.T) {
		set := lease.CameraSettings{Zones: []lease.Zone{{ID: "hall", Kind: lease.ZoneQueue, Polygon: walkway,
			MaxOccupancy: 0.02, CrowdFor: lease.Duration(5 * time.Second)}}}
		res := analyzeClip(t, clip, set, monday10, time.Second)
		raised := res.of(event.TypeVideoCrowding, "active")
		require.Len(t, raised, 1)
		require.Equal(t, "occupancy", raised[0].Metric)
	})
}
