// Package events owns the gateway's append-only event log and what is derived from it: alarm
// state per alarm_key, alerts with their 认领 → 处办 → 反馈 lifecycle and escalation, the evidence
// file store, and the Feed that live consumers (SSE, MQTT publishing) subscribe to. Uplinks to
// the supervision core and the province read the same log through their own cursors
// (gateway/uplink).
package events

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/gateway/errs"
)

// Event is the unit that goes everywhere (CONTRACTS.md §5). Once logged, its JSON bytes are
// fixed: every consumer receives Raw, so two deliveries of one id never differ.
type Event struct {
	ID              string     `json:"id"`
	Type            string     `json:"type"`
	Severity        string     `json:"severity,omitempty"`
	State           string     `json:"state,omitempty"`
	OccurredAt      time.Time  `json:"occurred_at"`
	GatewayID       string     `json:"gateway_id"`
	Site            *Site      `json:"site,omitempty"`
	Device          *Device    `json:"device,omitempty"`
	Department      string     `json:"department,omitempty"`
	SupervisionItem string     `json:"supervision_item,omitempty"`
	Reading         *Reading   `json:"reading,omitempty"`
	Evidence        []Evidence `json:"evidence,omitempty"`
	AlarmKey        string     `json:"alarm_key,omitempty"`
	Rule            string     `json:"rule,omitempty"`
	Message         string     `json:"message,omitempty"`
	// Alert is set on alert.* events: which alert, its new state and who moved it.
	Alert *AlertRef `json:"alert,omitempty"`

	// Seq is the event's position in this gateway's log (0 until logged). Not part of the
	// contract: cursors are local.
	Seq int64 `json:"-"`
	// LoggedAt is when the log stored the event.
	LoggedAt time.Time `json:"-"`
	// Raw is the stored JSON, the exact bytes delivered to every consumer.
	Raw json.RawMessage `json:"-"`
}

// Site is the supervised object an event concerns.
type Site struct {
	ID         string `json:"id"`
	Name       string `json:"name,omitempty"`
	USCC       string `json:"uscc,omitempty"`
	RegionCode string `json:"region_code,omitempty"`
}

// Device is the device an event came from.
type Device struct {
	ID      string `json:"id"`
	Kind    string `json:"kind,omitempty"`
	Profile string `json:"profile,omitempty"`
}

// Reading is the measurement behind a sensor event.
type Reading struct {
	Metric string   `json:"metric"`
	Value  float64  `json:"value"`
	Unit   string   `json:"unit,omitempty"`
	Limit  *float64 `json:"limit,omitempty"`
}

// Evidence points at a stored file (see EvidenceStore).
type Evidence struct {
	Kind   string `json:"kind"`
	URL    string `json:"url"`
	SHA256 string `json:"sha256"`
}

// AlertRef describes an alert transition inside an alert.* event.
type AlertRef struct {
	ID           string   `json:"id"`
	State        string   `json:"state"`
	Actor        string   `json:"actor,omitempty"`
	Note         string   `json:"note,omitempty"`
	Outcome      string   `json:"outcome,omitempty"`
	OutcomeLabel string   `json:"outcome_label,omitempty"`
	Attachments  []string `json:"attachments,omitempty"` // evidence sha256s
	Level        int      `json:"level,omitempty"`       // escalation level on alert.escalated
}

// Severities, lowest first.
var Severities = []string{"info", "minor", "major", "critical"}

// SeverityRank orders severities; unknown is -1.
func SeverityRank(s string) int {
	for i, v := range Severities {
		if v == s {
			return i
		}
	}
	return -1
}

// Alarm states carried in Event.State.
const (
	StateActive  = "active"
	StateCleared = "cleared"
)

