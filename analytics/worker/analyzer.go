package worker

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"time"

	"gocv.io/x/gocv"

	"github.com/offsite-gw/offsite/analytics/lease"
	"github.com/offsite-gw/offsite/events/event"
)

// Tamper reasons, most telling first.
const (
	ReasonCovered   = "covered"   // black or uniform picture: lens covered, painted, light off
	ReasonFrozen    = "frozen"    // the picture has not changed at all
	ReasonDefocused = "defocused" // much less detail than the reference
	ReasonMoved     = "moved"     // the scene is shifted against the reference
)

// SmallWidth is the width of the grey picture the detectors work on.
const SmallWidth = 320

// Signal is a change of an alarm: raised (State "active") or ended ("cleared").
type Signal struct {
	Type     string
	State    string // "active" or "cleared"
	AlarmKey string // camera/detector[/zone]
	Zone     string
	Reason   string
	Metric   string
	Value    float64
	Limit    float64
	Message  string
	At       time.Time
	// Snapshot is the JPEG of the look that raised the alarm (nil on clears).
	Snapshot []byte
}

// Timings accumulate the time each stage took (see Analyzer.Clock).
type Timings struct {
	Looks                           int
	Prepare, Tamper, Motion, People time.Duration
	Snapshot                        time.Duration
}

// Add sums two Timings.
func (t *Timings) Add(o Timings) {
	t.Looks += o.Looks
	t.Prepare += o.Prepare
	t.Tamper += o.Tamper
	t.Motion += o.Motion
	t.People += o.People
	t.Snapshot += o.Snapshot
}

// Analyzer runs every detector of one camera on its looks (one decoded keyframe each). It is
// not safe for concurrent use; a camera pipeline owns one. Close it.
type Analyzer struct {
	CameraID string
	Settings lease.CameraSettings
	// Clock measures stage durations (default: monotonic wall time). The benchmark passes
	// the thread's CPU time so the figures do not depend on other load.
	Clock func() time.Duration
	// Debug, when set, receives per-look measurements (tests).
	Debug func(Measure)

	Timings Timings

	init      bool
	seed      []string
	w, h      int
	small     gocv.Mat
	prev      gocv.Mat
	hasPrev   bool
	diff      gocv.Mat
	moveBin   gocv.Mat
	tmp       gocv.Mat
	lap       gocv.Mat
	mean, std gocv.Mat
	tiny      gocv.Mat
	tinyF     gocv.Mat
	noWin     gocv.Mat
	ref       gocv.Mat // tinyF of the reference scene
	hasRef    bool
	refAt     time.Time
	refSharp  float64
	sharpN    int
	looks     int
	sameSince time.Time
	tamper    debounce
	reason    string

	motionMask gocv.Mat
	motionPix  int
	motion     debounce

	mog    gocv.BackgroundSubtractorMOG2
	hasMOG bool
	fg     gocv.Mat
	labels gocv.Mat
	stats  gocv.Mat
	cents  gocv.Mat
	kernel gocv.Mat
	zones  []*zoneState
}

type zoneState struct {
	z        lease.Zone
	mask     gocv.Mat
	pix      int
	lastSeen time.Time
	absent   debounce
	crowd    debounce
	count    int
	occ      float64
}

// Measure is what one look measured (for tests and tuning).
type Measure struct {
	At                    time.Time
	Mean, Std, Sharp, Ref float64
	Shift, Response       float64
	Changed               float64 // fraction of pixels that changed since the last look
	Motion                float64 // fraction of the motion mask that moved
	Reason                string
	Counts                map[string]int
	Activity              map[string]float64 // counter zones: fraction that moved
	Occupancy             map[string]float64
}

func (a *Analyzer) clock() time.Duration {
	if a.Clock != nil {
		return a.Clock()
	}
	return time.Duration(time.Now().UnixNano())
}

func (a *Analyzer) sens() float64 {
	if a.Settings.Sensitivity <= 0 {
		return 0.5
	}
	return a.Settings.Sensitivity
}

