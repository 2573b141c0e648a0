package lease

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // schedules name IANA zones; the gateway may run without /usr/share/zoneinfo

	"github.com/offsite-gw/offsite/internal/errs"
)

// Zone kinds.
const (
	ZoneCounter = "counter" // a service counter that must be staffed during working hours
	ZoneQueue   = "queue"   // where people wait; crowding limits apply
	ZoneArea    = "area"    // any other region; crowding limits and after-hours motion apply
)

// CameraSettings are one camera's analytics settings. The zero value (after Defaults) watches
// the whole picture for tampering and nothing else.
type CameraSettings struct {
	// Disabled: no worker analyses this camera.
	Disabled bool `json:"disabled,omitempty"`
	// Sensitivity 0..1 (default 0.5): higher fires on smaller motion and scene changes.
	Sensitivity float64 `json:"sensitivity"`
	// Timezone of Schedule, IANA name (default Asia/Shanghai).
	Timezone string `json:"timezone"`
	// Schedule lists the working hours. Empty: always working hours (staff absence is
	// checked all day, after-hours motion never fires).
	Schedule []Period `json:"schedule"`
	Zones    []Zone   `json:"zones"`
	Tamper   Tamper   `json:"tamper"`
	// Motion enables after-hours motion (video.motion) in the area zones, or in the whole
	// picture when there are none. Default true.
	Motion *bool `json:"motion,omitempty"`
}

// Tamper tunes video.tamper.
type Tamper struct {
	Disabled bool `json:"disabled,omitempty"`
	// For is how long a tamper condition must hold before it is raised (default 10s).
	For Duration `json:"for"`
	// FrozenFor: the picture must not change at all for this long to count as frozen
	// (default 30s).
	FrozenFor Duration `json:"frozen_for"`
}

// Zone is a polygon in normalised coordinates: (0,0) top left, (1,1) bottom right.
type Zone struct {
	ID      string       `json:"id"`
	Name    string       `json:"name,omitempty"`
	Kind    string       `json:"kind"`
	Polygon [][2]float64 `json:"polygon"`
	// AbsentAfter (counter zones): no person for this long during working hours raises
	// video.staff_absent (default 5m).
	AbsentAfter Duration `json:"absent_after,omitempty"`
	// MaxPeople (0: off): more people than this in the zone …
	MaxPeople int `json:"max_people,omitempty"`
	// MaxOccupancy 0..1 (0: off): … or more of the zone's area covered by people …
	MaxOccupancy float64 `json:"max_occupancy,omitempty"`
	// CrowdFor: … for this long raises video.crowding (default 60s).
	CrowdFor Duration `json:"crowd_for,omitempty"`
}

// Period is a span of working hours on some weekdays. To before From spans midnight.
type Period struct {
	// Days 1 (Monday) … 7 (Sunday); empty: every day.
	Days []int  `json:"days,omitempty"`
	From string `json:"from"` // "08:30"
	To   string `json:"to"`   // "17:30"
}

// Duration is a time.Duration that reads "90s"/"5m" or a number of seconds in JSON.
type Duration time.Duration

