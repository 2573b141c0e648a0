package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/offsite-gw/offsite/events/event"
	profiles "github.com/offsite-gw/offsite/firmware-profiles"
)

// Config is the rules: section of the gateway configuration. The engine takes its parts as
// fields (Engine.Schedules, Holidays, Overrides, Cooldown).
type Config struct {
	// Schedules are named evaluation windows a rule can be limited to (Override.Schedule).
	Schedules map[string]Schedule `yaml:"schedules,omitempty" json:"schedules,omitempty"`
	// Holidays is the official calendar used by schedules with calendar: working|rest.
	Holidays Holidays `yaml:"holidays,omitempty" json:"holidays,omitempty"`
	// Overrides change the profiles' default rules per profile, site or device.
	Overrides []Override `yaml:"overrides,omitempty" json:"overrides,omitempty"`
	// Cooldown is how long after a clear the same alarm cannot activate again (default 5m).
	Cooldown profiles.Duration `yaml:"cooldown,omitempty" json:"cooldown,omitempty"`
}

// Override changes, disables or adds one rule for the devices it selects. Selectors left
// empty match everything; the most specific override wins (device over site over profile
// over none), and among equally specific ones the later in the list. Fields left empty keep
// the profile's value.
//
// With Kind set, the override is a whole rule: it replaces a profile rule of the same id or
// adds a rule the profile does not have, and must be complete. Without Kind it only changes
// the rule of that id, on devices whose profile has one.
type Override struct {
	Profile string `yaml:"profile,omitempty" json:"profile,omitempty"`
	Site    string `yaml:"site,omitempty" json:"site,omitempty"`
	Device  string `yaml:"device,omitempty" json:"device,omitempty"`

	Rule    string `yaml:"rule" json:"rule"`
	Disable bool   `yaml:"disable,omitempty" json:"disable,omitempty"`

	Kind       string             `yaml:"kind,omitempty" json:"kind,omitempty"`
	Metric     string             `yaml:"metric,omitempty" json:"metric,omitempty"`
	Op         string             `yaml:"op,omitempty" json:"op,omitempty"`
	Value      *float64           `yaml:"value,omitempty" json:"value,omitempty"`
	Hysteresis *float64           `yaml:"hysteresis,omitempty" json:"hysteresis,omitempty"`
	For        *profiles.Duration `yaml:"for,omitempty" json:"for,omitempty"`
	Per        *profiles.Duration `yaml:"per,omitempty" json:"per,omitempty"`
	Severity   string             `yaml:"severity,omitempty" json:"severity,omitempty"`
	Department string             `yaml:"department,omitempty" json:"department,omitempty"`
	Message    string             `yaml:"message,omitempty" json:"message,omitempty"`
	// During replaces the profile's daily window; "all" removes it.
	During string `yaml:"during,omitempty" json:"during,omitempty"`
	// Schedule names one of rules.schedules; "none" removes a schedule set by a less
	// specific override.
	Schedule string `yaml:"schedule,omitempty" json:"schedule,omitempty"`
}

// ParseConfig reads the rules: section from YAML or JSON. Unknown keys are refused, so a typo
// does not silently leave a rule unchanged; the result is validated.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("rules config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// ParseOverrides reads a YAML or JSON list of overrides and validates them against the given
// schedules.
func ParseOverrides(data []byte, schedules map[string]Schedule) ([]Override, error) {
	var list []Override
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&list); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("rules.overrides: %w", err)
	}
	if err := ValidateOverrides(list, schedules); err != nil {
		return nil, err
	}
	return list, nil
}