func (a *Analyzer) setup(pw, ph int) {
	a.w = SmallWidth
	a.h = int(math.Round(float64(SmallWidth) * float64(ph) / float64(pw)))
	if a.h%2 == 1 {
		a.h++
	}
	for _, m := range []*gocv.Mat{&a.small, &a.prev, &a.diff, &a.moveBin, &a.tmp, &a.lap, &a.mean, &a.std, &a.tiny, &a.tinyF, &a.noWin, &a.ref, &a.fg, &a.labels, &a.stats, &a.cents} {
		*m = gocv.NewMat()
	}
	a.kernel = gocv.GetStructuringElement(gocv.MorphRect, image.Pt(3, 3))
	// Motion watches the area zones, or the whole picture when there are none.
	a.motionMask = gocv.Zeros(a.h, a.w, gocv.MatTypeCV8U)
	areas := 0
	for _, z := range a.Settings.Zones {
		if z.Kind == lease.ZoneArea {
			a.fillPolygon(&a.motionMask, z.Polygon)
			areas++
		}
	}
	if areas == 0 {
		a.motionMask.SetTo(gocv.NewScalar(255, 0, 0, 0))
	}
	a.motionPix = max(1, gocv.CountNonZero(a.motionMask))
	needPeople := false
	for _, z := range a.Settings.Zones {
		zs := &zoneState{z: z, mask: gocv.Zeros(a.h, a.w, gocv.MatTypeCV8U)}
		a.fillPolygon(&zs.mask, z.Polygon)
		zs.pix = max(1, gocv.CountNonZero(zs.mask))
		zs.absent = debounce{}
		zs.crowd = debounce{on: z.CrowdFor.D(), off: 10 * time.Second}
		a.zones = append(a.zones, zs)
		if z.Kind == lease.ZoneCounter || z.MaxPeople > 0 || z.MaxOccupancy > 0 {
			needPeople = true
		}
	}
	if needPeople {
		// ~5 min of history at a look per second; a higher sensitivity takes smaller
		// differences for people.
		a.mog = gocv.NewBackgroundSubtractorMOG2WithParams(300, 36-24*a.sens(), false)
		a.hasMOG = true
	}
	a.tamper = debounce{on: a.Settings.Tamper.For.D(), off: 10 * time.Second}
	a.motion = debounce{on: time.Second, off: 30 * time.Second}
	a.init = true
}

func (a *Analyzer) fillPolygon(m *gocv.Mat, poly [][2]float64) {
	pts := make([]image.Point, len(poly))
	for i, p := range poly {
		pts[i] = image.Pt(int(math.Round(p[0]*float64(a.w))), int(math.Round(p[1]*float64(a.h))))
	}
	pv := gocv.NewPointsVectorFromPoints([][]image.Point{pts})
	defer pv.Close()
	gocv.FillPoly(m, pv, color.RGBA{255, 255, 255, 0})
}

// Close frees the OpenCV buffers.
func (a *Analyzer) Close() {
	if !a.init {
		return
	}
	for _, m := range []*gocv.Mat{&a.small, &a.prev, &a.diff, &a.moveBin, &a.tmp, &a.lap, &a.mean, &a.std, &a.tiny, &a.tinyF, &a.noWin, &a.ref, &a.fg, &a.labels, &a.stats, &a.cents, &a.kernel, &a.motionMask} {
		m.Close()
	}
	for _, z := range a.zones {
		z.mask.Close()
	}
	if a.hasMOG {
		a.mog.Close()
	}
	a.init = false
}

