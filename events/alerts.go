package events

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/internal/store"
)

// Alert states, in lifecycle order: 认领 (claim) → 处办 (handle) → 反馈 (feedback) → close.
const (
	AlertOpened  = "opened"
	AlertClaimed = "claimed"
	AlertHandled = "handled"
	AlertFedBack = "fed_back"
	AlertClosed  = "closed"
)

// AlertStates are the states of the lifecycle, in order.
var AlertStates = []string{AlertOpened, AlertClaimed, AlertHandled, AlertFedBack, AlertClosed}

// Outcome is what an officer reports back (反馈) about an alert. Label is the Chinese label
// (accepted as input too); LabelEN is for English user interfaces.
type Outcome struct {
	Code    string `json:"code"`
	Label   string `json:"label"`
	LabelEN string `json:"label_en"`
}

// Outcomes is the enumerated set of feedback outcomes.
var Outcomes = []Outcome{
	{Code: "rectify_ordered", Label: "责令整改", LabelEN: "Rectification ordered"},
	{Code: "case_filed", Label: "立案", LabelEN: "Case filed"},
	{Code: "false_alarm", Label: "误报", LabelEN: "False alarm"},
	{Code: "rectified", Label: "已整改", LabelEN: "Rectified"},
	{Code: "other", Label: "其他", LabelEN: "Other"},
}

// ParseOutcome accepts an outcome code or its Chinese label.
func ParseOutcome(s string) (Outcome, error) {
	s = strings.TrimSpace(s)
	for _, o := range Outcomes {
		if s == o.Code || s == o.Label {
			return o, nil
		}
	}
	codes := make([]string, len(Outcomes))
	for i, o := range Outcomes {
		codes[i] = o.Code + " (" + o.Label + ")"
	}
	return Outcome{}, errs.E(errs.KindInvalid, "invalid_outcome", "outcome %q must be one of %s", s, strings.Join(codes, ", "))
}

// Alert is the person-facing side of an alarm activation.
type Alert struct {
	ID              string `json:"id"`
	AlarmKey        string `json:"alarm_key"`
	State           string `json:"state"`
	Type            string `json:"type"` // type of the event that opened it
	Severity        string `json:"severity"`
	Department      string `json:"department"`
	RegionCode      string `json:"region_code"`
	SiteID          string `json:"site_id"`
	DeviceID        string `json:"device_id"`
	EventID         string `json:"event_id"` // the event that opened it
	Message         string `json:"message"`
	ClaimedBy       string `json:"claimed_by,omitempty"`
	Outcome         string `json:"outcome,omitempty"`
	EscalationLevel int    `json:"escalation_level"`
	AlarmActive     bool   `json:"alarm_active"` // false: the condition has cleared (已恢复)
	// GroupKey is the condition the alert stands for (see GroupKey); one alert per group is
	// not closed at a time.
	GroupKey string `json:"group_key"`
	// Occurrences counts how often the condition occurred while the alert was not closed;
	// FirstAt and LastAt are when the first and the latest occurrence began.
	Occurrences int       `json:"occurrences"`
	FirstAt     time.Time `json:"first_at"`
	LastAt      time.Time `json:"last_at"`
	// RecoveredAt is when the condition last cleared, while it is cleared.
	RecoveredAt *time.Time `json:"recovered_at,omitempty"`
	// Audience is who must act: maintainers (device health) or officers (violations, risks).
	Audience  string       `json:"audience"`
	OpenedAt  time.Time    `json:"opened_at"`
	UpdatedAt time.Time    `json:"updated_at"`
	Source    *event.Event `json:"source,omitempty"`
	Steps     []Step       `json:"steps,omitempty"` // filled by Get
}

// Step is one recorded transition of an alert.
type Step struct {
	At          time.Time `json:"at"`
	Actor       string    `json:"actor"`
	Action      string    `json:"action"`
	State       string    `json:"state"`
	Note        string    `json:"note,omitempty"`
	Outcome     string    `json:"outcome,omitempty"`
	Attachments []string  `json:"attachments,omitempty"`
	EventID     string    `json:"event_id"`
}

// Action is a person's request to move an alert on.
type Action struct {
	Actor       string
	Note        string
	Attachments []string // evidence sha256s
	Outcome     string   // code or label; required for Feedback
	// Override lets someone other than the claimant handle or report back (admin).
	Override bool
}