// Validate checks every part and lists every problem.
func (c Config) Validate() error {
	var errs []error
	cal, err := c.Holidays.parse()
	if err != nil {
		errs = append(errs, err)
	}
	for _, name := range sortedKeys(c.Schedules) {
		if !idRE.MatchString(name) {
			errs = append(errs, fmt.Errorf("rules.schedules.%s: name: use lower-case letters, digits, '-', '_'", name))
		}
		if _, err := c.Schedules[name].parse(name, cal); err != nil {
			errs = append(errs, fmt.Errorf("rules.schedules.%s: %w", name, err))
		}
	}
	if err := ValidateOverrides(c.Overrides, c.Schedules); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

var (
	idRE      = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	ruleKinds = []string{KindThreshold, KindDuration, KindRate, KindSilence}
	ops       = []string{">", ">=", "<", "<=", "==", "!="}
)

// Rule kinds.
const (
	KindThreshold = "threshold"
	KindDuration  = "duration"
	KindRate      = "rate"
	KindSilence   = "silence"
)

// ValidateOverrides checks overrides against the named schedules and lists every problem as
// rules.overrides[i] (selector, rule): reason.
func ValidateOverrides(list []Override, schedules map[string]Schedule) error {
	var errs []error
	for i, o := range list {
		where := fmt.Sprintf("rules.overrides[%d] (%s)", i, o.describe())
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf(where+": "+format, args...))
		}
		if o.Rule == "" {
			bad("rule is missing: name the rule id to change, disable or add")
		} else if !idRE.MatchString(o.Rule) {
			bad("rule %q: use lower-case letters, digits, '-', '_' and '.'", o.Rule)
		}
		if o.Disable && (o.Kind != "" || o.Metric != "" || o.Op != "" || o.Value != nil || o.Hysteresis != nil ||
			o.For != nil || o.Per != nil || o.Severity != "" || o.Department != "" || o.Message != "" ||
			o.During != "" || o.Schedule != "") {
			bad("disable: true together with changes; a disabled rule has nothing to change")
		}
		if o.Kind != "" && !oneOf(o.Kind, ruleKinds) {
			bad("kind %q is not one of %s", o.Kind, strings.Join(ruleKinds, ", "))
		}
		if o.Op != "" && !oneOf(o.Op, ops) {
			bad("op %q is not one of %s", o.Op, strings.Join(ops, " "))
		}
		if o.Hysteresis != nil && !(*o.Hysteresis >= 0) {
			bad("hysteresis must be ≥ 0")
		}
		if o.Value != nil && !finite(*o.Value) {
			bad("value must be a finite number")
		}
		if o.For != nil && *o.For <= 0 {
			bad("for must be > 0 (e.g. for: 10m)")
		}
		if o.Per != nil && *o.Per <= 0 {
			bad("per must be > 0 (e.g. per: 10m)")
		}
		if o.Severity != "" && event.SeverityRank(o.Severity) < 0 {
			bad("severity %q is not one of %s", o.Severity, strings.Join(event.Severities, ", "))
		}
		if o.During != "" && o.During != "all" {
			if _, err := ParseWindow(o.During); err != nil {
				bad("during: %v", err)
			}
		}
		if o.Schedule != "" && o.Schedule != "none" {
			if _, ok := schedules[o.Schedule]; !ok {
				bad("schedule %q is not defined in rules.schedules (have: %s)", o.Schedule, strings.Join(sortedKeys(schedules), ", "))
			}
		}
		if o.Kind != "" {
			r := o.apply(profiles.Rule{ID: o.Rule})
			if err := checkRule(r.Rule); err != nil {
				bad("a rule with kind is a whole rule: %v", err)
			}
		}
	}
	return errors.Join(errs...)
}

func (o Override) describe() string {
	var parts []string
	for _, kv := range [][2]string{{"profile", o.Profile}, {"site", o.Site}, {"device", o.Device}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+" "+kv[1])
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "all devices")
	}
	return strings.Join(parts, ", ") + ", rule " + o.Rule
}

// specificity orders overrides: device > site > profile > everything.
func (o Override) specificity() int {
	switch {
	case o.Device != "":
		return 3
	case o.Site != "":
		return 2
	case o.Profile != "":
		return 1
	}
	return 0
}

func (o Override) matches(deviceID, siteID, profileID string) bool {
	return (o.Device == "" || o.Device == deviceID) && (o.Site == "" || o.Site == siteID) &&
		(o.Profile == "" || o.Profile == profileID)
}

// layered is a profile rule with the override-only setting (schedule).
type layered struct {
	profiles.Rule
	Schedule string
	Disabled bool
}