// Analyze runs the detectors on one look and returns the alarms that changed.
func (a *Analyzer) Analyze(at time.Time, pic Picture) ([]Signal, error) {
	if pic.Width <= 0 || pic.Height <= 0 || len(pic.Y) < pic.Width*pic.Height {
		return nil, fmt.Errorf("analyze: bad picture %dx%d", pic.Width, pic.Height)
	}
	t0 := a.clock()
	full, err := gocv.NewMatFromBytes(pic.Height, pic.Width, gocv.MatTypeCV8U, pic.Y[:pic.Width*pic.Height])
	if err != nil {
		return nil, err
	}
	defer full.Close()
	if !a.init {
		a.setup(pic.Width, pic.Height)
		a.applySeed()
	}
	gocv.Resize(full, &a.small, image.Pt(a.w, a.h), 0, 0, gocv.InterpolationArea)
	a.looks++
	m := Measure{At: at}
	t1 := a.clock()
	a.Timings.Prepare += t1 - t0

	var out []Signal
	snap := func(s Signal) Signal {
		ts := a.clock()
		s.Snapshot = snapshot(full)
		a.Timings.Snapshot += a.clock() - ts
		return s
	}

	// --- tamper ---
	reason := a.tamperReason(at, &m)
	m.Reason = reason
	if !a.Settings.Tamper.Disabled {
		if reason != "" {
			a.reason = reason
		}
		switch a.tamper.update(at, reason != "") {
		case raised:
			out = append(out, snap(Signal{Type: event.TypeVideoTamper, State: "active", AlarmKey: a.CameraID + "/tamper", Reason: a.reason,
				Metric: "tamper." + a.reason, Message: tamperMessage(a.reason), At: at}))
		case cleared:
			out = append(out, Signal{Type: event.TypeVideoTamper, State: "cleared", AlarmKey: a.CameraID + "/tamper", Reason: a.reason,
				Metric: "tamper." + a.reason, Message: "画面恢复正常（" + tamperLabel(a.reason) + "已解除）", At: at})
		}
	}
	t2 := a.clock()
	a.Timings.Tamper += t2 - t1

	// --- after-hours motion ---
	working := a.Settings.Working(at)
	blind := reason == ReasonCovered || reason == ReasonFrozen
	// What moved since the last look (thresholded, specks removed): after-hours motion and
	// activity at counters both read it.
	moved := false
	if a.hasPrev && !blind {
		gocv.AbsDiff(a.small, a.prev, &a.diff)
		gocv.Threshold(a.diff, &a.moveBin, float32(40-30*a.sens()), 255, gocv.ThresholdBinary)
		gocv.MorphologyEx(a.moveBin, &a.moveBin, gocv.MorphOpen, a.kernel)
		moved = true
	}
	if a.Settings.MotionEnabled() {
		moving := false
		if moved {
			gocv.BitwiseAnd(a.moveBin, a.motionMask, &a.tmp)
			m.Motion = float64(gocv.CountNonZero(a.tmp)) / float64(a.motionPix)
			moving = m.Motion > 0.004+0.012*(1-a.sens())
		}
		switch a.motion.update(at, moving && !working) {
		case raised:
			out = append(out, snap(Signal{Type: event.TypeVideoMotion, State: "active", AlarmKey: a.CameraID + "/motion", Metric: "motion",
				Value: round3(m.Motion), Message: "非工作时间画面内有移动", At: at}))
		case cleared:
			out = append(out, Signal{Type: event.TypeVideoMotion, State: "cleared", AlarmKey: a.CameraID + "/motion", Metric: "motion",
				Message: "非工作时间移动已停止", At: at})
		}
	}
	t3 := a.clock()
	a.Timings.Motion += t3 - t2

	// --- people: staff at counters, crowding ---
	if a.hasMOG {
		out = append(out, a.people(at, working, blind, moved, &m, snap)...)
	}
	a.Timings.People += a.clock() - t3

	a.small.CopyTo(&a.prev)
	a.hasPrev = true
	a.Timings.Looks++
	if a.Debug != nil {
		a.Debug(m)
	}
	return out, nil
}

func (a *Analyzer) tamperReason(at time.Time, m *Measure) string {
	s := a.sens()
	gocv.MeanStdDev(a.small, &a.mean, &a.std)
	m.Mean, m.Std = a.mean.GetDoubleAt(0, 0), a.std.GetDoubleAt(0, 0)
	if m.Mean < 12+16*s || m.Std < 3+8*s {
		return ReasonCovered
	}
	// Frozen: no pixel changed by more than noise since the last look.
	if a.hasPrev {
		gocv.AbsDiff(a.small, a.prev, &a.diff)
		gocv.Threshold(a.diff, &a.tmp, 2, 255, gocv.ThresholdBinary)
		m.Changed = float64(gocv.CountNonZero(a.tmp)) / float64(a.w*a.h)
		if m.Changed < 0.0005 {
			if a.sameSince.IsZero() {
				a.sameSince = at
			}
		} else {
			a.sameSince = time.Time{}
		}
	}
	frozen := !a.sameSince.IsZero() && at.Sub(a.sameSince) >= a.Settings.Tamper.FrozenFor.D()

	// Sharpness: variance of the Laplacian against what this camera usually shows.
	gocv.Laplacian(a.small, &a.lap, gocv.MatTypeCV16S, 3, 1, 0, gocv.BorderDefault)
	gocv.MeanStdDev(a.lap, &a.mean, &a.std)
	sd := a.std.GetDoubleAt(0, 0)
	m.Sharp = sd * sd
	m.Ref = a.refSharp
	defocused := a.sharpN >= 3 && a.refSharp > 30 && m.Sharp < a.refSharp*(0.4+0.3*(s-0.5))

	// Moved: phase correlation of a tiny picture against the reference scene.
	gocv.Resize(a.small, &a.tiny, image.Pt(a.w/2, a.h/2), 0, 0, gocv.InterpolationArea)
	a.tiny.ConvertTo(&a.tinyF, gocv.MatTypeCV32F)
	moved := false
	if a.hasRef {
		shift, resp := gocv.PhaseCorrelate(a.ref, a.tinyF, a.noWin)
		m.Shift, m.Response = math.Hypot(float64(shift.X), float64(shift.Y)), resp
		moved = m.Shift > float64(a.w/2)*(0.06-0.04*s) && resp > 0.05
	}
	reason := ""
	switch {
	case frozen:
		reason = ReasonFrozen
	case defocused:
		reason = ReasonDefocused
	case moved:
		reason = ReasonMoved
	}
	if reason == "" {
		// Learn the camera's normal sharpness and scene from good looks only, so a slow
		// drift (dusk, seasons) follows and a sudden change does not.
		if a.sharpN < 3 {
			a.refSharp = (a.refSharp*float64(a.sharpN) + m.Sharp) / float64(a.sharpN+1)
			a.sharpN++
		} else if m.Sharp > a.refSharp*0.7 {
			a.refSharp = 0.95*a.refSharp + 0.05*m.Sharp
		}
		if !a.hasRef && a.looks >= 2 || a.hasRef && at.Sub(a.refAt) > 10*time.Minute && m.Shift < 1 {
			a.tinyF.CopyTo(&a.ref)
			a.hasRef, a.refAt = true, at
		}
	}
	return reason
}