// EscalationRule says when an unclaimed alert escalates: level i+1 after After[i]. Empty
// Severity or Department match any; the most specific matching rule wins.
type EscalationRule struct {
	Severity   string          `yaml:"severity" json:"severity,omitempty"`
	Department string          `yaml:"department" json:"department,omitempty"`
	After      []time.Duration `yaml:"after" json:"after"`
}

// DefaultEscalation applies when Alerts.Escalation is empty.
var DefaultEscalation = []EscalationRule{
	{Severity: "critical", After: []time.Duration{5 * time.Minute, 30 * time.Minute}},
	{Severity: "major", After: []time.Duration{15 * time.Minute, 2 * time.Hour}},
	{Severity: "minor", After: []time.Duration{time.Hour}},
}

// Alerts keeps alarm state per alarm_key and one alert per condition (GroupKey) that is not
// closed: a re-activation adds an occurrence to it, a more severe alarm of the same
// measurement raises its severity, and clearing marks it recovered. Every transition appends
// an alert.* event in the same transaction as the state change.
type Alerts struct {
	Log *Log
	// Types are the per-type policies (route, close on clear) by exact type or prefix
	// ending in "."; DefaultRoute for types not listed.
	Types map[string]TypePolicy
	// Escalation rules; DefaultEscalation when empty.
	Escalation []EscalationRule
	// EscalationInterval is how often Run looks for overdue alerts (default 5s).
	EscalationInterval time.Duration
	Logger             *slog.Logger
	// Disabled opens no alerts (a site whose centre opens them); the API still answers, with
	// whatever alerts were opened before.
	Disabled bool
}

// Initialize hooks the alarm logic into the log. Call after Log.Initialize.
func (a *Alerts) Initialize() error {
	if a.Logger == nil {
		a.Logger = slog.Default()
	}
	if len(a.Escalation) == 0 {
		a.Escalation = DefaultEscalation
	}
	if a.EscalationInterval <= 0 {
		a.EscalationInterval = 5 * time.Second
	}
	if err := validateTypes(a.Types); err != nil {
		return err
	}
	for _, r := range a.Escalation {
		if r.Severity != "" && event.SeverityRank(r.Severity) < 0 {
			return fmt.Errorf("events: escalation rule severity %q must be one of %s", r.Severity, strings.Join(event.Severities, ", "))
		}
		for i, d := range r.After {
			if d <= 0 || i > 0 && d <= r.After[i-1] {
				return fmt.Errorf("events: escalation rule %s/%s: after must be positive and increasing", r.Severity, r.Department)
			}
		}
	}
	if !a.Disabled {
		a.Log.Use(a.onEvent)
	}
	return nil
}

// onEvent runs inside the append transaction of every new event.
func (a *Alerts) onEvent(ctx context.Context, tx *Tx, e *event.Event) error {
	if e.AlarmKey == "" || strings.HasPrefix(e.Type, "alert.") || e.State == "" {
		return nil
	}
	now := tx.Now().UnixMilli()
	if e.State == event.StateCleared {
		// Only an active alarm clears; one statement (each is a round trip on PostgreSQL).
		var alertID string
		err := tx.QueryRow(ctx, `UPDATE alarms SET state = ?, cleared_at = ?, last_event_id = ?, updated_at = ?
			WHERE alarm_key = ? AND state = ? RETURNING alert_id`,
			event.StateCleared, now, e.ID, now, e.AlarmKey, event.StateActive).Scan(&alertID)
		if store.IsNoRows(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("events: clear alarm: %w", err)
		}
		return a.recover(ctx, tx, e, alertID)
	}
	var state, alertID string
	err := tx.QueryRow(ctx, `SELECT state, alert_id FROM alarms WHERE alarm_key = ?`, e.AlarmKey).Scan(&state, &alertID)
	found := err == nil
	if err != nil && !store.IsNoRows(err) {
		return fmt.Errorf("events: read alarm %s: %w", e.AlarmKey, err)
	}
	switch e.State {
	case event.StateActive:
		if found && state == event.StateActive {
			_, err := tx.Exec(ctx, `UPDATE alarms SET last_event_id = ?, updated_at = ? WHERE alarm_key = ?`, e.ID, now, e.AlarmKey)
			return err
		}
		return a.activate(ctx, tx, e, found)
	}
	return nil
}