func (o Override) apply(r profiles.Rule) layered {
	return layered{Rule: r}.with(o)
}

func (l layered) with(o Override) layered {
	if o.Disable {
		l.Disabled = true
		return l
	}
	r := &l.Rule
	if o.Kind != "" {
		// A whole rule: start again from the override alone.
		*r = profiles.Rule{ID: o.Rule, Kind: o.Kind}
		l.Schedule = ""
	}
	l.Disabled = false
	setStr(&r.Metric, o.Metric)
	setStr(&r.Op, o.Op)
	if o.Value != nil {
		r.Value = *o.Value
	}
	if o.Hysteresis != nil {
		r.Hysteresis = *o.Hysteresis
	}
	if o.For != nil {
		r.For = *o.For
	}
	if o.Per != nil {
		r.Per = *o.Per
	}
	setStr(&r.Severity, o.Severity)
	setStr(&r.Department, o.Department)
	setStr(&r.Message, o.Message)
	switch o.During {
	case "":
	case "all":
		r.During = ""
	default:
		r.During = o.During
	}
	switch o.Schedule {
	case "":
	case "none":
		l.Schedule = ""
	default:
		l.Schedule = o.Schedule
	}
	return l
}

func setStr(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// checkRule validates a rule after layering (the same checks the profile loader makes, minus
// those needing the metric list).
func checkRule(r profiles.Rule) error {
	if !oneOf(r.Kind, ruleKinds) {
		return fmt.Errorf("rule %q: kind %q is not one of %s", r.ID, r.Kind, strings.Join(ruleKinds, ", "))
	}
	if r.Kind != KindSilence {
		if r.Metric == "" {
			return fmt.Errorf("rule %q: a %s rule needs a metric", r.ID, r.Kind)
		}
		if !oneOf(r.Op, ops) {
			return fmt.Errorf("rule %q: op %q is not one of %s", r.ID, r.Op, strings.Join(ops, " "))
		}
	}
	if r.Kind == KindDuration && r.For <= 0 {
		return fmt.Errorf("rule %q: a duration rule needs for > 0", r.ID)
	}
	if r.Kind == KindRate && r.Per <= 0 {
		return fmt.Errorf("rule %q: a rate rule needs per > 0", r.ID)
	}
	if r.Hysteresis < 0 {
		return fmt.Errorf("rule %q: hysteresis must be ≥ 0", r.ID)
	}
	if event.SeverityRank(r.Severity) < 0 {
		return fmt.Errorf("rule %q: severity %q is not one of %s", r.ID, r.Severity, strings.Join(event.Severities, ", "))
	}
	if r.During != "" {
		if _, err := ParseWindow(r.During); err != nil {
			return fmt.Errorf("rule %q: during: %w", r.ID, err)
		}
	}
	return nil
}

// layer applies the matching overrides to a profile's rules, least specific first.
func layer(defaults []profiles.Rule, overrides []Override, deviceID, siteID, profileID string) []layered {
	var match []int
	for i, o := range overrides {
		if o.matches(deviceID, siteID, profileID) {
			match = append(match, i)
		}
	}
	sort.SliceStable(match, func(a, b int) bool {
		return overrides[match[a]].specificity() < overrides[match[b]].specificity()
	})
	var out []layered
	index := map[string]int{}
	for _, r := range defaults {
		index[r.ID] = len(out)
		out = append(out, layered{Rule: r})
	}
	for _, i := range match {
		o := overrides[i]
		if j, ok := index[o.Rule]; ok {
			out[j] = out[j].with(o)
			continue
		}
		if o.Kind == "" {
			continue // changes a rule this device's profile does not have
		}
		index[o.Rule] = len(out)
		out = append(out, o.apply(profiles.Rule{ID: o.Rule}))
	}
	return out
}

func oneOf(s string, list []string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func finite(f float64) bool { return f == f && f < 1e308 && f > -1e308 }

// DefaultCooldown is used when Engine.Cooldown is 0.
const DefaultCooldown = 5 * time.Minute
