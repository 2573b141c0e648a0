package events

import (
	"context"
	"fmt"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events/event"
)

// EvidenceVisible reports whether evidence file sum (a lower-case sha256) is attached to an
// event or an alert that a caller with scope sc may see: an event that carries it (snapshots
// of a detection), an alert whose source event carries it, or an alert with a step that has it
// as an attachment. typeOK, when set, further limits which event and alert types count (a
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
		{`SELECT type FROM events WHERE body LIKE ?`, []any{like}},
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
	return false, nil
}
