package rules

import (
	"context"
	"fmt"
	"time"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events/event"
	profiles "github.com/offsite-gw/offsite/firmware-profiles"
)

// rule is one rule of one device after layering, ready to evaluate.
type rule struct {
	id, kind, metric, op string
	value, hyst          float64
	forDur, per          time.Duration
	stale                time.Duration // a reading older than this no longer stands for now
	severity, department string
	message              string // the profile's advice
	label                string // metric label for messages
	limitName            string // 高限 or 低限 when the metric has two upper limits, else ""
	gate                 *gate
}

// deviceRules is what the engine knows of one device.
type deviceRules struct {
	dev       devices.Device
	site      *devices.Site
	rules     []*rule
	byID      map[string]*rule
	byMetric  map[string][]*rule
	anyMetric []*rule // silence rules without a metric
	units     map[string]string
}

const (
	defaultStale   = 5 * time.Minute
	defaultSilence = 15 * time.Minute
)

// lookup finds a device, its site and profile and compiles its rules. A site or profile that
// cannot be found leaves the device with what is left (overrides may still add rules); only
// the device itself missing is an error.
func (e *Engine) lookup(ctx context.Context, deviceID string) (*deviceRules, error) {
	d, err := e.Devices.GetDevice(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	dr := &deviceRules{dev: d, byID: map[string]*rule{}, byMetric: map[string][]*rule{}, units: map[string]string{}}
	if d.SiteID != "" {
		if s, err := e.Devices.GetSite(ctx, d.SiteID); err == nil {
			dr.site = &s
		} else {
			e.Logger.Warn("rules: site lookup", "device", deviceID, "site", d.SiteID, "err", err)
		}
	}
	p, ok := e.Profiles.Get(d.Profile)
	if !ok && d.Profile != "" {
		e.Logger.Warn("rules: unknown profile", "device", deviceID, "profile", d.Profile)
	}
	labels := map[string]string{}
	for _, m := range p.Metrics {
		dr.units[m.Name] = m.Unit
		labels[m.Name] = m.Label
	}
	for _, l := range layer(p.Rules, e.Overrides, d.ID, d.SiteID, d.Profile) {
		if l.Disabled {
			continue
		}
		r, err := e.compile(l, p)
		if err != nil {
			e.Logger.Warn("rules: rule skipped", "device", deviceID, "rule", l.ID, "err", err)
			continue
		}
		r.label = labels[r.metric]
		if r.label == "" {
			r.label = r.metric
		}
		dr.rules = append(dr.rules, r)
		dr.byID[r.id] = r
		if r.kind == KindSilence && r.metric == "" {
			dr.anyMetric = append(dr.anyMetric, r)
		} else {
			dr.byMetric[r.metric] = append(dr.byMetric[r.metric], r)
		}
	}
	nameLimits(dr.rules)
	return dr, nil
}

// nameLimits calls the upper limits of one metric 高限 and 低限 when there are two or more
// (the two-level alarm of a gas detector: low 10 %LEL, high 20 %LEL), so the officer reads
// which one was crossed.
func nameLimits(rs []*rule) {
	upper := map[string][]*rule{}
	for _, r := range rs {
		if (r.kind == KindThreshold || r.kind == KindDuration) && (r.op == ">" || r.op == ">=") {
			upper[r.metric] = append(upper[r.metric], r)
		}
	}
	for _, group := range upper {
		if len(group) < 2 {
			continue
		}
		hi := group[0]
		for _, r := range group {
			if r.value > hi.value {
				hi = r
			}
		}
		for _, r := range group {
			r.limitName = "低限"
			if r.value == hi.value {
				r.limitName = "高限"
			}
		}
	}
}

func (e *Engine) compile(l layered, p profiles.Profile) (*rule, error) {
	if err := checkRule(l.Rule); err != nil {
		return nil, err
	}
	r := &rule{
		id: l.ID, kind: l.Kind, metric: l.Metric, op: l.Op, value: l.Value, hyst: l.Hysteresis,
		forDur: l.For.Std(), per: l.Per.Std(), severity: l.Severity, department: l.Department,
		message: l.Message, stale: p.Heartbeat.Std(),
	}
	if r.stale <= 0 {
		r.stale = defaultStale
	}
	if r.kind == KindSilence && r.forDur <= 0 {
		r.forDur = 3 * p.Heartbeat.Std()
		if r.forDur <= 0 {
			r.forDur = defaultSilence
		}
	}
	if l.During != "" || l.Schedule != "" {
		g := &gate{}
		if l.During != "" {
			w, err := ParseWindow(l.During)
			if err != nil {
				return nil, err
			}
			g.during = &w
			g.text = w.String()
		}
		if l.Schedule != "" {
			s, ok := e.schedules[l.Schedule]
			if !ok {
				return nil, fmt.Errorf("schedule %q is not defined", l.Schedule)
			}
			g.schedule = s
			if g.text != "" {
				g.text += "，"
			}
			g.text += l.Schedule
		}
		r.gate = g
	}
	return r, nil
}

// holds reports whether x meets the rule's condition.
func (r *rule) holds(x float64) bool {
	switch r.op {
	case ">":
		return x > r.value
	case ">=":
		return x >= r.value
	case "<":
		return x < r.value
	case "<=":
		return x <= r.value
	case "==":
		return x == r.value
	case "!=":
		return x != r.value
	}
	return false
}

// releases reports whether an active alarm clears at x: back past the limit by the
// hysteresis (for == the value must move more than the hysteresis away).
func (r *rule) releases(x float64) bool {
	h := r.hyst
	switch r.op {
	case ">":
		return x <= r.value-h
	case ">=":
		return x < r.value-h
	case "<":
		return x >= r.value+h
	case "<=":
		return x > r.value+h
	case "==":
		d := x - r.value
		if h == 0 {
			return d != 0
		}
		return d > h || d < -h
	case "!=":
		return x == r.value
	}
	return true
}

// reading is the event's reading: the metric's value with the limit.
func (r *rule) reading(st *ruleState, v float64, withLimit bool) *event.Reading {
	rd := &event.Reading{Metric: r.metric, Value: v, Unit: st.unit}
	if withLimit {
		limit := r.value
		rd.Limit = &limit
	}
	return rd
}