// GroupKey is the condition an alarm belongs to: alarms of one group share one alert while it
// is not closed. Usually the alarm key itself; for a threshold on a sensor reading it is the
// device, the metric and the side of the limit, so the low and the high limit of one
// measurement (lel-low, lel-high) are one alert whose severity rises.
func GroupKey(e *event.Event) string {
	if e.Type == event.TypeSensorThreshold && e.Device != nil && e.Reading != nil && e.Reading.Limit != nil && e.Reading.Metric != "" {
		side := "above"
		if e.Reading.Value < *e.Reading.Limit {
			side = "below"
		}
		return e.Device.ID + "/" + e.Reading.Metric + "/" + side
	}
	return e.AlarmKey
}

// activate handles an alarm that becomes active: the group's alert not yet closed takes it (a
// new occurrence if the alert had recovered, a higher severity if the alarm is more severe);
// without one a new alert opens.
func (a *Alerts) activate(ctx context.Context, tx *Tx, e *event.Event, alarmExists bool) error {
	group := GroupKey(e)
	al, err := scanAlert(tx.QueryRow(ctx, `SELECT `+alertCols+` FROM alerts WHERE group_key = ? AND state <> ?
		ORDER BY opened_at DESC, id DESC LIMIT 1`, group, AlertClosed))
	if store.IsNoRows(err) {
		return a.open(ctx, tx, e, group, alarmExists)
	}
	if err != nil {
		return fmt.Errorf("events: find alert of %s: %w", group, err)
	}
	if err := a.bindAlarm(ctx, tx, e, al.ID, alarmExists); err != nil {
		return err
	}
	now := tx.Now()
	ms := now.UnixMilli()
	at := e.OccurredAt.UnixMilli()
	raise := event.SeverityRank(e.Severity) > event.SeverityRank(al.Severity)
	if al.AlarmActive && !raise {
		return nil // another alarm of the same condition, no worse: nothing new for a person
	}
	occ := al.Occurrences
	if !al.AlarmActive {
		occ++
	}
	msg, sev := al.Message, al.Severity
	if raise || !al.AlarmActive {
		msg = e.Message // the latest reading is the one to act on
	}
	if raise {
		sev = e.Severity
	}
	if _, err := tx.Exec(ctx, `UPDATE alerts SET alarm_active = ?, occurrences = ?, last_at = ?, recovered_at = 0, severity = ?,
		message = ?, updated_at = ? WHERE id = ?`, true, occ, at, sev, msg, ms, al.ID); err != nil {
		return fmt.Errorf("events: update alert %s: %w", al.ID, err)
	}
	src := *e
	src.Severity = sev
	if !al.AlarmActive {
		ref := event.AlertRef{ID: al.ID, State: al.State, Actor: "system", Audience: al.Audience, Occurrences: occ,
			Attachments: evidenceSums(e.Evidence)}
		ae := alertEvent(&src, "recurred", ref, now, fmt.Sprintf("再次发生（第 %d 次）：%s", occ, e.Message))
		ae.Evidence = e.Evidence
		if err := a.record(ctx, tx, ae, "recur", ""); err != nil {
			return err
		}
	}
	if raise {
		ref := event.AlertRef{ID: al.ID, State: al.State, Actor: "system", Audience: al.Audience, Occurrences: occ}
		ae := alertEvent(&src, "escalated", ref, now, fmt.Sprintf("告警升级为%s：%s", SeverityLabel(sev), e.Message))
		ae.Evidence = e.Evidence
		if err := a.record(ctx, tx, ae, "raise", ""); err != nil {
			return err
		}
	}
	return nil
}

