package rules

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Window is a daily local-time window. End may be before Start, in which case the window
// wraps midnight (22:00-06:00); the part after midnight belongs to the day it started on.
// End 24:00 means the end of the day.
type Window struct {
	Start, End int // minutes after midnight, 0 ≤ Start < 1440, 0 < End ≤ 1440, Start ≠ End
}

// ParseWindow reads "HH:MM-HH:MM" (e.g. "08:30-12:00", "22:00-06:00", "18:00-24:00").
func ParseWindow(s string) (Window, error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return Window{}, fmt.Errorf("window %q: write HH:MM-HH:MM, e.g. 08:30-12:00", s)
	}
	start, err := parseClock(a, false)
	if err != nil {
		return Window{}, fmt.Errorf("window %q: start: %w", s, err)
	}
	end, err := parseClock(b, true)
	if err != nil {
		return Window{}, fmt.Errorf("window %q: end: %w", s, err)
	}
	if start == end {
		return Window{}, fmt.Errorf("window %q: start and end are the same; leave the window out for all day", s)
	}
	if end == 0 {
		end = 1440 // "22:00-00:00" ends at midnight: the same as 24:00
	}
	if end == 1440 && start == 0 {
		return Window{}, fmt.Errorf("window %q covers the whole day; leave it out instead", s)
	}
	return Window{Start: start, End: end}, nil
}

// parseClock reads HH:MM with two-digit fields; 24:00 only where allowed.
func parseClock(s string, allow24 bool) (int, error) {
	s = strings.TrimSpace(s)
	if len(s) != 5 || s[2] != ':' || !isDigit(s[0]) || !isDigit(s[1]) || !isDigit(s[3]) || !isDigit(s[4]) {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	if h == 24 && m == 0 && allow24 {
		return 1440, nil
	}
	if h > 23 || m > 59 {
		return 0, fmt.Errorf("%q is not a time of day", s)
	}
	return h*60 + m, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// String writes the window as ParseWindow reads it.
func (w Window) String() string {
	return fmt.Sprintf("%02d:%02d-%02d:%02d", w.Start/60, w.Start%60, w.End/60, w.End%60)
}

// wraps reports whether the window crosses midnight.
func (w Window) wraps() bool { return w.End <= w.Start }

// find reports whether local time t is inside the window and, if so, when this occurrence
// started and on which day it started (for the after-midnight part of a wrapping window, the
// day before).
func (w Window) find(t time.Time) (start time.Time, day time.Time, ok bool) {
	mins := t.Hour()*60 + t.Minute()
	midnight := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, t.Location())
	switch {
	case !w.wraps():
		if mins >= w.Start && mins < w.End {
			return midnight.Add(time.Duration(w.Start) * time.Minute), midnight, true
		}
	case mins >= w.Start:
		return midnight.Add(time.Duration(w.Start) * time.Minute), midnight, true
	case mins < w.End:
		prev := midnight.AddDate(0, 0, -1)
		return prev.Add(time.Duration(w.Start) * time.Minute), prev, true
	}
	return time.Time{}, time.Time{}, false
}

// Schedule is a named set of local-time windows on some days, e.g. working hours:
//
//	working-hours: {windows: ["08:30-12:00", "13:30-17:30"], calendar: working}
//
// A rule with a schedule is evaluated only inside it.
type Schedule struct {
	// Windows are daily windows HH:MM-HH:MM; empty means the whole day.
	Windows []string `yaml:"windows,omitempty" json:"windows,omitempty"`
	// Days are the weekdays (mon tue wed thu fri sat sun) the schedule applies on; empty means
	// every day. Not together with Calendar.
	Days []string `yaml:"days,omitempty" json:"days,omitempty"`
	// Calendar "working" applies on official working days: Monday to Friday except holidays,
	// plus the make-up working days (调休) listed in rules.holidays.workdays. "rest" is the
	// opposite (weekends and holidays, not make-up days). Empty: Days decide.
	Calendar string `yaml:"calendar,omitempty" json:"calendar,omitempty"`
}

// Holidays is the official calendar: dates that are days off although they are weekdays,
// and make-up working days (调休) that are working days although they are weekends. Dates are
// YYYY-MM-DD or ranges YYYY-MM-DD..YYYY-MM-DD.
type Holidays struct {
	Off      []string `yaml:"off,omitempty" json:"off,omitempty"`
	Workdays []string `yaml:"workdays,omitempty" json:"workdays,omitempty"`
}

// calendar is Holidays parsed.
type calendar struct {
	off, work map[date]bool
}

type date struct {
	y int
	m time.Month
	d int
}

func dateOf(t time.Time) date { return date{t.Year(), t.Month(), t.Day()} }

// working reports whether the day of t is an official working day.
func (c *calendar) working(t time.Time) bool {
	d := dateOf(t)
	if c != nil && c.work[d] {
		return true
	}
	if c != nil && c.off[d] {
		return false
	}
	wd := t.Weekday()
	return wd != time.Saturday && wd != time.Sunday
}

const maxRangeDays = 366

// ParseDates reads a list of YYYY-MM-DD dates and YYYY-MM-DD..YYYY-MM-DD ranges (at most a
// year long each).
func ParseDates(list []string) (map[date]bool, error) {
	out := map[date]bool{}
	for _, s := range list {
		a, b, isRange := strings.Cut(strings.TrimSpace(s), "..")
		from, err := time.Parse(time.DateOnly, strings.TrimSpace(a))
		if err != nil {
			return nil, fmt.Errorf("date %q: write YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD", s)
		}
		to := from
		if isRange {
			if to, err = time.Parse(time.DateOnly, strings.TrimSpace(b)); err != nil {
				return nil, fmt.Errorf("date range %q: write YYYY-MM-DD..YYYY-MM-DD", s)
			}
			if to.Before(from) {
				return nil, fmt.Errorf("date range %q ends before it starts", s)
			}
			if to.Sub(from) > maxRangeDays*24*time.Hour {
				return nil, fmt.Errorf("date range %q is longer than a year", s)
			}
		}
		for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
			out[dateOf(d)] = true
		}
	}
	return out, nil
}

