package audit

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/emmansun/gmsm/sm3"

	"github.com/offsite-gw/offsite/internal/store"
)

// entryColumns are the audit columns in the order scanEntry reads them.
const entryColumns = `id, at, actor, role, action, target, ip, result, detail, prev_hash, hash`

func scanEntry(sc interface{ Scan(...any) error }) (Entry, error) {
	var e Entry
	var at int64
	if err := sc.Scan(&e.ID, &at, &e.Actor, &e.Role, &e.Action, &e.Target, &e.IP, &e.Result, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
		return e, err
	}
	e.At = time.UnixMilli(at)
	return e, nil
}

// ChainHash is the SM3 hash (hex) of e's content and prev, the hash of the record before it.
// Every field is length-prefixed, so no two different records hash alike by moving text from
// one field to the next. The id is not hashed: the chain itself fixes the order.
func ChainHash(prev string, e Entry) string {
	h := sm3.New()
	field := func(s string) {
		h.Write([]byte(strconv.Itoa(len(s))))
		h.Write([]byte{':'})
		h.Write([]byte(s))
		h.Write([]byte{'\n'})
	}
	field("offsite-audit-v1")
	field(prev)
	field(strconv.FormatInt(e.At.UnixMilli(), 10))
	for _, s := range []string{e.Actor, e.Role, e.Action, e.Target, e.IP, e.Result, e.Detail} {
		field(s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// appendLocks serialize appends to one database handle within the process, so that writers
// queue here rather than on the database's lock; the chain head row, locked in the
// transaction, serializes handles and processes.
var appendLocks sync.Map // *store.DB → *sync.Mutex

func appendLock(db *store.DB) *sync.Mutex {
	m, _ := appendLocks.LoadOrStore(db, &sync.Mutex{})
	return m.(*sync.Mutex)
}

// chainHead is the audit_chain row.
type chainHead struct {
	headID, anchorID, anchorAt, legacyThrough int64
	headHash, anchorHash                      string
}

// lockHead reads the chain head in tx and, on PostgreSQL, locks it until tx ends; on SQLite
// the transaction already holds the database's write lock (_txlock=immediate).
func lockHead(ctx context.Context, db *store.DB, tx *store.Tx) (chainHead, error) {
	q := `SELECT head_id, head_hash, anchor_id, anchor_hash, anchor_at, legacy_through FROM audit_chain WHERE id = 1`
	if db.Dialect == store.Postgres {
		q += ` FOR UPDATE`
	}
	var h chainHead
	err := tx.QueryRow(ctx, q).Scan(&h.headID, &h.headHash, &h.anchorID, &h.anchorHash, &h.anchorAt, &h.legacyThrough)
	if err != nil {
		return h, fmt.Errorf("read chain head: %w", err)
	}
	return h, nil
}

// appendChained inserts e after the chain head and moves the head, in one transaction.
func (l *Log) appendChained(ctx context.Context, e *Entry) error {
	mu := appendLock(l.DB)
	mu.Lock()
	defer mu.Unlock()
	return l.DB.InTx(ctx, func(tx *store.Tx) error {
		h, err := lockHead(ctx, l.DB, tx)
		if err != nil {
			return err
		}
		if h.headID == 0 && h.legacyThrough > 0 {
			if h.headID, h.headHash, err = chainLegacy(ctx, tx, h.legacyThrough); err != nil {
				return err
			}
		}
		e.PrevHash = h.headHash
		e.Hash = ChainHash(e.PrevHash, *e)
		if err := tx.QueryRow(ctx, `INSERT INTO audit(at, actor, role, action, target, ip, result, detail, prev_hash, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			e.At.UnixMilli(), e.Actor, e.Role, e.Action, e.Target, e.IP, e.Result, e.Detail, e.PrevHash, e.Hash).Scan(&e.ID); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE audit_chain SET head_id = ?, head_hash = ? WHERE id = 1`, e.ID, e.Hash)
		return err
	})
}

// chainLegacy hashes the records written before the chain existed (once, by the first append),
// a page at a time so that a large old log is not held in memory.
func chainLegacy(ctx context.Context, tx *store.Tx, through int64) (int64, string, error) {
	var lastID int64
	prev := ""
	for {
		rows, err := tx.Query(ctx, `SELECT `+entryColumns+` FROM audit WHERE id > ? AND id <= ? ORDER BY id LIMIT 1000`, lastID, through)
		if err != nil {
			return 0, "", fmt.Errorf("read records before the chain: %w", err)
		}
		var page []Entry
		for rows.Next() {
			e, err := scanEntry(rows)
			if err != nil {
				rows.Close()
				return 0, "", err
			}
			page = append(page, e)
		}
		if err := rows.Close(); err != nil {
			return 0, "", err
		}
		if len(page) == 0 {
			return lastID, prev, nil
		}
		for _, e := range page {
			hash := ChainHash(prev, e)
			if _, err := tx.Exec(ctx, `UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?`, prev, hash, e.ID); err != nil {
				return 0, "", fmt.Errorf("chain record %d: %w", e.ID, err)
			}
			prev, lastID = hash, e.ID
		}
	}
}

// Break is the first record where the chain does not hold.
type Break struct {
	ID     int64 `json:"id"` // the record's id (0: the chain head row itself)
	At     time.Time
	Actor  string `json:"actor"`
	Action string `json:"action"`
	Reason string `json:"reason"`
}

func (b *Break) String() string {
	if b.ID == 0 {
		return b.Reason
	}
	return fmt.Sprintf("record %d (%s, %s, %s): %s", b.ID, b.At.UTC().Format(time.RFC3339), b.Actor, b.Action, b.Reason)
}

// Report is the result of Verify.
type Report struct {
	Records    int64     `json:"records"`     // records checked
	FirstID    int64     `json:"first_id"`    // oldest record kept
	LastID     int64     `json:"last_id"`     // newest record
	HeadHash   string    `json:"head_hash"`   // hash of the newest record
	AnchorID   int64     `json:"anchor_id"`   // last record removed by retention (0: none)
	AnchorHash string    `json:"anchor_hash"` // its hash, which the oldest kept record points at
	AnchorAt   time.Time `json:"anchor_at"`
	// Unchained counts records written before the chain existed that no append has chained yet
	// (only until the first record after the upgrade).
	Unchained int64  `json:"unchained"`
	Broken    *Break `json:"broken,omitempty"`
}

// OK reports whether the whole chain holds.
func (r Report) OK() bool { return r.Broken == nil }

// Verify walks the whole log oldest first and checks that every record's hash is its content's,
// that it points at the record before it (the retention anchor for the oldest), and that the
// newest is the chain head. It stops at the first break and names it. An error means the log
// could not be read, not that it is broken.
func (l *Log) Verify(ctx context.Context) (Report, error) {
	var r Report
	var h chainHead
	err := l.DB.QueryRow(ctx, `SELECT head_id, head_hash, anchor_id, anchor_hash, anchor_at, legacy_through FROM audit_chain WHERE id = 1`).
		Scan(&h.headID, &h.headHash, &h.anchorID, &h.anchorHash, &h.anchorAt, &h.legacyThrough)
	if store.IsNoRows(err) {
		r.Broken = &Break{Reason: "the chain head row (audit_chain id 1) is missing"}
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("audit: verify: %w", err)
	}
	r.AnchorID, r.AnchorHash = h.anchorID, h.anchorHash
	if h.anchorAt != 0 {
		r.AnchorAt = time.UnixMilli(h.anchorAt)
	}
	prev, after := h.anchorHash, int64(0)
	if h.headID == 0 && h.legacyThrough > 0 {
		// Nothing appended since the upgrade: the old records are not chained yet.
		after = h.legacyThrough
		if err := l.DB.QueryRow(ctx, `SELECT COUNT(*) FROM audit WHERE id <= ?`, after).Scan(&r.Unchained); err != nil {
			return r, fmt.Errorf("audit: verify: %w", err)
		}
	}
	const page = 2000
	for {
		rows, err := l.DB.Query(ctx, `SELECT `+entryColumns+` FROM audit WHERE id > ? ORDER BY id LIMIT `+strconv.Itoa(page), after)
		if err != nil {
			return r, fmt.Errorf("audit: verify: %w", err)
		}
		n := 0
		for rows.Next() {
			e, err := scanEntry(rows)
			if err != nil {
				rows.Close()
				return r, fmt.Errorf("audit: verify: %w", err)
			}
			n++
			after = e.ID
			brk := func(format string, args ...any) {
				r.Broken = &Break{ID: e.ID, At: e.At, Actor: e.Actor, Action: e.Action, Reason: fmt.Sprintf(format, args...)}
			}
			switch {
			case e.Hash == "":
				brk("the record has no chain hash (written outside the gateway?)")
			case e.PrevHash != prev && r.Records == 0 && h.anchorID > 0:
				brk("the oldest record does not point at the retention anchor (record %d): records before it were removed or changed", h.anchorID)
			case e.PrevHash != prev && r.Records == 0:
				brk("the oldest record does not start the chain: records before it were removed")
			case e.PrevHash != prev:
				brk("the record does not point at record %d before it: a record between them was removed or inserted, or this one was changed", r.LastID)
			case ChainHash(e.PrevHash, e) != e.Hash:
				brk("the record's content does not match its hash: it was changed after it was written")
			}
			if r.Broken != nil {
				rows.Close()
				return r, nil
			}
			if r.Records == 0 {
				r.FirstID = e.ID
			}
			r.Records++
			r.LastID, r.HeadHash, prev = e.ID, e.Hash, e.Hash
		}
		if err := rows.Close(); err != nil {
			return r, fmt.Errorf("audit: verify: %w", err)
		}
		if n < page {
			break
		}
	}
	switch {
	case h.headID == 0 && h.legacyThrough > 0:
	case r.Records == 0 && h.headID != 0 && h.headID != h.anchorID:
		r.Broken = &Break{Reason: fmt.Sprintf("the chain head names record %d, but no record is left", h.headID)}
	case r.Records > 0 && (r.LastID != h.headID || r.HeadHash != h.headHash):
		r.Broken = &Break{Reason: fmt.Sprintf("the chain head names record %d (hash %.16s…), but the newest record is %d (hash %.16s…): records at the end were removed or added",
			h.headID, h.headHash, r.LastID, r.HeadHash)}
	}
	return r, nil
}

// DefaultRetention is how long Prune keeps records unless told otherwise: network logs must be
// kept at least six months (Cybersecurity Law of the PRC, art. 21).
const DefaultRetention = 180 * 24 * time.Hour

// Prune removes the oldest records written before cutoff — the longest run of records from the
// oldest on, so the chain keeps no gap — and makes the last one removed the chain's anchor.
// The newest record is never removed, so the head stays a record. It returns how many were
// removed.
func (l *Log) Prune(ctx context.Context, cutoff time.Time) (int64, error) {
	if cutoff.IsZero() {
		return 0, errors.New("audit: prune: no cutoff")
	}
	mu := appendLock(l.DB)
	mu.Lock()
	defer mu.Unlock()
	var removed int64
	err := l.DB.InTx(ctx, func(tx *store.Tx) error {
		h, err := lockHead(ctx, l.DB, tx)
		if err != nil {
			return err
		}
		if h.headID == 0 {
			return nil // nothing chained yet
		}
		// The first record to keep: the oldest written at or after cutoff, or the head.
		keep := h.headID
		var first *int64
		if err := tx.QueryRow(ctx, `SELECT MIN(id) FROM audit WHERE at >= ?`, cutoff.UnixMilli()).Scan(&first); err != nil {
			return err
		}
		if first != nil && *first < keep {
			keep = *first
		}
		last, err := scanEntry(tx.QueryRow(ctx, `SELECT `+entryColumns+` FROM audit WHERE id < ? ORDER BY id DESC LIMIT 1`, keep))
		if store.IsNoRows(err) {
			return nil
		}
		if err != nil {
			return err
		}
		res, err := tx.Exec(ctx, `DELETE FROM audit WHERE id <= ?`, last.ID)
		if err != nil {
			return err
		}
		removed, _ = res.RowsAffected()
		_, err = tx.Exec(ctx, `UPDATE audit_chain SET anchor_id = ?, anchor_hash = ?, anchor_at = ? WHERE id = 1`, last.ID, last.Hash, last.At.UnixMilli())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("audit: prune: %w", err)
	}
	return removed, nil
}

// RunRetention prunes records older than retention at once and then every hour until ctx ends.
// retention <= 0 keeps everything.
func (l *Log) RunRetention(ctx context.Context, retention time.Duration) {
	if retention <= 0 {
		return
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := l.Prune(ctx, time.Now().Add(-retention))
		switch {
		case err != nil && ctx.Err() == nil:
			if l.Logger != nil {
				l.Logger.Error("audit retention failed", "err", err)
			}
		case n > 0 && l.Logger != nil:
			l.Logger.Info("audit retention removed old records", "records", n, "retention", retention.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
