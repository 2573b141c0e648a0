// Package event is the event record, the unit that goes everywhere (docs/contracts.md §5): its
// fields, the event types and severities, the alarm states, and the exact JSON shape it is sent
// in. It imports nothing outside the standard library, so rules, the video worker and the
// camera relay make events without linking the log that stores them (package events).
package event

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Event types (docs/contracts.md §5). Producers may add their own dotted types.
const (
	TypeSensorThreshold = "sensor.threshold"
	TypeSensorSilent    = "sensor.silent"
	TypeDeviceOffline   = "device.offline"
	TypeDeviceOnline    = "device.online"
	// TypeDeviceFault: a device reports a fault of its own, e.g. an HJ 212 station flagging
	// its values D (instrument fault) or B (communication fault); device health.
	TypeDeviceFault      = "device.fault"
	TypeVideoSignalLost  = "video.signal_lost"
	TypeVideoTamper      = "video.tamper"
	TypeVideoStaffAbsent = "video.staff_absent"
	TypeVideoCrowding    = "video.crowding"
	TypeVideoMotion      = "video.motion"
	TypeTelemetryDropped = "telemetry.dropped"
	TypeEvidenceAdded    = "evidence.added"
	// TypeEvidenceManual: a person started a manual recording (取证录像) not attached to an
	// alert; the recording's clip names it in its evidence.added.
	TypeEvidenceManual = "evidence.manual"
	// TypeGatewayOffline and TypeGatewayOnline are raised by a centre about an enrolled site
	// gateway that fell silent and came back (docs/contracts.md §7).
	TypeGatewayOffline = "gateway.offline"
	TypeGatewayOnline  = "gateway.online"

	// AlertPrefix starts every alert lifecycle type (alert.opened, alert.claimed, …); only
	// the alert lifecycle writes them.
	AlertPrefix = "alert."
)

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
	// Detail is technical detail for whoever fixes the cause (the RTSP error text, the raw
	// presence reason); Message is the sentence a person reads.
	Detail string `json:"detail,omitempty"`
	// Alert is set on alert.* events: which alert, its new state and who moved it.
	Alert *AlertRef `json:"alert,omitempty"`
	// RefEventID is the event an evidence.added (or a later event about another) refers to.
	RefEventID string `json:"ref_event_id,omitempty"`

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
	Name    string `json:"name,omitempty"` // what people call it (进水口摄像机); the id comes second
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

// Evidence points at a stored file (see EvidenceStore). Kinds: "snapshot", "clip" (a video
// clip around an event, docs/contracts.md §9), "upload". Entries of kind, url and sha256 only
// stay valid; the other fields describe clips.
type Evidence struct {
	Kind     string     `json:"kind"`
	URL      string     `json:"url"`
	SHA256   string     `json:"sha256"`
	MIME     string     `json:"mime,omitempty"`
	Codec    string     `json:"codec,omitempty"` // "h264" | "h265"
	CameraID string     `json:"camera_id,omitempty"`
	Start    *time.Time `json:"start,omitempty"`
	End      *time.Time `json:"end,omitempty"`
	EventAt  *time.Time `json:"event_at,omitempty"`
	// Complete is false for a clip cut short (camera lost, gateway stopped); Note says why.
	Complete *bool  `json:"complete,omitempty"`
	Note     string `json:"note,omitempty"`
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
	// Audience is who must act on the alert: maintainers, officers or all.
	Audience string `json:"audience,omitempty"`
	// Occurrences is how often the alert's condition has occurred (alert.recurred and later).
	Occurrences int `json:"occurrences,omitempty"`
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

// MaxText bounds every free-text field of an event (message, rule, alarm key …), in bytes.
const MaxText = 4096

// Validate checks an event against the contract; the error says what is wrong in words a
// producer can act on.
func (e *Event) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("event %s: "+format, append([]any{e.ID}, args...)...)
	}
	if e.ID != "" {
		if !isULID(e.ID) {
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
	for name, s := range map[string]string{"message": e.Message, "detail": e.Detail, "rule": e.Rule, "alarm_key": e.AlarmKey,
		"department": e.Department, "supervision_item": e.SupervisionItem, "gateway_id": e.GatewayID} {
		if len(s) > MaxText {
			return bad("%s longer than %d bytes", name, MaxText)
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
		if ev.SHA256 != "" && !IsHex64(ev.SHA256) {
			return bad("evidence sha256 %q is not 64 hex digits", ev.SHA256)
		}
		if len(ev.Note) > MaxText || len(ev.MIME)+len(ev.Codec)+len(ev.CameraID) > MaxText {
			return bad("evidence text longer than %d bytes", MaxText)
		}
	}
	if e.RefEventID != "" && !isULID(e.RefEventID) {
		return bad("ref_event_id must be a ULID")
	}
	return nil
}

// IsHex64 reports whether s is a lower-case hex SHA-256 (64 digits).
func IsHex64(s string) bool {
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

// isULID reports whether s is a ULID in its canonical form: 26 Crockford base32 characters,
// the first at most 7 (a larger one overflows 128 bits).
func isULID(s string) bool {
	if len(s) != 26 || s[0] > '7' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' && c != 'I' && c != 'L' && c != 'O' && c != 'U') {
			return false
		}
	}
	return true
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
	Detail          string     `json:"detail,omitempty"`
	Alert           *AlertRef  `json:"alert,omitempty"`
	RefEventID      string     `json:"ref_event_id,omitempty"`
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
		Detail: e.Detail, Alert: e.Alert, RefEventID: e.RefEventID,
	})
}