func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: use e.g. \"90s\" or \"5m\"", s)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration must be a string like \"5m\" or a number of seconds")
	}
	if secs < 0 || secs > 7*24*3600 {
		return fmt.Errorf("duration %v s out of range", secs)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

const (
	maxZones        = 16
	maxPolygonVerts = 64
	maxDuration     = 24 * time.Hour
)

var (
	zoneIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	tzRE     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$`)
	hhmmRE   = regexp.MustCompile(`^([01][0-9]|2[0-4]):[0-5][0-9]$`)
)

// DefaultSettings is what a camera without stored settings gets.
func DefaultSettings() CameraSettings {
	s := CameraSettings{}
	s.Defaults()
	return s
}

// Defaults fills zero fields with their defaults.
func (s *CameraSettings) Defaults() {
	if s.Sensitivity == 0 {
		s.Sensitivity = 0.5
	}
	if s.Timezone == "" {
		s.Timezone = "Asia/Shanghai"
	}
	if s.Tamper.For == 0 {
		s.Tamper.For = Duration(10 * time.Second)
	}
	if s.Tamper.FrozenFor == 0 {
		s.Tamper.FrozenFor = Duration(30 * time.Second)
	}
	if s.Motion == nil {
		t := true
		s.Motion = &t
	}
	for i := range s.Zones {
		z := &s.Zones[i]
		if z.Kind == ZoneCounter && z.AbsentAfter == 0 {
			z.AbsentAfter = Duration(5 * time.Minute)
		}
		if (z.MaxPeople > 0 || z.MaxOccupancy > 0) && z.CrowdFor == 0 {
			z.CrowdFor = Duration(time.Minute)
		}
	}
}

// ParseSettings decodes and validates settings from outside (the API, a worker's cache).
// Unknown fields are refused so a typo is not silently ignored. Errors are
// errs.KindInvalid/invalid_settings.
func ParseSettings(b []byte) (CameraSettings, error) {
	var s CameraSettings
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return CameraSettings{}, errs.Wrap(errs.KindInvalid, "invalid_settings", err, "analytics settings are not valid JSON")
	}
	if dec.More() {
		return CameraSettings{}, errs.E(errs.KindInvalid, "invalid_settings", "analytics settings have data after the JSON object")
	}
	s.Defaults()
	if err := s.Validate(); err != nil {
		return CameraSettings{}, err
	}
	return s, nil
}

// Validate checks the settings (after Defaults).
func (s *CameraSettings) Validate() error {
	bad := func(format string, args ...any) error {
		return errs.E(errs.KindInvalid, "invalid_settings", "analytics settings: "+format, args...)
	}
	if !(s.Sensitivity > 0 && s.Sensitivity <= 1) {
		return bad("sensitivity %v must be in (0, 1]", s.Sensitivity)
	}
	if _, err := s.Location(); err != nil {
		return bad("timezone %q: %v", s.Timezone, err)
	}
	for i, p := range s.Schedule {
		if len(s.Schedule) > 32 {
			return bad("more than 32 schedule periods")
		}
		for _, d := range p.Days {
			if d < 1 || d > 7 {
				return bad("schedule[%d]: day %d must be 1 (Monday) … 7 (Sunday)", i, d)
			}
		}
		if _, err := minuteOfDay(p.From); err != nil {
			return bad("schedule[%d].from: %v", i, err)
		}
		if _, err := minuteOfDay(p.To); err != nil {
			return bad("schedule[%d].to: %v", i, err)
		}
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{{"tamper.for", s.Tamper.For}, {"tamper.frozen_for", s.Tamper.FrozenFor}} {
		if d.v < 0 || d.v.D() > maxDuration {
			return bad("%s %s must be between 0 and 24h", d.name, d.v.D())
		}
	}
	if len(s.Zones) > maxZones {
		return bad("%d zones, at most %d", len(s.Zones), maxZones)
	}
	seen := map[string]bool{}
	for i, z := range s.Zones {
		if !zoneIDRE.MatchString(z.ID) {
			return bad("zones[%d].id %q must be 1-32 letters, digits, _ or -", i, z.ID)
		}
		if seen[z.ID] {
			return bad("zone id %q used twice", z.ID)
		}
		seen[z.ID] = true
		if len(z.Name) > 128 {
			return bad("zone %s: name longer than 128 bytes", z.ID)
		}
		switch z.Kind {
		case ZoneCounter, ZoneQueue, ZoneArea:
		default:
			return bad("zone %s: kind %q must be counter, queue or area", z.ID, z.Kind)
		}
		if len(z.Polygon) < 3 || len(z.Polygon) > maxPolygonVerts {
			return bad("zone %s: polygon needs 3 to %d points", z.ID, maxPolygonVerts)
		}
		for _, p := range z.Polygon {
			for _, c := range p {
				if !(c >= 0 && c <= 1) {
					return bad("zone %s: coordinate %v outside 0…1 (coordinates are fractions of width and height)", z.ID, c)
				}
			}
		}
		if polygonArea(z.Polygon) < 1e-4 {
			return bad("zone %s: polygon has (almost) no area", z.ID)
		}
		if z.MaxPeople < 0 || z.MaxPeople > 1000 {
			return bad("zone %s: max_people %d out of range", z.ID, z.MaxPeople)
		}
		if !(z.MaxOccupancy >= 0 && z.MaxOccupancy <= 1) {
			return bad("zone %s: max_occupancy %v must be in 0…1", z.ID, z.MaxOccupancy)
		}
		for _, d := range []Duration{z.AbsentAfter, z.CrowdFor} {
			if d < 0 || d.D() > maxDuration {
				return bad("zone %s: durations must be between 0 and 24h", z.ID)
			}
		}
	}
	return nil
}

// Location is the schedule's time zone.
func (s *CameraSettings) Location() (*time.Location, error) {
	if s.Timezone == "UTC" {
		return time.UTC, nil
	}
	if !tzRE.MatchString(s.Timezone) || len(s.Timezone) > 64 {
		return nil, fmt.Errorf("not an IANA time zone name")
	}
	return time.LoadLocation(s.Timezone)
}

// Working reports whether t is inside the working hours.
func (s *CameraSettings) Working(t time.Time) bool {
	if len(s.Schedule) == 0 {
		return true
	}
	if loc, err := s.Location(); err == nil {
		t = t.In(loc)
	}
	day := int(t.Weekday())
	if day == 0 {
		day = 7
	}
	prevDay := day - 1
	if prevDay == 0 {
		prevDay = 7
	}
	m := t.Hour()*60 + t.Minute()
	for _, p := range s.Schedule {
		from, _ := minuteOfDay(p.From)
		to, _ := minuteOfDay(p.To)
		switch {
		case from <= to:
			if onDay(p.Days, day) && m >= from && m < to {
				return true
			}
		default: // spans midnight: from..24:00 today, 00:00..to belongs to yesterday's period
			if onDay(p.Days, day) && m >= from || onDay(p.Days, prevDay) && m < to {
				return true
			}
		}
	}
	return false
}

// MotionEnabled reports whether after-hours motion is watched.
func (s *CameraSettings) MotionEnabled() bool { return s.Motion == nil || *s.Motion }

func onDay(days []int, d int) bool {
	if len(days) == 0 {
		return true
	}
	for _, x := range days {
		if x == d {
			return true
		}
	}
	return false
}

func minuteOfDay(s string) (int, error) {
	if !hhmmRE.MatchString(s) {
		return 0, fmt.Errorf("%q must be HH:MM", s)
	}
	h, _ := strconv.Atoi(s[:2])
	m, _ := strconv.Atoi(s[3:])
	if h == 24 && m != 0 {
		return 0, fmt.Errorf("%q: past 24:00", s)
	}
	return h*60 + m, nil
}

func polygonArea(p [][2]float64) float64 {
	a := 0.0
	for i := range p {
		j := (i + 1) % len(p)
		a += p[i][0]*p[j][1] - p[j][0]*p[i][1]
	}
	if a < 0 {
		a = -a
	}
	return a / 2
}

// String is a short description for logs.
func (z Zone) String() string {
	return fmt.Sprintf("%s(%s)", z.ID, strings.TrimSpace(z.Kind))
}
