package events

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/offsite-gw/offsite/events/event"
)

// AlertEvidence is one evidence entry of an alert (the detail's "clips"): the evidence of its
// source event and of every evidence.added event naming one of its events, with the fields a
// clip adds (docs/contracts.md §9). EventID is the event that carries the entry; RefEventID,
// for an evidence.added, the event the clip is of.
type AlertEvidence struct {
	Kind       string     `json:"kind"`
	URL        string     `json:"url"`
	SHA256     string     `json:"sha256"`
	MIME       string     `json:"mime,omitempty"`
	Codec      string     `json:"codec,omitempty"`
	CameraID   string     `json:"camera_id,omitempty"`
	Start      *time.Time `json:"start,omitempty"`
	End        *time.Time `json:"end,omitempty"`
	EventAt    *time.Time `json:"event_at,omitempty"`
	Complete   *bool      `json:"complete,omitempty"`
	Note       string     `json:"note,omitempty"`
	EventID    string     `json:"event_id"`
	RefEventID string     `json:"ref_event_id,omitempty"`
}

// carrier is the part of a stored event that carries evidence.
type carrier struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	OccurredAt time.Time       `json:"occurred_at"`
	RefEventID string          `json:"ref_event_id"`
	Evidence   []AlertEvidence `json:"evidence"`
}

// maxAlertClips bounds the evidence.added events looked at for one alert.
const maxAlertClips = 2000

// Evidence returns al's evidence: its source event's entries, then those of every
// evidence.added event whose ref_event_id is one of the alert's events (its source event,
// or an event of one of its alarms logged while the alert was not closed), each sha256 once.
func (a *Alerts) Evidence(ctx context.Context, al Alert) ([]AlertEvidence, error) {
	out := []AlertEvidence{}
	seen := map[string]bool{}
	add := func(c carrier) {
		for _, ev := range c.Evidence {
			if ev.SHA256 == "" || seen[ev.SHA256] {
				continue
			}
			seen[ev.SHA256] = true
			ev.EventID, ev.RefEventID = c.ID, c.RefEventID
			if ev.EventAt == nil && c.RefEventID == "" && !c.OccurredAt.IsZero() {
				t := c.OccurredAt
				ev.EventAt = &t
			}
			out = append(out, ev)
		}
	}
	if al.Source != nil && len(al.Source.Raw) > 0 {
		var c carrier
		if json.Unmarshal(al.Source.Raw, &c) == nil {
			add(c)
		}
	}
	from, err := a.Log.SeqOf(ctx, al.EventID)
	if err != nil {
		return out, nil // the source event is not in this log (yet): no clips can name it
	}
	until := int64(0)
	if al.State == AlertClosed {
		for _, st := range al.Steps {
			if st.Action == "close" {
				if s, err := a.Log.SeqOf(ctx, st.EventID); err == nil {
					until = s
				}
			}
		}
	}
	mine, err := a.alertEventIDs(ctx, al, from, until)
	if err != nil {
		return nil, err
	}
	q := `SELECT body FROM events WHERE type = ? AND seq > ?`
	args := []any{event.TypeEvidenceAdded, from}
	if al.SiteID != "" {
		q += ` AND site_id = ?`
		args = append(args, al.SiteID)
	}
	rows, err := a.Log.DB.Query(ctx, q+` ORDER BY seq LIMIT ?`, append(args, maxAlertClips)...)
	if err != nil {
		return nil, fmt.Errorf("events: clips of alert %s: %w", al.ID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, err
		}
		var c carrier
		if json.Unmarshal([]byte(body), &c) != nil || !mine[c.RefEventID] {
			continue
		}
		add(c)
	}
	return out, rows.Err()
}

// alertEventIDs are the ids of the events an alert stands for: its source event and the
// events of its alarms logged from the source on (until the alert closed, if it did).
func (a *Alerts) alertEventIDs(ctx context.Context, al Alert, from, until int64) (map[string]bool, error) {
	ids := map[string]bool{al.EventID: true}
	keys := map[string]bool{}
	if al.AlarmKey != "" {
		keys[al.AlarmKey] = true
	}
	rows, err := a.Log.DB.Query(ctx, `SELECT alarm_key FROM alarms WHERE alert_id = ?`, al.ID)
	if err != nil {
		return nil, fmt.Errorf("events: alarms of alert %s: %w", al.ID, err)
	}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return nil, err
		}
		keys[k] = true
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return ids, nil
	}
	var in []string
	args := []any{}
	for k := range keys {
		in = append(in, "?")
		args = append(args, k)
	}
	q := `SELECT id FROM events WHERE alarm_key IN (` + strings.Join(in, ", ") + `) AND seq >= ? AND type NOT LIKE 'alert.%'`
	args = append(args, from)
	if until > 0 {
		q += ` AND seq <= ?`
		args = append(args, until)
	}
	rows, err = a.Log.DB.Query(ctx, q+` LIMIT 5000`, args...)
	if err != nil {
		return nil, fmt.Errorf("events: events of alert %s: %w", al.ID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids[id] = true
	}
	return ids, rows.Err()
}