func (a *Analyzer) people(at time.Time, working, blind, moved bool, m *Measure, snap func(Signal) Signal) []Signal {
	var out []Signal
	a.mog.Apply(a.small, &a.fg)
	gocv.Threshold(a.fg, &a.fg, 200, 255, gocv.ThresholdBinary)
	gocv.MorphologyEx(a.fg, &a.fg, gocv.MorphOpen, a.kernel)
	gocv.Dilate(a.fg, &a.fg, a.kernel)
	n := gocv.ConnectedComponentsWithStats(a.fg, &a.labels, &a.stats, &a.cents)
	// A person at the far end of a hall is still a few hundred pixels at 320 wide; smaller
	// blobs are noise.
	minArea := int32(float64(a.w*a.h) * 0.0015)
	type blob struct{ foot image.Point }
	var blobs []blob
	for i := 1; i < n; i++ {
		if a.stats.GetIntAt(i, int(gocv.CC_STAT_AREA)) < minArea {
			continue
		}
		x, y := a.stats.GetIntAt(i, int(gocv.CC_STAT_LEFT)), a.stats.GetIntAt(i, int(gocv.CC_STAT_TOP))
		w, h := a.stats.GetIntAt(i, int(gocv.CC_STAT_WIDTH)), a.stats.GetIntAt(i, int(gocv.CC_STAT_HEIGHT))
		blobs = append(blobs, blob{foot: image.Pt(int(x+w/2), int(min(y+h-1, int32(a.h-1))))})
	}
	m.Counts, m.Occupancy, m.Activity = map[string]int{}, map[string]float64{}, map[string]float64{}
	for _, z := range a.zones {
		if blind {
			continue
		}
		z.count = 0
		for _, b := range blobs {
			if z.mask.GetUCharAt(b.foot.Y, b.foot.X) != 0 {
				z.count++
			}
		}
		gocv.BitwiseAnd(a.fg, z.mask, &a.tmp)
		z.occ = float64(gocv.CountNonZero(a.tmp)) / float64(z.pix)
		m.Counts[z.z.ID], m.Occupancy[z.z.ID] = z.count, round3(z.occ)
		key := a.CameraID + "/" + "%s/" + z.z.ID
		if z.z.Kind == lease.ZoneCounter {
			// Staff at a counter are present if someone stands out from the background or
			// anything moved there since the last look: the background model learns a
			// clerk who sits still, but a clerk never sits still for minutes.
			activity := 0.0
			if moved {
				gocv.BitwiseAnd(a.moveBin, z.mask, &a.tmp)
				activity = float64(gocv.CountNonZero(a.tmp)) / float64(z.pix)
			}
			m.Activity[z.z.ID] = round3(activity)
			if z.lastSeen.IsZero() || z.count > 0 || z.occ >= 0.03 || activity >= 0.01 || !working {
				z.lastSeen = at
			}
			absent := working && at.Sub(z.lastSeen) >= z.z.AbsentAfter.D()
			switch z.absent.update(at, absent) {
			case raised:
				out = append(out, snap(Signal{Type: event.TypeVideoStaffAbsent, State: "active", AlarmKey: fmt.Sprintf(key, "staff_absent"), Zone: z.z.ID,
					Metric: "absent_seconds", Value: math.Round(at.Sub(z.lastSeen).Seconds()), Limit: z.z.AbsentAfter.D().Seconds(),
					Message: fmt.Sprintf("工作时间窗口%s无人值守已超过%s", zoneLabel(z.z), human(z.z.AbsentAfter.D())), At: at}))
			case cleared:
				out = append(out, Signal{Type: event.TypeVideoStaffAbsent, State: "cleared", AlarmKey: fmt.Sprintf(key, "staff_absent"), Zone: z.z.ID,
					Metric: "absent_seconds", Message: fmt.Sprintf("窗口%s已有人值守", zoneLabel(z.z)), At: at})
			}
		}
		if z.z.MaxPeople > 0 || z.z.MaxOccupancy > 0 {
			over := z.z.MaxPeople > 0 && z.count > z.z.MaxPeople || z.z.MaxOccupancy > 0 && z.occ > z.z.MaxOccupancy
			metric, value, limit := "people", float64(z.count), float64(z.z.MaxPeople)
			if z.z.MaxPeople == 0 || (z.z.MaxOccupancy > 0 && z.occ > z.z.MaxOccupancy && z.count <= z.z.MaxPeople) {
				metric, value, limit = "occupancy", round3(z.occ), z.z.MaxOccupancy
			}
			switch z.crowd.update(at, over) {
			case raised:
				out = append(out, snap(Signal{Type: event.TypeVideoCrowding, State: "active", AlarmKey: fmt.Sprintf(key, "crowding"), Zone: z.z.ID,
					Metric: metric, Value: value, Limit: limit,
					Message: fmt.Sprintf("区域%s人员聚集：%s超过限值%s已持续%s", zoneLabel(z.z), fmtValue(metric, value), fmtValue(metric, limit), human(z.z.CrowdFor.D())), At: at}))
			case cleared:
				out = append(out, Signal{Type: event.TypeVideoCrowding, State: "cleared", AlarmKey: fmt.Sprintf(key, "crowding"), Zone: z.z.ID,
					Metric: metric, Value: value, Limit: limit, Message: fmt.Sprintf("区域%s人员聚集已消散", zoneLabel(z.z)), At: at})
			}
		}
	}
	return out
}

