package events

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/internal/store"
)

// pgAppendLock is the advisory lock that serialises appenders on PostgreSQL, so that seq
// values become visible in order and a cursor never skips an event committed late.
const pgAppendLock = 7304112

// TxHook runs inside the append transaction for every newly logged event (not for idempotent
// repeats). It may append further events through tx; alarms and alerts use it so a state
// change and its event commit together.
type TxHook func(ctx context.Context, tx *Tx, e *event.Event) error

// Log is the durable, append-only event log. Appends are serialised so that seq order is
// commit order: within a process by a mutex, and across the instances of a centre sharing one
// PostgreSQL by an advisory lock held until commit. Each instance keeps a ring of recent events
// for live readers that holds every committed event after its floor, the other instances' too
// (see Follow), so a reader never gets an event out of order or misses one.
type Log struct {
	DB        *store.DB
	GatewayID string
	Logger    *slog.Logger
	// OnAppend, if set, is called after each commit with the newly logged events, in seq
	// order, while the writer lock is held: it must not block (hand off to a channel). MQTT
	// publishing can use it, or subscribe through a Feed instead.
	OnAppend func([]event.Event)
	// RingSize is how many recent events are at least kept in memory for live readers (default
	// 8192; up to twice as many are held between trims).
	RingSize int
	// Now is the clock (tests); default time.Now.
	Now func() time.Time

	writeMu sync.Mutex
	hooks   []TxHook
	qmu     sync.Mutex
	queue   []*appendReq

	// instance tells this Log's notifications from other instances' (see Follow).
	instance string

	mu        sync.Mutex
	head      int64
	changed   chan struct{}
	ring      []event.Event
	ringFloor int64 // the ring holds every event with seq > ringFloor
}

// Initialize reads the log's head. Call it once before use.
func (l *Log) Initialize() error {
	if l.RingSize <= 0 {
		l.RingSize = 8192
	}
	if l.Now == nil {
		l.Now = time.Now
	}
	if l.Logger == nil {
		l.Logger = slog.Default()
	}
	var head sql.NullInt64
	if err := l.DB.QueryRow(context.Background(), `SELECT MAX(seq) FROM events`).Scan(&head); err != nil {
		return fmt.Errorf("events: read log head: %w", err)
	}
	l.head = head.Int64
	l.ringFloor = head.Int64
	l.changed = make(chan struct{})
	l.instance = NewID(l.Now())
	return nil
}

// Use adds a hook run for each newly logged event inside its transaction.
func (l *Log) Use(h TxHook) {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	l.hooks = append(l.hooks, h)
}

// Head returns the newest seq and a channel closed when it changes.
func (l *Log) Head() (int64, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head, l.changed
}