// bindAlarm points the alarm at an alert and marks it active.
func (a *Alerts) bindAlarm(ctx context.Context, tx *Tx, e *event.Event, alertID string, alarmExists bool) error {
	ms := tx.Now().UnixMilli()
	var err error
	if alarmExists {
		_, err = tx.Exec(ctx, `UPDATE alarms SET state = ?, alert_id = ?, last_event_id = ?, activated_at = ?, updated_at = ? WHERE alarm_key = ?`,
			event.StateActive, alertID, e.ID, ms, ms, e.AlarmKey)
	} else {
		_, err = tx.Exec(ctx, `INSERT INTO alarms(alarm_key, state, alert_id, last_event_id, activated_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
			e.AlarmKey, event.StateActive, alertID, e.ID, ms, ms)
	}
	if err != nil {
		return fmt.Errorf("events: activate alarm %s: %w", e.AlarmKey, err)
	}
	return nil
}

// recover handles an alarm that cleared: when no alarm of its alert is active any more, the
// alert is marked recovered (已恢复), and closed if the type's policy says so.
func (a *Alerts) recover(ctx context.Context, tx *Tx, e *event.Event, alertID string) error {
	if alertID == "" {
		return nil
	}
	// The alert and how many of its alarms are still active, in one query.
	var active int
	al, err := scanAlert(scanAlso{tx.QueryRow(ctx, `SELECT `+alertCols+`,
		(SELECT COUNT(*) FROM alarms WHERE alert_id = ? AND state = ?) FROM alerts WHERE id = ?`,
		alertID, event.StateActive, alertID), &active})
	if store.IsNoRows(err) {
		return errs.E(errs.KindNotFound, "alert_not_found", "no alert %s", alertID)
	}
	if err != nil {
		return fmt.Errorf("events: read alert %s and its alarms: %w", alertID, err)
	}
	if active > 0 || !al.AlarmActive {
		return nil
	}
	now := tx.Now()
	if _, err := tx.Exec(ctx, `UPDATE alerts SET alarm_active = ?, recovered_at = ?, updated_at = ? WHERE id = ?`,
		false, e.OccurredAt.UnixMilli(), now.UnixMilli(), alertID); err != nil {
		return fmt.Errorf("events: recover alert %s: %w", alertID, err)
	}
	if al.State == AlertClosed {
		return nil
	}
	src := *al.Source
	ref := event.AlertRef{ID: alertID, State: al.State, Actor: "system", Audience: al.Audience, Occurrences: al.Occurrences}
	if err := a.record(ctx, tx, alertEvent(&src, "recovered", ref, now, "已恢复："+e.Message), "recover", ""); err != nil {
		return err
	}
	if !a.policy(al.Type).CloseOnClear {
		return nil
	}
	if _, err := tx.Exec(ctx, `UPDATE alerts SET state = ?, updated_at = ? WHERE id = ?`, AlertClosed, now.UnixMilli(), alertID); err != nil {
		return fmt.Errorf("events: close alert %s: %w", alertID, err)
	}
	ref.State = AlertClosed
	return a.record(ctx, tx, alertEvent(&src, "closed", ref, now, "已恢复，告警自动办结："+al.Message), "close", "")
}

// scanAlso scans a row into the given destinations and then into also (a column a query
// adds after those a scan function knows).
type scanAlso struct {
	r    rowScanner
	also any
}

func (s scanAlso) Scan(dest ...any) error { return s.r.Scan(append(dest, s.also)...) }

func evidenceSums(evs []event.Evidence) []string {
	var out []string
	for _, ev := range evs {
		if ev.SHA256 != "" {
			out = append(out, ev.SHA256)
		}
	}
	return out
}

// SeverityLabel is the Chinese name of a severity.
func SeverityLabel(s string) string {
	switch s {
	case "critical":
		return "严重"
	case "major":
		return "重要"
	case "minor":
		return "一般"
	case "info":
		return "提示"
	}
	return s
}

func (a *Alerts) open(ctx context.Context, tx *Tx, e *event.Event, group string, alarmExists bool) error {
	now := tx.Now()
	ms := now.UnixMilli()
	id := NewID(now)
	if err := a.bindAlarm(ctx, tx, e, id, alarmExists); err != nil {
		return err
	}
	var siteID, devID string
	if e.Site != nil {
		siteID = e.Site.ID
	}
	if e.Device != nil {
		devID = e.Device.ID
	}
	aud := a.policy(e.Type).Route
	at := e.OccurredAt.UnixMilli()
	if _, err := tx.Exec(ctx, `INSERT INTO alerts(id, alarm_key, state, type, severity, department, region_code, site_id, device_id,
		event_id, message, alarm_active, opened_at, updated_at, source, group_key, occurrences, first_at, last_at, audience)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, e.AlarmKey, AlertOpened, e.Type, e.Severity, e.Department, e.RegionCode(), siteID, devID, e.ID, e.Message, true,
		ms, ms, string(e.Raw), group, 1, at, at, aud); err != nil {
		return fmt.Errorf("events: open alert: %w", err)
	}
	ref := event.AlertRef{ID: id, State: AlertOpened, Actor: "system", Audience: aud, Occurrences: 1}
	ae := alertEvent(e, "opened", ref, now, e.Message)
	ae.Evidence = e.Evidence
	return a.record(ctx, tx, ae, "open", "")
}

// record appends an alert event and its step row.
func (a *Alerts) record(ctx context.Context, tx *Tx, ae event.Event, action, outcome string) error {
	out, err := tx.Append(ctx, ae)
	if err != nil {
		return err
	}
	ref := ae.Alert
	att, _ := json.Marshal(ref.Attachments)
	if ref.Attachments == nil {
		att = []byte("[]")
	}
	tx.steps = append(tx.steps, alertStep{ref.ID, tx.Now().UnixMilli(), ref.Actor, action, ref.State, ref.Note, outcome,
		string(att), out[0].ID})
	return nil
}

// alertStep is a row of alert_steps. A transaction keeps the steps it records and inserts
// them together before it commits (Tx.insertSteps): nothing reads them inside it, and on
// PostgreSQL a statement per step was a round trip per step under the log's writer lock.
type alertStep struct {
	alertID                                                   string
	at                                                        int64
	actor, action, state, note, outcome, attachments, eventID string
}

// insertSteps inserts the transaction's alert steps, in the order recorded.
func (t *Tx) insertSteps(ctx context.Context) error {
	for len(t.steps) > 0 {
		n := min(len(t.steps), 500)
		var q strings.Builder
		q.WriteString(`INSERT INTO alert_steps(alert_id, at, actor, action, state, note, outcome, attachments, event_id) VALUES `)
		args := make([]any, 0, 9*n)
		for i, s := range t.steps[:n] {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?)")
			args = append(args, s.alertID, s.at, s.actor, s.action, s.state, s.note, s.outcome, s.attachments, s.eventID)
		}
		if _, err := t.Exec(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("events: record alert steps: %w", err)
		}
		t.steps = t.steps[n:]
	}
	return nil
}

