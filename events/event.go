// Package events owns the gateway's append-only event log and what is derived from it: alarm
// state per alarm_key, alerts with their 认领 → 处办 → 反馈 lifecycle and escalation, the evidence
// file store, and the Feed that live consumers (SSE, MQTT publishing) subscribe to. Uplinks to
// the supervision core and the province read the same log through their own cursors
// (events/uplink). The record itself is the leaf package events/event.
package events

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/errs"
)

var (
	entropyMu sync.Mutex
	entropy   = ulid.Monotonic(rand.Reader, 0)
)

// NewID returns a new ULID string, monotonic within this process.
func NewID(t time.Time) string {
	entropyMu.Lock()
	defer entropyMu.Unlock()
	return ulid.MustNew(ulid.Timestamp(t), entropy).String()
}

// normalize fills defaults (id, time, gateway) and makes times UTC millisecond precision so
// the stored bytes do not depend on the producer's clock resolution.
func normalize(e *event.Event, gatewayID string, now time.Time) {
	if e.OccurredAt.IsZero() {
		e.OccurredAt = now
	}
	e.OccurredAt = e.OccurredAt.UTC().Truncate(time.Millisecond)
	if e.ID == "" {
		e.ID = NewID(e.OccurredAt)
	}
	if e.GatewayID == "" {
		e.GatewayID = gatewayID
	}
}

// validate checks an event against the contract as an errs.KindInvalid error with code
// invalid_event, which the API answers with 400.
func validate(e *event.Event) error {
	if err := e.Validate(); err != nil {
		return errs.Wrap(errs.KindInvalid, "invalid_event", err, "%s", err.Error())
	}
	return nil
}

// fields are refused so a typo is not silently dropped; alert.* types are refused because
// only the gateway's alert lifecycle may write them. id and occurred_at may be left out;
// gateway_id is dropped (the log sets its own).
func ParseEvent(body []byte) (event.Event, error) {
	var e event.Event
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return event.Event{}, errs.Wrap(errs.KindInvalid, "invalid_event", err, "event body is not a valid event JSON object")
	}
	if dec.More() {
		return event.Event{}, errs.E(errs.KindInvalid, "invalid_event", "event body has data after the JSON object")
	}
	if strings.HasPrefix(e.Type, "alert.") || e.Alert != nil {
		return event.Event{}, errs.E(errs.KindInvalid, "invalid_event", "alert.* events are written by the gateway, not posted")
	}
	if e.OccurredAt.IsZero() {
		e.OccurredAt = time.Now()
	}
	// The log stamps its own gateway id: a producer cannot speak for another gateway.
	e.GatewayID = ""
	if err := validate(&e); err != nil {
		return event.Event{}, err
	}
	return e, nil
}

// DeviceHealthTypes are the event types about device health (exact, or prefixes ending in
// "."): what a maintainer goes out to fix — a device or gateway offline, a camera without
// signal or moved/covered (tamper), known-bad firmware. Alerts opened by them go to the
// maintainers of the site's region unless events.alerts.types routes them elsewhere.
var DeviceHealthTypes = []string{"device.", "gateway.", "firmware.", "sensor.silent", "video.signal_lost", "video.tamper"}

// IsDeviceHealth reports whether events of type t (and alerts opened by them) are about device
// health (DeviceHealthTypes).
func IsDeviceHealth(t string) bool {
	return Filter{Types: DeviceHealthTypes}.Match(&event.Event{Type: t})
}

// Filter selects events. Zero fields do not filter.
type Filter struct {
	// Types are exact types or prefixes ending in "." (e.g. "alert.").
	Types       []string `yaml:"types" json:"types,omitempty"`
	MinSeverity string   `yaml:"min_severity" json:"min_severity,omitempty"`
	Departments []string `yaml:"departments" json:"departments,omitempty"`
	Device      string   `yaml:"-" json:"device,omitempty"`
	// Scope limits to what a user may see (GET /api/v1/events for officers and viewers).
	Scope devices.Scope `yaml:"-" json:"-"`
}

// Match reports whether e passes the filter.
func (f Filter) Match(e *event.Event) bool {
	if len(f.Types) > 0 {
		ok := false
		for _, t := range f.Types {
			if t == e.Type || strings.HasSuffix(t, ".") && strings.HasPrefix(e.Type, t) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if f.MinSeverity != "" && event.SeverityRank(e.Severity) < event.SeverityRank(f.MinSeverity) {
		return false
	}
	if len(f.Departments) > 0 {
		ok := false
		for _, d := range f.Departments {
			if d == e.Department {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if f.Device != "" && (e.Device == nil || e.Device.ID != f.Device) {
		return false
	}
	return ScopeAllows(f.Scope, e)
}
