package uplink

import (
	"context"
	"fmt"
	"time"

	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/errs"
)

// DeadLetter is an event a receiver rejected; it stays here until re-sent successfully.
type DeadLetter struct {
	Uplink     string     `json:"uplink"`
	EventID    string     `json:"event_id"`
	Seq        int64      `json:"seq"`
	Reason     string     `json:"reason"`
	At         time.Time  `json:"at"`
	Attempts   int        `json:"attempts"`
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
}

// DeadLetters lists the uplink's dead letters, unresolved first unless all is set.
func (u *Uplink) DeadLetters(ctx context.Context, all bool, limit int) ([]DeadLetter, error) {
	if limit <= 0 || limit > 5000 {
		limit = 500
	}
	q := `SELECT event_id, seq, reason, at, attempts, resolved_at FROM uplink_dead_letters WHERE uplink = ?`
	if !all {
		q += ` AND resolved_at = 0`
	}
	q += ` ORDER BY seq LIMIT ?`
	rows, err := u.Log.DB.Query(ctx, q, u.Name, limit)
	if err != nil {
		return nil, fmt.Errorf("uplink %s: list dead letters: %w", u.Name, err)
	}
	defer rows.Close()
	var out []DeadLetter
	for rows.Next() {
		d := DeadLetter{Uplink: u.Name}
		var at, resolved int64
		if err := rows.Scan(&d.EventID, &d.Seq, &d.Reason, &at, &d.Attempts, &resolved); err != nil {
			return nil, err
		}
		d.At = time.UnixMilli(at).UTC()
		if resolved != 0 {
			t := time.UnixMilli(resolved).UTC()
			d.ResolvedAt = &t
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// ResendResult tells an admin what a re-send achieved.
type ResendResult struct {
	Delivered []string    `json:"delivered"`
	Rejected  []Rejection `json:"rejected"`
}

// Resend sends dead-lettered events again, now, in one attempt per batch (ids empty: all
// unresolved). Delivered ones are resolved; rejected ones stay with the new reason. A transport
// failure is returned as errs.KindUnavailable and changes nothing.
func (u *Uplink) Resend(ctx context.Context, ids []string) (ResendResult, error) {
	var res ResendResult
	if len(ids) == 0 {
		dls, err := u.DeadLetters(ctx, false, 5000)
		if err != nil {
			return res, err
		}
		for _, d := range dls {
			ids = append(ids, d.EventID)
		}
	}
	var evs []event.Event
	for _, id := range ids {
		var n int
		if err := u.Log.DB.QueryRow(ctx, `SELECT COUNT(*) FROM uplink_dead_letters WHERE uplink = ? AND event_id = ? AND resolved_at = 0`,
			u.Name, id).Scan(&n); err != nil {
			return res, err
		}
		if n == 0 {
			return res, errs.E(errs.KindNotFound, "dead_letter_not_found", "uplink %s has no unresolved dead letter for event %s", u.Name, id)
		}
		e, err := u.Log.Get(ctx, id)
		if err != nil {
			return res, err
		}
		evs = append(evs, e)
	}
	for len(evs) > 0 {
		n := min(len(evs), u.BatchSize)
		batch := evs[:n]
		evs = evs[n:]
		rejected, err := u.send(ctx, batch)
		if err != nil {
			return res, errs.Wrap(errs.KindUnavailable, "uplink_unavailable", err, "uplink %s: re-send failed", u.Name)
		}
		rej := map[string]string{}
		for _, r := range rejected {
			rej[r.ID] = r.Reason
		}
		now := u.Now().UnixMilli()
		for _, e := range batch {
			if reason, ok := rej[e.ID]; ok {
				res.Rejected = append(res.Rejected, Rejection{ID: e.ID, Reason: reason})
				_, err = u.Log.DB.Exec(ctx, `UPDATE uplink_dead_letters SET reason = ?, at = ?, attempts = attempts + 1 WHERE uplink = ? AND event_id = ?`,
					truncate(reason, 500), now, u.Name, e.ID)
			} else {
				res.Delivered = append(res.Delivered, e.ID)
				_, err = u.Log.DB.Exec(ctx, `UPDATE uplink_dead_letters SET resolved_at = ? WHERE uplink = ? AND event_id = ?`, now, u.Name, e.ID)
				u.update(func(st *Status) { st.DeadLetters--; st.Delivered++ })
			}
			if err != nil {
				return res, fmt.Errorf("uplink %s: update dead letter: %w", u.Name, err)
			}
		}
	}
	return res, nil
}