var typeRE = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$`)

const maxText = 4096

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
func (e *Event) normalize(gatewayID string, now time.Time) {
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

// Validate checks an event against the contract. Errors are errs.KindInvalid with code
// invalid_event.
func (e *Event) Validate() error {
	bad := func(format string, args ...any) error {
		return errs.E(errs.KindInvalid, "invalid_event", "event %s: "+format, append([]any{e.ID}, args...)...)
	}
	if e.ID != "" {
		if _, err := ulid.ParseStrict(e.ID); err != nil {
			return bad("id must be a ULID (26 Crockford base32 characters)")
		}
	}
	if !typeRE.MatchString(e.Type) || len(e.Type) > 64 {
		return bad("type %q must look like sensor.threshold (lower case, dotted)", e.Type)
	}
	if e.Severity != "" && SeverityRank(e.Severity) < 0 {
		return bad("severity %q must be one of %s", e.Severity, strings.Join(Severities, ", "))
	}
	switch e.State {
	case "", StateActive, StateCleared:
	default:
		return bad("state %q must be active, cleared or empty", e.State)
	}
	if e.State != "" && e.AlarmKey == "" {
		return bad("state %q needs an alarm_key", e.State)
	}
	if e.OccurredAt.IsZero() {
		return bad("occurred_at is missing")
	}
	if y := e.OccurredAt.Year(); y < 2000 || y > 9999 {
		return bad("occurred_at %s is out of range", e.OccurredAt)
	}
	for name, s := range map[string]string{"message": e.Message, "rule": e.Rule, "alarm_key": e.AlarmKey,
		"department": e.Department, "supervision_item": e.SupervisionItem, "gateway_id": e.GatewayID} {
		if len(s) > maxText {
			return bad("%s longer than %d bytes", name, maxText)
		}
		if !utf8.ValidString(s) {
			return bad("%s is not UTF-8", name)
		}
	}
	if e.Site != nil && e.Site.ID == "" {
		return bad("site.id is missing")
	}
	if e.Device != nil && e.Device.ID == "" {
		return bad("device.id is missing")
	}
	if len(e.Evidence) > 32 {
		return bad("more than 32 evidence items")
	}
	for _, ev := range e.Evidence {
		if ev.SHA256 != "" && !isHex64(ev.SHA256) {
			return bad("evidence sha256 %q is not 64 hex digits", ev.SHA256)
		}
	}
	return nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ParseEvent decodes and validates one event from outside (POST /api/v1/events). Unknown
// fields are refused so a typo is not silently dropped; alert.* types are refused because
// only the gateway's alert lifecycle may write them. id and occurred_at may be left out;
// gateway_id is dropped (the log sets its own).
func ParseEvent(body []byte) (Event, error) {
	var e Event
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Event{}, errs.Wrap(errs.KindInvalid, "invalid_event", err, "event body is not a valid event JSON object")
	}
	if dec.More() {
		return Event{}, errs.E(errs.KindInvalid, "invalid_event", "event body has data after the JSON object")
	}
	if strings.HasPrefix(e.Type, "alert.") || e.Alert != nil {
		return Event{}, errs.E(errs.KindInvalid, "invalid_event", "alert.* events are written by the gateway, not posted")
	}
	if e.OccurredAt.IsZero() {
		e.OccurredAt = time.Now()
	}
	// The log stamps its own gateway id: a producer cannot speak for another gateway.
	e.GatewayID = ""
	if err := e.Validate(); err != nil {
		return Event{}, err
	}
	return e, nil
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
func (f Filter) Match(e *Event) bool {
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
	if f.MinSeverity != "" && SeverityRank(e.Severity) < SeverityRank(f.MinSeverity) {
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

// RegionCode returns the event's site region code, or "".
func (e *Event) RegionCode() string {
	if e.Site == nil {
		return ""
	}
	return e.Site.RegionCode
}

func (e *Event) String() string { return fmt.Sprintf("%s %s #%d", e.Type, e.ID, e.Seq) }

// wireEvent is Event as sent: occurred_at always in UTC with exactly three fraction digits
// (2026-11-27T10:15:04.123Z), as in the contract, whatever the producer's clock resolution.
type wireEvent struct {
	ID              string     `json:"id"`
	Type            string     `json:"type"`
	Severity        string     `json:"severity,omitempty"`
	State           string     `json:"state,omitempty"`
	OccurredAt      string     `json:"occurred_at"`
	GatewayID       string     `json:"gateway_id"`
	Site            *Site      `json:"site,omitempty"`
	Device          *Device    `json:"device,omitempty"`
	Department      string     `json:"department,omitempty"`
	SupervisionItem string     `json:"supervision_item,omitempty"`
	Reading         *Reading   `json:"reading,omitempty"`
	Evidence        []Evidence `json:"evidence,omitempty"`
	AlarmKey        string     `json:"alarm_key,omitempty"`
	Rule            string     `json:"rule,omitempty"`
	Message         string     `json:"message,omitempty"`
	Alert           *AlertRef  `json:"alert,omitempty"`
}

// TimeFormat is how occurred_at is written.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// MarshalJSON writes the contract shape. A logged event should be sent as Raw instead.
func (e Event) MarshalJSON() ([]byte, error) {
	return json.Marshal(wireEvent{
		ID: e.ID, Type: e.Type, Severity: e.Severity, State: e.State,
		OccurredAt: e.OccurredAt.UTC().Format(TimeFormat), GatewayID: e.GatewayID,
		Site: e.Site, Device: e.Device, Department: e.Department, SupervisionItem: e.SupervisionItem,
		Reading: e.Reading, Evidence: e.Evidence, AlarmKey: e.AlarmKey, Rule: e.Rule, Message: e.Message,
		Alert: e.Alert,
	})
}