// alertEvent builds an alert.* event carrying the context of the alert's source event.
func alertEvent(src *event.Event, kind string, ref event.AlertRef, now time.Time, msg string) event.Event {
	return event.Event{
		Type:            "alert." + kind,
		Severity:        src.Severity,
		OccurredAt:      now,
		Site:            src.Site,
		Device:          src.Device,
		Department:      src.Department,
		SupervisionItem: src.SupervisionItem,
		Reading:         src.Reading,
		AlarmKey:        src.AlarmKey,
		Rule:            src.Rule,
		Message:         msg,
		Alert:           &ref,
	}
}

var transitions = map[string]struct {
	from  []string
	to    string
	event string
	verb  string
}{
	"claim":    {[]string{AlertOpened}, AlertClaimed, "claimed", "已认领"},
	"handle":   {[]string{AlertClaimed, AlertHandled}, AlertHandled, "handled", "已处办"},
	"feedback": {[]string{AlertHandled}, AlertFedBack, "fed_back", "已反馈"},
	"close":    {[]string{AlertFedBack}, AlertClosed, "closed", "已办结"},
}

// Claim (认领) takes an opened alert.
func (a *Alerts) Claim(ctx context.Context, sc devices.Scope, id string, act Action) (Alert, error) {
	return a.transition(ctx, sc, id, "claim", act)
}

// Handle (处办) records handling of a claimed alert, with a note and attachments; it may be
// repeated.
func (a *Alerts) Handle(ctx context.Context, sc devices.Scope, id string, act Action) (Alert, error) {
	return a.transition(ctx, sc, id, "handle", act)
}

// Feedback (反馈) reports the outcome of a handled alert.
func (a *Alerts) Feedback(ctx context.Context, sc devices.Scope, id string, act Action) (Alert, error) {
	return a.transition(ctx, sc, id, "feedback", act)
}

// Close ends an alert that has been reported back on.
func (a *Alerts) Close(ctx context.Context, sc devices.Scope, id string, act Action) (Alert, error) {
	return a.transition(ctx, sc, id, "close", act)
}

