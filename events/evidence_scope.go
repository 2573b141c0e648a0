package events

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/errs"
)

// EvidenceVisible reports whether evidence file sum (a lower-case sha256) is attached to an
// event or an alert that a caller with scope sc may see: an event that carries it (snapshots
// of a detection), an alert whose source event carries it, an alert with a step that has it
// as an attachment, or — for a clip announced by an evidence.added event — the event that
// evidence.added names in ref_event_id (scope and type are that event's). typeOK, when set, further limits which event and alert types count (a
// maintainer sees device health only). Evidence attached to nothing is visible to nobody here;
// administrators are let through by the caller.
func (l *Log) EvidenceVisible(ctx context.Context, sc devices.Scope, sum string, typeOK func(string) bool) (bool, error) {
	if !event.IsHex64(sum) {
		return false, nil
	}
	like := "%" + sum + "%" // hex only: nothing to escape
	queries := []struct {
		q    string
		args []any
	}{
		{`SELECT type FROM events WHERE type <> '` + event.TypeEvidenceAdded + `' AND body LIKE ?`, []any{like}},
		{`SELECT type FROM alerts WHERE (source LIKE ? OR id IN (SELECT alert_id FROM alert_steps WHERE attachments LIKE ?))`, []any{like, like}},
	}
	for _, qq := range queries {
		q, args := scopeSQL(sc, qq.q, qq.args)
		rows, err := l.DB.Query(ctx, q+` LIMIT 100`, args...)
		if err != nil {
			return false, fmt.Errorf("events: evidence visibility: %w", err)
		}
		visible := false
		for rows.Next() {
			var typ string
			if err := rows.Scan(&typ); err != nil {
				rows.Close()
				return false, err
			}
			if typeOK == nil || typeOK(typ) {
				visible = true
				break
			}
		}
		if err := rows.Close(); err != nil {
			return false, err
		}
		if visible {
			return true, nil
		}
	}
	return l.clipVisible(ctx, sc, sum, typeOK)
}

// clipVisible: evidence.added events carrying sum whose referenced event sc and typeOK allow.
func (l *Log) clipVisible(ctx context.Context, sc devices.Scope, sum string, typeOK func(string) bool) (bool, error) {
	rows, err := l.DB.Query(ctx, `SELECT body FROM events WHERE type = ? AND body LIKE ? LIMIT 100`, event.TypeEvidenceAdded, "%"+sum+"%")
	if err != nil {
		return false, fmt.Errorf("events: clip visibility: %w", err)
	}
	var refs []string
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			rows.Close()
			return false, err
		}
		var e struct {
			Ref string `json:"ref_event_id"`
		}
		if json.Unmarshal([]byte(body), &e) == nil && e.Ref != "" {
			refs = append(refs, e.Ref)
		}
	}
	if err := rows.Close(); err != nil {
		return false, err
	}
	for _, id := range refs {
		ref, err := l.Get(ctx, id)
		if errs.Is(err, errs.KindNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		if ref.Type != event.TypeEvidenceAdded && ScopeAllows(sc, &ref) && (typeOK == nil || typeOK(ref.Type)) {
			return true, nil
		}
	}
	return false, nil
}