// WaitAfter blocks until the log holds an event with seq > after, or ctx ends.
func (l *Log) WaitAfter(ctx context.Context, after int64) error {
	for {
		head, ch := l.Head()
		if head > after {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Tx is an append transaction: the store transaction plus the log's append.
type Tx struct {
	*store.Tx
	log      *Log
	now      time.Time
	stmt     *sql.Stmt
	appended []event.Event
	foreign  []event.Event // other instances' events between the ring's head and ours
	steps    []alertStep   // alert steps recorded, inserted together before commit
}

// Now is the time the transaction started; use it for state changes made with the events.
func (t *Tx) Now() time.Time { return t.now }

// InTx runs fn in a write transaction of the log. Events appended in fn become visible to
// readers, hooks' events included, only when fn returns nil and the transaction commits.
func (l *Log) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	return l.inTxLocked(ctx, fn)
}

func (l *Log) inTxLocked(ctx context.Context, fn func(tx *Tx) error) error {
	var t *Tx
	err := l.DB.InTx(ctx, func(stx *store.Tx) error {
		t = &Tx{Tx: stx, log: l, now: l.Now()}
		if l.DB.Dialect == store.Postgres {
			if _, err := stx.Exec(ctx, `SELECT pg_advisory_xact_lock(?)`, pgAppendLock); err != nil {
				return fmt.Errorf("events: append lock: %w", err)
			}
		}
		defer func() {
			if t.stmt != nil {
				_ = t.stmt.Close()
			}
		}()
		if err := fn(t); err != nil {
			return err
		}
		if err := t.insertSteps(ctx); err != nil {
			return err
		}
		return t.shareAppended(ctx)
	})
	if err != nil {
		return err
	}
	if len(t.appended) > 0 {
		if len(t.foreign) > 0 {
			l.publish(t.foreign)
		}
		l.publish(t.appended)
		if l.OnAppend != nil {
			l.OnAppend(t.appended)
		}
	}
	return nil
}

type appendReq struct {
	evs  []event.Event
	out  []event.Event
	err  error
	done chan struct{}
}

// Append logs events in one transaction and returns them as stored (id, seq, raw). An event
// whose id is already logged with the same content is returned as stored before (no new
// seq); with different content the whole call fails with errs.KindConflict and logs nothing.
//
// Concurrent calls are committed together (group commit): whoever gets the writer lock
// commits every call queued meanwhile in one transaction, so many producers appending one
// event each cost one commit, not one each. A failing call is then retried alone, so one
// producer's bad event never fails another's.
func (l *Log) Append(ctx context.Context, evs ...event.Event) ([]event.Event, error) {
	now := l.Now()
	evs = append([]event.Event(nil), evs...)
	for i := range evs {
		normalize(&evs[i], l.GatewayID, now)
		if err := validate(&evs[i]); err != nil {
			return nil, err
		}
	}
	req := &appendReq{evs: evs, done: make(chan struct{})}
	l.qmu.Lock()
	l.queue = append(l.queue, req)
	l.qmu.Unlock()

	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	select {
	case <-req.done: // a previous leader committed it
		return req.out, req.err
	default:
	}
	l.qmu.Lock()
	group := l.queue
	l.queue = nil
	l.qmu.Unlock()

	gctx := context.WithoutCancel(ctx)
	err := l.inTxLocked(gctx, func(tx *Tx) error {
		for _, r := range group {
			var err error
			if r.out, err = tx.Append(gctx, r.evs...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && len(group) > 1 {
		for _, r := range group {
			r.err = l.inTxLocked(gctx, func(tx *Tx) error {
				var err error
				r.out, err = tx.Append(gctx, r.evs...)
				return err
			})
			if r.err != nil {
				r.out = nil
			}
			close(r.done)
		}
	} else {
		for _, r := range group {
			if r.err = err; err != nil {
				r.out = nil
			}
			close(r.done)
		}
	}
	return req.out, req.err
}

// Append logs events within the transaction; see Log.Append.
func (t *Tx) Append(ctx context.Context, evs ...event.Event) ([]event.Event, error) {
	out := make([]event.Event, 0, len(evs))
	for i := range evs {
		e := evs[i]
		normalize(&e, t.log.GatewayID, t.now)
		if err := validate(&e); err != nil {
			return nil, err
		}
		e.Raw = nil
		body, err := e.MarshalJSON() // what json.Marshal(&e) gives, without re-scanning it
		if err != nil {
			return nil, fmt.Errorf("events: encode %s: %w", e.ID, err)
		}
		e.Raw = body
		e.LoggedAt = t.now
		var devID, siteID string
		if e.Device != nil {
			devID = e.Device.ID
		}
		if e.Site != nil {
			siteID = e.Site.ID
		}
		args := []any{e.ID, e.Type, e.Severity, e.OccurredAt.UnixMilli(), t.now.UnixMilli(),
			devID, siteID, e.Department, e.RegionCode(), e.AlarmKey, string(body)}
		if t.log.DB.Dialect == store.Postgres {
			// pgx prepares each statement once per connection by itself; an explicit prepare
			// and close would cost two more round trips per transaction under the writer lock.
			err = t.QueryRow(ctx, appendSQL, args...).Scan(&e.Seq)
		} else {
			if t.stmt == nil {
				if t.stmt, err = t.PrepareContext(ctx, appendSQL); err != nil {
					return nil, fmt.Errorf("events: prepare append: %w", err)
				}
			}
			err = t.stmt.QueryRowContext(ctx, args...).Scan(&e.Seq)
		}
		if store.IsNoRows(err) {
			prev, err := t.get(ctx, e.ID)
			if err != nil {
				return nil, err
			}
			if !bytes.Equal(prev.Raw, body) {
				return nil, errs.E(errs.KindConflict, "event_conflict", "event %s is already logged with different content", e.ID)
			}
			out = append(out, prev)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("events: append %s: %w", e.ID, err)
		}
		t.appended = append(t.appended, e)
		for _, h := range t.log.hooks {
			if err := h(ctx, t, &e); err != nil {
				return nil, err
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// appendSQL inserts one event (SQLite placeholders: Tx.QueryRow rebinds them on PostgreSQL).
const appendSQL = `INSERT INTO events(id, type, severity, occurred_at, logged_at, device_id, site_id, department,
	region_code, alarm_key, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING seq`

func (t *Tx) get(ctx context.Context, id string) (event.Event, error) {
	return scanOne(t.QueryRow(ctx, `SELECT seq, logged_at, body FROM events WHERE id = ?`, id))
}

// shareAppended, on PostgreSQL, runs at the end of an append transaction (the append lock
// held): it reads the events other instances committed since this instance's ring head, which
// all precede ours, so that the ring takes them before ours, and notifies the other instances
// that the log grew (delivered at commit).
func (t *Tx) shareAppended(ctx context.Context) error {
	l := t.log
	if l.DB.Dialect != store.Postgres || len(t.appended) == 0 {
		return nil
	}
	first, last := t.appended[0].Seq, t.appended[len(t.appended)-1].Seq
	l.mu.Lock()
	head := l.head
	l.mu.Unlock()
	t.foreign = t.foreign[:0]
	if first > head+1 && first-head <= int64(l.RingSize) {
		rows, err := t.Query(ctx, `SELECT seq, logged_at, body FROM events WHERE seq > ? AND seq < ? ORDER BY seq`, head, first)
		if err != nil {
			return fmt.Errorf("events: read other instances' events: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanOne(rows)
			if err != nil {
				return err
			}
			t.foreign = append(t.foreign, e)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("events: read other instances' events: %w", err)
		}
	} else if first > head+1 {
		t.foreign = nil // too many to keep: publish restarts the ring at ours
	}
	return t.Notify(ctx, NotifyChannel, l.instance+" "+strconv.FormatInt(last, 10))
}

// publish makes committed events visible to live readers. Called with writeMu held, so in
// commit order.
func (l *Log) publish(evs []event.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(evs) > 0 && l.DB.Dialect == store.Postgres && evs[0].Seq-l.head > int64(l.RingSize) {
		// Other instances appended more than the ring holds since this one last looked: the
		// ring restarts here, and readers further back read the store.
		l.ring, l.ringFloor, l.head = l.ring[:0], evs[0].Seq-1, evs[0].Seq-1
	}
	for _, e := range evs {
		if e.Seq > l.head {
			l.head = e.Seq
		}
	}
	l.ring = append(l.ring, evs...)
	// Trim only once the ring holds twice its size, down to its size: a copy of RingSize
	// events per RingSize appended, not one per commit (at thousands of events per second,
	// copying the whole ring on every commit cost more than the inserts).
	if n := len(l.ring) - l.RingSize; n > 0 && len(l.ring) >= 2*l.RingSize {
		l.ringFloor = l.ring[n-1].Seq
		l.ring = append(l.ring[:0:0], l.ring[n:]...)
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

type rowScanner interface{ Scan(dest ...any) error }

func scanOne(r rowScanner) (event.Event, error) {
	var seq, logged int64
	var body string
	if err := r.Scan(&seq, &logged, &body); err != nil {
		if store.IsNoRows(err) {
			return event.Event{}, errs.E(errs.KindNotFound, "event_not_found", "no such event")
		}
		return event.Event{}, fmt.Errorf("events: read: %w", err)
	}
	return decodeStored(seq, logged, body)
}

func decodeStored(seq, logged int64, body string) (event.Event, error) {
	var e event.Event
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		return event.Event{}, fmt.Errorf("events: stored event #%d is not valid JSON: %w", seq, err)
	}
	e.Seq = seq
	e.LoggedAt = time.UnixMilli(logged)
	e.Raw = json.RawMessage(body)
	return e, nil
}

// Get returns one logged event by id.
func (l *Log) Get(ctx context.Context, id string) (event.Event, error) {
	return scanOne(l.DB.QueryRow(ctx, `SELECT seq, logged_at, body FROM events WHERE id = ?`, id))
}

// SeqOf returns the seq of a logged event id (SSE Last-Event-ID → cursor).
func (l *Log) SeqOf(ctx context.Context, id string) (int64, error) {
	var seq int64
	err := l.DB.QueryRow(ctx, `SELECT seq FROM events WHERE id = ?`, id).Scan(&seq)
	if store.IsNoRows(err) {
		return 0, errs.E(errs.KindNotFound, "event_not_found", "no event with id %q", id)
	}
	return seq, err
}

// Since returns up to limit events with seq > after that match f, in seq order.
func (l *Log) Since(ctx context.Context, after int64, f Filter, limit int) ([]event.Event, error) {
	evs, _, err := l.Scan(ctx, after, f, limit)
	return evs, err
}

// Scan is Since that also reports how far it looked: every event with seq <= through that
// matches f is in the result (or was before after), so a reader can continue from through
// even when f skipped many events.
func (l *Log) Scan(ctx context.Context, after int64, f Filter, limit int) (evs []event.Event, through int64, err error) {
	if limit <= 0 || limit > 5000 {
		limit = 5000
	}
	if evs, through, ok := l.scanRing(after, f, limit); ok {
		return evs, through, nil
	}
	head, _ := l.Head()
	q := `SELECT seq, logged_at, body FROM events WHERE seq > ?`
	args := []any{after}
	q, args = filterSQL(f, q, args)
	q += ` ORDER BY seq LIMIT ?`
	args = append(args, limit)
	rows, err := l.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, after, fmt.Errorf("events: read log: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanOne(rows)
		if err != nil {
			return nil, after, err
		}
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, after, fmt.Errorf("events: read log: %w", err)
	}
	through = after
	if len(evs) > 0 {
		through = evs[len(evs)-1].Seq
	}
	if len(evs) < limit && head > through {
		through = head
	}
	return evs, through, nil
}

func (l *Log) scanRing(after int64, f Filter, limit int) ([]event.Event, int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if after < l.ringFloor {
		return nil, 0, false
	}
	i := sort.Search(len(l.ring), func(i int) bool { return l.ring[i].Seq > after })
	var out []event.Event
	through := after
	if l.head > through {
		through = l.head
	}
	for ; i < len(l.ring); i++ {
		if f.Match(&l.ring[i]) {
			out = append(out, l.ring[i])
			if len(out) == limit {
				through = l.ring[i].Seq
				break
			}
		}
	}
	return out, through, true
}

func filterSQL(f Filter, q string, args []any) (string, []any) {
	if len(f.Types) > 0 {
		var or []string
		for _, t := range f.Types {
			if strings.HasSuffix(t, ".") {
				or = append(or, "substr(type, 1, ?) = ?")
				args = append(args, len(t), t)
			} else {
				or = append(or, "type = ?")
				args = append(args, t)
			}
		}
		q += " AND (" + strings.Join(or, " OR ") + ")"
	}
	if f.MinSeverity != "" {
		var in []string
		for _, s := range event.Severities[max(event.SeverityRank(f.MinSeverity), 0):] {
			in = append(in, "?")
			args = append(args, s)
		}
		q += " AND severity IN (" + strings.Join(in, ", ") + ")"
	}
	if len(f.Departments) > 0 {
		in := make([]string, len(f.Departments))
		for i, d := range f.Departments {
			in[i] = "?"
			args = append(args, d)
		}
		q += " AND department IN (" + strings.Join(in, ", ") + ")"
	}
	if f.Device != "" {
		q += " AND device_id = ?"
		args = append(args, f.Device)
	}
	return scopeSQL(f.Scope, q, args)
}