func (a *Alerts) transition(ctx context.Context, sc devices.Scope, id, action string, act Action) (Alert, error) {
	tr := transitions[action]
	if strings.TrimSpace(act.Actor) == "" {
		return Alert{}, errs.E(errs.KindInvalid, "actor_required", "an alert %s needs the acting user", action)
	}
	if len(act.Note) > event.MaxText {
		return Alert{}, errs.E(errs.KindInvalid, "note_too_long", "note longer than %d bytes", event.MaxText)
	}
	for _, s := range act.Attachments {
		if !event.IsHex64(s) {
			return Alert{}, errs.E(errs.KindInvalid, "invalid_attachment", "attachment %q is not an evidence sha256", s)
		}
	}
	var outcome Outcome
	if action == "feedback" {
		var err error
		if outcome, err = ParseOutcome(act.Outcome); err != nil {
			return Alert{}, err
		}
	} else if act.Outcome != "" {
		return Alert{}, errs.E(errs.KindInvalid, "unexpected_outcome", "an outcome is given with feedback, not with %s", action)
	}
	var res Alert
	err := a.Log.InTx(ctx, func(tx *Tx) error {
		al, err := getAlert(ctx, tx.QueryRow, id)
		if err != nil {
			return err
		}
		if !sc.AllowsSite(devices.Site{Department: al.Department, RegionCode: al.RegionCode}) {
			return errs.E(errs.KindNotFound, "alert_not_found", "no alert %s", id)
		}
		ok := false
		for _, f := range tr.from {
			ok = ok || al.State == f
		}
		if !ok && action == "claim" && al.ClaimedBy != "" {
			// Two officers claiming at once (on one centre instance or two): the loser learns who won
			// (same code as before, for clients that check it).
			return errs.E(errs.KindConflict, "invalid_transition", "alert %s is already claimed by %s", id, al.ClaimedBy)
		}
		if !ok {
			return errs.E(errs.KindConflict, "invalid_transition", "alert %s is %s; %s needs it %s", id, al.State, action, strings.Join(tr.from, " or "))
		}
		if (action == "handle" || action == "feedback") && al.ClaimedBy != act.Actor && !act.Override {
			return errs.E(errs.KindForbidden, "not_claimant", "alert %s is claimed by %s", id, al.ClaimedBy)
		}
		claimedBy := al.ClaimedBy
		if action == "claim" {
			claimedBy = act.Actor
		}
		now := tx.Now()
		r, err := tx.Exec(ctx, `UPDATE alerts SET state = ?, claimed_by = ?, outcome = ?, updated_at = ? WHERE id = ? AND state = ?`,
			tr.to, claimedBy, coalesce(outcome.Code, al.Outcome), now.UnixMilli(), id, al.State)
		if err != nil {
			return fmt.Errorf("events: update alert: %w", err)
		}
		if n, _ := r.RowsAffected(); n != 1 {
			return errs.E(errs.KindConflict, "invalid_transition", "alert %s changed meanwhile", id)
		}
		ref := event.AlertRef{ID: id, State: tr.to, Actor: act.Actor, Note: act.Note, Outcome: outcome.Code,
			OutcomeLabel: outcome.Label, Attachments: act.Attachments, Audience: al.Audience, Occurrences: al.Occurrences}
		msg := fmt.Sprintf("告警%s（%s）：%s", tr.verb, act.Actor, al.Message)
		if outcome.Label != "" {
			msg = fmt.Sprintf("告警%s（%s，%s）：%s", tr.verb, act.Actor, outcome.Label, al.Message)
		}
		if err := a.record(ctx, tx, alertEvent(al.Source, tr.event, ref, now, msg), action, outcome.Code); err != nil {
			return err
		}
		al.State, al.ClaimedBy, al.Outcome, al.UpdatedAt = tr.to, claimedBy, coalesce(outcome.Code, al.Outcome), now.UTC()
		res = al
		return nil
	})
	return res, err
}

