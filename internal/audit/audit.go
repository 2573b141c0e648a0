// Package audit keeps the security audit log (等级保护): every login, every change, every view
// of a camera or download — who, what, when, from where, and the result. Entries are only ever
// appended, each with an SM3 hash chained to the one before (chain.go), so that a changed,
// inserted or removed record shows in Verify; retention (Prune) removes the oldest records and
// keeps the hash of the last one removed as the chain's anchor.
package audit

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/offsite-gw/offsite/internal/store"
)

// Entry is one audit record.
type Entry struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`  // username, or "system"
	Role   string    `json:"role"`   // actor's role at the time
	Action string    `json:"action"` // e.g. auth.login, site.create, device.delete, camera.view
	Target string    `json:"target"` // the object acted on, e.g. a device id
	IP     string    `json:"ip"`
	Result string    `json:"result"` // ok, denied, failed, locked …
	Detail string    `json:"detail"`
	// Hash is the record's SM3 chain hash (hex); PrevHash is the hash of the record before it
	// (the anchor for the first record kept). Set by Record.
	PrevHash string `json:"prev_hash,omitempty"`
	Hash     string `json:"hash,omitempty"`
}

// Filter selects entries in List. Zero fields do not filter.
type Filter struct {
	Actor  string
	Action string // exact, or a prefix ending in "." (e.g. "auth.")
	From   time.Time
	To     time.Time
	Limit  int // default 200, at most 5000
}

// Log appends to and reads the audit table. Any number of Logs may share one database (and two
// processes one PostgreSQL): appends are serialized on the chain head row.
type Log struct {
	DB     *store.DB
	Logger *slog.Logger
}

// Record appends e. A failure to audit is returned and also logged, because a missing audit
// record is itself a security event.
func (l *Log) Record(ctx context.Context, e Entry) error {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	if e.Result == "" {
		e.Result = "ok"
	}
	err := l.appendChained(context.WithoutCancel(ctx), &e)
	if err != nil {
		if l.Logger != nil {
			l.Logger.Error("audit record failed", "action", e.Action, "actor", e.Actor, "target", e.Target, "err", err)
		}
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// List returns entries newest first.
func (l *Log) List(ctx context.Context, f Filter) ([]Entry, error) {
	q := `SELECT ` + entryColumns + ` FROM audit WHERE 1=1`
	var args []any
	if f.Actor != "" {
		q += ` AND actor = ?`
		args = append(args, f.Actor)
	}
	if f.Action != "" {
		if f.Action[len(f.Action)-1] == '.' {
			q += ` AND action LIKE ?`
			args = append(args, f.Action+"%")
		} else {
			q += ` AND action = ?`
			args = append(args, f.Action)
		}
	}
	if !f.From.IsZero() {
		q += ` AND at >= ?`
		args = append(args, f.From.UnixMilli())
	}
	if !f.To.IsZero() {
		q += ` AND at <= ?`
		args = append(args, f.To.UnixMilli())
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 200
	}
	if limit > 5000 {
		limit = 5000
	}
	q += fmt.Sprintf(` ORDER BY id DESC LIMIT %d`, limit)
	rows, err := l.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	defer rows.Close()
	out := []Entry{}
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