func (h Holidays) parse() (*calendar, error) {
	off, err := ParseDates(h.Off)
	if err != nil {
		return nil, fmt.Errorf("rules.holidays.off: %w", err)
	}
	work, err := ParseDates(h.Workdays)
	if err != nil {
		return nil, fmt.Errorf("rules.holidays.workdays: %w", err)
	}
	for d := range work {
		if off[d] {
			return nil, fmt.Errorf("rules.holidays: %04d-%02d-%02d is both a day off and a make-up working day", d.y, d.m, d.d)
		}
	}
	return &calendar{off: off, work: work}, nil
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// schedule is a Schedule parsed against the calendar.
type schedule struct {
	name     string
	windows  []Window
	days     [7]bool
	anyDay   bool
	calendar string
	cal      *calendar
}

func (s Schedule) parse(name string, cal *calendar) (*schedule, error) {
	out := &schedule{name: name, calendar: s.Calendar, cal: cal, anyDay: len(s.Days) == 0}
	for _, w := range s.Windows {
		pw, err := ParseWindow(w)
		if err != nil {
			return nil, err
		}
		out.windows = append(out.windows, pw)
	}
	for _, d := range s.Days {
		wd, ok := weekdays[strings.ToLower(strings.TrimSpace(d))]
		if !ok {
			return nil, fmt.Errorf("day %q: use mon tue wed thu fri sat sun", d)
		}
		out.days[wd] = true
	}
	switch s.Calendar {
	case "", "working", "rest":
	default:
		return nil, fmt.Errorf("calendar %q: use working, rest or leave it out", s.Calendar)
	}
	if s.Calendar != "" && len(s.Days) > 0 {
		return nil, fmt.Errorf("days and calendar %q together: the calendar already decides the days", s.Calendar)
	}
	return out, nil
}

// dayIncluded reports whether the schedule applies on the day of t.
func (s *schedule) dayIncluded(t time.Time) bool {
	switch s.calendar {
	case "working":
		return s.cal.working(t)
	case "rest":
		return !s.cal.working(t)
	}
	return s.anyDay || s.days[t.Weekday()]
}

// open reports whether local time t is inside the schedule, and since when.
func (s *schedule) open(t time.Time) (time.Time, bool) {
	if len(s.windows) == 0 {
		if !s.dayIncluded(t) {
			return time.Time{}, false
		}
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, t.Location()), true
	}
	for _, w := range s.windows {
		if start, day, ok := w.find(t); ok && s.dayIncluded(day) {
			return start, true
		}
	}
	return time.Time{}, false
}

// gate decides when a rule is evaluated: its profile window (during) and its schedule.
type gate struct {
	during   *Window
	schedule *schedule
	text     string // for messages, e.g. "06:00-22:00" or "working-hours"
}

// open reports whether the rule is evaluated at t (already in the engine's location), and
// since when it has been.
func (g *gate) open(t time.Time) (time.Time, bool) {
	if g == nil {
		return time.Time{}, true
	}
	var since time.Time
	if g.during != nil {
		start, _, ok := g.during.find(t)
		if !ok {
			return time.Time{}, false
		}
		since = start
	}
	if g.schedule != nil {
		start, ok := g.schedule.open(t)
		if !ok {
			return time.Time{}, false
		}
		if start.After(since) {
			since = start
		}
	}
	return since, true
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