func coalesce(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

const alertCols = `id, alarm_key, state, type, severity, department, region_code, site_id, device_id, event_id, message,
	claimed_by, outcome, escalation_level, alarm_active, opened_at, updated_at, source, group_key, occurrences, first_at, last_at,
	recovered_at, audience`

func scanAlert(r rowScanner) (Alert, error) {
	var al Alert
	var opened, updated, first, last, recovered int64
	var src string
	err := r.Scan(&al.ID, &al.AlarmKey, &al.State, &al.Type, &al.Severity, &al.Department, &al.RegionCode, &al.SiteID,
		&al.DeviceID, &al.EventID, &al.Message, &al.ClaimedBy, &al.Outcome, &al.EscalationLevel, &al.AlarmActive,
		&opened, &updated, &src, &al.GroupKey, &al.Occurrences, &first, &last, &recovered, &al.Audience)
	if err != nil {
		return Alert{}, err
	}
	al.OpenedAt, al.UpdatedAt = time.UnixMilli(opened).UTC(), time.UnixMilli(updated).UTC()
	al.FirstAt, al.LastAt = time.UnixMilli(first).UTC(), time.UnixMilli(last).UTC()
	if recovered > 0 && !al.AlarmActive {
		t := time.UnixMilli(recovered).UTC()
		al.RecoveredAt = &t
	}
	var e event.Event
	if json.Unmarshal([]byte(src), &e) == nil {
		e.Raw = json.RawMessage(src)
		al.Source = &e
	} else {
		al.Source = &event.Event{ID: al.EventID, Type: al.Type}
	}
	return al, nil
}

func getAlert(ctx context.Context, qr func(context.Context, string, ...any) *sql.Row, id string) (Alert, error) {
	al, err := scanAlert(qr(ctx, `SELECT `+alertCols+` FROM alerts WHERE id = ?`, id))
	if store.IsNoRows(err) {
		return Alert{}, errs.E(errs.KindNotFound, "alert_not_found", "no alert %s", id)
	}
	if err != nil {
		return Alert{}, fmt.Errorf("events: read alert %s: %w", id, err)
	}
	return al, nil
}

// Get returns an alert with its steps; an alert outside sc is reported as not found.
func (a *Alerts) Get(ctx context.Context, sc devices.Scope, id string) (Alert, error) {
	al, err := getAlert(ctx, a.Log.DB.QueryRow, id)
	if err != nil {
		return Alert{}, err
	}
	if !sc.AllowsSite(devices.Site{Department: al.Department, RegionCode: al.RegionCode}) {
		return Alert{}, errs.E(errs.KindNotFound, "alert_not_found", "no alert %s", id)
	}
	rows, err := a.Log.DB.Query(ctx, `SELECT at, actor, action, state, note, outcome, attachments, event_id FROM alert_steps
		WHERE alert_id = ? ORDER BY id`, id)
	if err != nil {
		return Alert{}, fmt.Errorf("events: read alert steps: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s Step
		var at int64
		var att string
		if err := rows.Scan(&at, &s.Actor, &s.Action, &s.State, &s.Note, &s.Outcome, &att, &s.EventID); err != nil {
			return Alert{}, err
		}
		s.At = time.UnixMilli(at).UTC()
		_ = json.Unmarshal([]byte(att), &s.Attachments)
		al.Steps = append(al.Steps, s)
	}
	return al, rows.Err()
}

// AlertFilter selects alerts in List. Zero fields do not filter.
type AlertFilter struct {
	State    string
	AlarmKey string
	// Audiences keeps alerts for these audiences (Reader.Audiences).
	Audiences []string
	Limit     int // default 200, at most 5000
}

// List returns alerts within sc, newest first.
func (a *Alerts) List(ctx context.Context, sc devices.Scope, f AlertFilter) ([]Alert, error) {
	q := `SELECT ` + alertCols + ` FROM alerts WHERE 1 = 1`
	var args []any
	if f.State != "" {
		q += ` AND state = ?`
		args = append(args, f.State)
	}
	if f.AlarmKey != "" {
		q += ` AND alarm_key = ?`
		args = append(args, f.AlarmKey)
	}
	if len(f.Audiences) > 0 {
		q += ` AND audience IN (` + strings.TrimSuffix(strings.Repeat("?, ", len(f.Audiences)), ", ") + `)`
		for _, a := range f.Audiences {
			args = append(args, a)
		}
	}
	q, args = scopeSQL(sc, q, args)
	if f.Limit <= 0 {
		f.Limit = 200
	}
	q += ` ORDER BY opened_at DESC, id DESC LIMIT ?`
	args = append(args, min(f.Limit, 5000))
	rows, err := a.Log.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("events: list alerts: %w", err)
	}
	defer rows.Close()
	var out []Alert
	for rows.Next() {
		al, err := scanAlert(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, al)
	}
	return out, rows.Err()
}

// scopeSQL mirrors devices.Scope.AllowsSite on the alerts table: blank entries match nothing.
func scopeSQL(sc devices.Scope, q string, args []any) (string, []any) {
	if len(sc.Departments) > 0 {
		var in []string
		for _, d := range sc.Departments {
			if d = strings.TrimSpace(d); d != "" {
				in = append(in, "?")
				args = append(args, d)
			}
		}
		if len(in) == 0 {
			q += ` AND 1 = 0`
		} else {
			q += ` AND department IN (` + strings.Join(in, ", ") + `)`
		}
	}
	if len(sc.Regions) > 0 {
		var or []string
		for _, r := range sc.Regions {
			if r = devices.NormalizeCode(r); r != "" {
				or = append(or, "substr(region_code, 1, ?) = ?")
				args = append(args, len(r), r)
			}
		}
		if len(or) == 0 {
			q += ` AND 1 = 0`
		} else {
			q += ` AND (` + strings.Join(or, " OR ") + `)`
		}
	}
	return q, args
}

// levels returns the escalation thresholds for an alert.
func (a *Alerts) levels(severity, department string) []time.Duration {
	best, bestScore := -1, -1
	for i, r := range a.Escalation {
		if r.Severity != "" && r.Severity != severity || r.Department != "" && r.Department != department {
			continue
		}
		score := 0
		if r.Department != "" {
			score += 2
		}
		if r.Severity != "" {
			score++
		}
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	if best < 0 {
		return nil
	}
	return a.Escalation[best].After
}

// EscalateDue appends alert.escalated for every opened (unclaimed) alert that has passed a
// new escalation level, once per alert and level. It returns how many events it appended.
func (a *Alerts) EscalateDue(ctx context.Context, now time.Time) (int, error) {
	rows, err := a.Log.DB.Query(ctx, `SELECT id, severity, department, opened_at, escalation_level FROM alerts WHERE state = ?`, AlertOpened)
	if err != nil {
		return 0, fmt.Errorf("events: find unclaimed alerts: %w", err)
	}
	type due struct {
		id         string
		from, to   int
		openedAtMs int64
	}
	var dues []due
	for rows.Next() {
		var id, sev, dep string
		var opened int64
		var level int
		if err := rows.Scan(&id, &sev, &dep, &opened, &level); err != nil {
			rows.Close()
			return 0, err
		}
		target := 0
		for _, d := range a.levels(sev, dep) {
			if now.Sub(time.UnixMilli(opened)) >= d {
				target++
			}
		}
		if target > level {
			dues = append(dues, due{id, level, target, opened})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	n := 0
	for _, d := range dues {
		err := a.Log.InTx(ctx, func(tx *Tx) error {
			r, err := tx.Exec(ctx, `UPDATE alerts SET escalation_level = ?, updated_at = ? WHERE id = ? AND escalation_level = ? AND state = ?`,
				d.to, tx.Now().UnixMilli(), d.id, d.from, AlertOpened)
			if err != nil {
				return err
			}
			if k, _ := r.RowsAffected(); k != 1 {
				return nil // claimed or escalated meanwhile
			}
			al, err := getAlert(ctx, tx.QueryRow, d.id)
			if err != nil {
				return err
			}
			for lvl := d.from + 1; lvl <= d.to; lvl++ {
				msg := fmt.Sprintf("告警超时未认领，升级至第%d级：%s", lvl, al.Message)
				ref := event.AlertRef{ID: d.id, State: AlertOpened, Actor: "system", Level: lvl, Audience: al.Audience,
					Occurrences: al.Occurrences}
				if err := a.record(ctx, tx, alertEvent(al.Source, "escalated", ref, now, msg), "escalate", ""); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Run escalates overdue alerts every EscalationInterval until ctx ends.
func (a *Alerts) Run(ctx context.Context) {
	t := time.NewTicker(a.EscalationInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if _, err := a.EscalateDue(ctx, now); err != nil && ctx.Err() == nil {
				a.Logger.Warn("alert escalation failed", "err", err)
			}
		}
	}
}

var sha256Hex = regexp.MustCompile(`[0-9a-f]{64}`)

// OpenEvidence returns the sha256 of every evidence file that an alert not yet closed refers
// to: its source event's snapshots and the attachments of its steps. The evidence store's
// retention keeps these files however old they are.
func (a *Alerts) OpenEvidence(ctx context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	for _, q := range []string{
		`SELECT source FROM alerts WHERE state <> 'closed'`,
		`SELECT s.attachments FROM alert_steps s JOIN alerts a ON a.id = s.alert_id WHERE a.state <> 'closed'`,
	} {
		if err := a.collectSHA256s(ctx, out, q); err != nil {
			return nil, fmt.Errorf("events: evidence of open alerts: %w", err)
		}
	}
	return out, nil
}

// collectSHA256s adds every sha256 found in the text column q selects to out.
func (a *Alerts) collectSHA256s(ctx context.Context, out map[string]bool, q string, args ...any) error {
	rows, err := a.Log.DB.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	for rows.Next() {
		var text string
		if err := rows.Scan(&text); err != nil {
			rows.Close()
			return err
		}
		for _, sum := range sha256Hex.FindAllString(text, -1) {
			out[sum] = true
		}
	}
	return rows.Close()
}
