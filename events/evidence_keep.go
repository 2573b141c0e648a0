package events

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/offsite-gw/offsite/events/event"
)

// KeptEvidence returns the sha256 of every evidence file retention must keep (up to
// EvidenceStore.KeepFor): what OpenEvidence returns, the evidence of alerts closed with the
// outcome 立案 (case_filed), and the clips (evidence.added events) of the events of both.
func (a *Alerts) KeptEvidence(ctx context.Context) (map[string]bool, error) {
	out, err := a.OpenEvidence(ctx)
	if err != nil {
		return nil, err
	}
	// the events of kept alerts: their source event, and every event with the alert's alarm
	// key within its first and last occurrence
	type span struct {
		key         string
		first, last int64
	}
	refs := map[string]bool{}
	var spans []span
	rows, err := a.Log.DB.Query(ctx, `SELECT event_id, alarm_key, first_at, last_at, source FROM alerts
		WHERE state <> 'closed' OR outcome = 'case_filed'`)
	if err != nil {
		return nil, fmt.Errorf("events: evidence to keep: %w", err)
	}
	for rows.Next() {
		var id, key, source string
		var first, last int64
		if err := rows.Scan(&id, &key, &first, &last, &source); err != nil {
			rows.Close()
			return nil, err
		}
		refs[id] = true
		for _, sum := range sha256Hex.FindAllString(source, -1) {
			out[sum] = true
		}
		if key != "" {
			spans = append(spans, span{key, first, last})
		}
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := a.collectSHA256s(ctx, out, `SELECT s.attachments FROM alert_steps s JOIN alerts a ON a.id = s.alert_id WHERE a.outcome = 'case_filed'`); err != nil {
		return nil, fmt.Errorf("events: evidence to keep: %w", err)
	}
	for _, sp := range spans {
		rows, err := a.Log.DB.Query(ctx, `SELECT id FROM events WHERE alarm_key = ? AND occurred_at >= ? AND occurred_at <= ?`,
			sp.key, sp.first, sp.last)
		if err != nil {
			return nil, fmt.Errorf("events: evidence to keep: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			refs[id] = true
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
	}
	rows, err = a.Log.DB.Query(ctx, `SELECT body FROM events WHERE type = ?`, event.TypeEvidenceAdded)
	if err != nil {
		return nil, fmt.Errorf("events: evidence to keep: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, err
		}
		var e struct {
			Ref      string           `json:"ref_event_id"`
			Evidence []event.Evidence `json:"evidence"`
		}
		if json.Unmarshal([]byte(body), &e) != nil || !refs[e.Ref] {
			continue
		}
		for _, ev := range e.Evidence {
			out[strings.ToLower(ev.SHA256)] = true
		}
	}
	return out, rows.Err()
}