// Seed marks alarms as already active (raised by a worker that had the camera before), so
// this analyzer clears them when their condition is not there. Call before the first look.
func (a *Analyzer) Seed(keys []string) {
	a.seed = keys
}

func (a *Analyzer) applySeed() {
	for _, k := range a.seed {
		switch {
		case k == a.CameraID+"/tamper":
			a.tamper.active = true
		case k == a.CameraID+"/motion":
			a.motion.active = true
		default:
			for _, z := range a.zones {
				if k == a.CameraID+"/staff_absent/"+z.z.ID {
					z.absent.active = true
				}
				if k == a.CameraID+"/crowding/"+z.z.ID {
					z.crowd.active = true
				}
			}
		}
	}
	a.seed = nil
}

func snapshot(m gocv.Mat) []byte {
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, m, []int{gocv.IMWriteJpegQuality, 80})
	if err != nil {
		return nil
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...)
}

type edge int

const (
	none edge = iota
	raised
	cleared
)

// debounce turns a noisy condition into alarm edges: raised after the condition held for on,
// cleared after it was false for off.
type debounce struct {
	on, off    time.Duration
	trueSince  time.Time
	falseSince time.Time
	active     bool
}

func (d *debounce) update(at time.Time, cond bool) edge {
	if cond {
		d.falseSince = time.Time{}
		if d.trueSince.IsZero() {
			d.trueSince = at
		}
		if !d.active && at.Sub(d.trueSince) >= d.on {
			d.active = true
			return raised
		}
		return none
	}
	d.trueSince = time.Time{}
	if d.active {
		if d.falseSince.IsZero() {
			d.falseSince = at
		}
		if at.Sub(d.falseSince) >= d.off {
			d.active = false
			d.falseSince = time.Time{}
			return cleared
		}
	}
	return none
}

func tamperLabel(r string) string {
	switch r {
	case ReasonCovered:
		return "遮挡或黑屏"
	case ReasonFrozen:
		return "画面冻结"
	case ReasonDefocused:
		return "画面模糊"
	case ReasonMoved:
		return "摄像机移位"
	}
	return "异常"
}

func tamperMessage(r string) string { return "视频遮挡/破坏：" + tamperLabel(r) }

func zoneLabel(z lease.Zone) string {
	if z.Name != "" {
		return "「" + z.Name + "」"
	}
	return "「" + z.ID + "」"
}

func human(d time.Duration) string {
	switch {
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%d分钟", int(d/time.Minute))
	default:
		return fmt.Sprintf("%d秒", int(d.Round(time.Second)/time.Second))
	}
}

func fmtValue(metric string, v float64) string {
	if metric == "occupancy" {
		return fmt.Sprintf("占用率%.0f%%", v*100)
	}
	return fmt.Sprintf("%d人", int(v))
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
