package events

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/store"
)

// Received is the outcome of logging a batch a child gateway sent (docs/contracts.md §7): the
// ids newly logged, those logged before with the same content, and those refused with the
// reason. Conflicts and Foreign count the refusals a person should look at: an id logged
// before with different content, and an event naming a gateway other than the sender.
type Received struct {
	Accepted   []string
	Duplicates []string
	Rejected   []Rejected
	Conflicts  int
	Foreign    int
	Invalid    int
}

// Rejected is one refused event of a received batch.
type Rejected struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// AppendReceived logs the events of a batch sent by child gateway sender, in the order given,
// keeping their ids and gateway_id, in one transaction. pre runs first inside that transaction
// (the receiver records the request's nonce there, so a refused replay stores nothing). Each
// event is accepted, a duplicate, or rejected on its own; an error means nothing was stored.
// allowed reports whether an event may name a gateway id other than the sender (a child
// centre forwarding its own children's events); nil allows only the sender.
func (l *Log) AppendReceived(ctx context.Context, sender string, raws []json.RawMessage, allowed func(gatewayID string) bool,
	pre func(tx *Tx) error) (Received, error) {
	var r Received
	err := l.InTx(ctx, func(tx *Tx) error {
		if pre != nil {
			if err := pre(tx); err != nil {
				return err
			}
		}
		var err error
		r, err = tx.AppendReceived(ctx, sender, raws, allowed)
		return err
	})
	if err != nil {
		return Received{}, err
	}
	return r, nil
}

// AppendReceived is Log.AppendReceived inside the caller's transaction, so the caller can
// record more with the batch (the centre counts the gateway's contact in it). An error means
// the transaction must be rolled back.
func (t *Tx) AppendReceived(ctx context.Context, sender string, raws []json.RawMessage, allowed func(gatewayID string) bool) (Received, error) {
	rs, err := t.AppendReceivedGroup(ctx, []ReceivedBatch{{Sender: sender, Events: raws, Allowed: allowed}})
	if err != nil {
		return Received{}, err
	}
	return rs[0], nil
}

// ReceivedBatch is one batch a child gateway sent, as a part of a group logged together.
type ReceivedBatch struct {
	Sender string
	Events []json.RawMessage
	// Allowed reports whether an event may name a gateway other than Sender (see
	// Log.AppendReceived); nil allows only the sender.
	Allowed func(gatewayID string) bool
}

// AppendReceivedGroup logs several received batches in the caller's transaction, as if each
// were logged by AppendReceived in the order given, and returns each batch's outcome. An id
// that an earlier batch of the group logged is a duplicate (or a conflict) for a later one.
//
// The group's events are inserted with as few statements as possible (on PostgreSQL one per
// 5,000 events; on SQLite one per 200), in the order sent, so their seqs follow that order:
// on PostgreSQL each statement is a round trip taken under the log's writer lock, and a
// statement per batch made a centre under a hundred sites sending small batches spend its
// writer's time on round trips (docs/benchmarks.md, bench-centre). The hooks (alarms and
// alerts) then run for each new event in seq order; events they append (alert.opened) come
// after the group's.
func (t *Tx) AppendReceivedGroup(ctx context.Context, batches []ReceivedBatch) ([]Received, error) {
	const (
		accepted = iota + 1
		duplicate
		conflict
	)
	type item struct {
		e       event.Event
		batch   int
		outcome int
		first   int // index of an earlier item with the same id, or -1
	}
	rs := make([]Received, len(batches))
	n := 0
	for _, b := range batches {
		n += len(b.Events)
	}
	items := make([]item, 0, n)
	firstOf := make(map[string]int, n)
	reject := func(r *Received, count *int, id, reason string) {
		*count++
		r.Rejected = append(r.Rejected, Rejected{ID: id, Reason: reason})
	}
	for bi, b := range batches {
		r := &rs[bi]
		for i, raw := range b.Events {
			var e event.Event
			if err := json.Unmarshal(raw, &e); err != nil {
				reject(r, &r.Invalid, rawID(raw, i), "not a valid event: "+err.Error())
				continue
			}
			if e.ID == "" {
				reject(r, &r.Invalid, rawID(raw, i), "id is missing: a gateway sends every event with the id it logged it under")
				continue
			}
			if e.GatewayID == "" {
				e.GatewayID = b.Sender
			}
			if e.GatewayID != b.Sender && (b.Allowed == nil || !b.Allowed(e.GatewayID)) {
				reject(r, &r.Foreign, e.ID, fmt.Sprintf("gateway_id %q is not the sender's (%s)", e.GatewayID, b.Sender))
				continue
			}
			normalize(&e, t.log.GatewayID, t.now)
			if err := e.Validate(); err != nil {
				reject(r, &r.Invalid, e.ID, err.Error())
				continue
			}
			e.Raw = nil
			body, err := e.MarshalJSON() // what json.Marshal(&e) gives, without re-scanning it
			if err != nil {
				return nil, fmt.Errorf("events: encode %s: %w", e.ID, err)
			}
			e.Raw, e.LoggedAt = body, t.now
			it := item{e: e, batch: bi, first: -1}
			if j, ok := firstOf[e.ID]; ok {
				it.first = j
			} else {
				firstOf[e.ID] = len(items)
			}
			items = append(items, it)
		}
	}

	// Insert the first occurrence of each id, in order.
	seqOf := make(map[string]int64, len(items))
	chunk := 200
	if t.log.DB.Dialect == store.Postgres {
		chunk = 5000
	}
	var batch []*event.Event
	for i := range items {
		if items[i].first >= 0 {
			continue
		}
		batch = append(batch, &items[i].e)
		if len(batch) == chunk {
			if err := t.insertReceived(ctx, batch, seqOf); err != nil {
				return nil, err
			}
			batch = batch[:0]
		}
	}
	if err := t.insertReceived(ctx, batch, seqOf); err != nil {
		return nil, err
	}

	// Outcomes in the order sent: new, logged before with the same content, or a conflict.
	var fresh []event.Event
	for i := range items {
		it := &items[i]
		switch seq, ok := seqOf[it.e.ID]; {
		case it.first >= 0:
			first := &items[it.first]
			if first.outcome != conflict && bytes.Equal(first.e.Raw, it.e.Raw) {
				it.outcome = duplicate
			} else {
				it.outcome = conflict
			}
		case ok:
			it.e.Seq, it.outcome = seq, accepted
			fresh = append(fresh, it.e)
		default:
			prev, err := t.get(ctx, it.e.ID)
			if err != nil {
				return nil, err
			}
			if bytes.Equal(prev.Raw, it.e.Raw) {
				it.outcome = duplicate
			} else {
				it.outcome = conflict
			}
		}
		r := &rs[it.batch]
		switch it.outcome {
		case accepted:
			r.Accepted = append(r.Accepted, it.e.ID)
		case duplicate:
			r.Duplicates = append(r.Duplicates, it.e.ID)
		case conflict:
			reject(r, &r.Conflicts, it.e.ID, "id already logged with different content")
		}
	}
	sort.Slice(fresh, func(i, j int) bool { return fresh[i].Seq < fresh[j].Seq })
	t.appended = append(t.appended, fresh...)
	for i := range fresh {
		for _, h := range t.log.hooks {
			if err := h(ctx, t, &fresh[i]); err != nil {
				return nil, err
			}
		}
	}
	return rs, nil
}

// insertReceived inserts evs in order with one statement, skipping ids already logged, and
// notes the seq of each one inserted in seqOf. On PostgreSQL the rows travel as arrays, so
// the statement's text is the same whatever the number of rows (one prepared statement,
// not one per row count); on SQLite as a multi-row VALUES list.
func (t *Tx) insertReceived(ctx context.Context, evs []*event.Event, seqOf map[string]int64) error {
	if len(evs) == 0 {
		return nil
	}
	const cols = `INSERT INTO events(id, type, severity, occurred_at, logged_at, device_id, site_id, department, region_code, alarm_key, body) `
	var q string
	var args []any
	if t.log.DB.Dialect == store.Postgres {
		var id, typ, sev, dev, site, dept, region, alarm, body []string
		var occurred, logged []int64
		for _, e := range evs {
			var devID, siteID string
			if e.Device != nil {
				devID = e.Device.ID
			}
			if e.Site != nil {
				siteID = e.Site.ID
			}
			id, typ, sev = append(id, e.ID), append(typ, e.Type), append(sev, e.Severity)
			occurred, logged = append(occurred, e.OccurredAt.UnixMilli()), append(logged, t.now.UnixMilli())
			dev, site, dept = append(dev, devID), append(site, siteID), append(dept, e.Department)
			region, alarm, body = append(region, e.RegionCode()), append(alarm, e.AlarmKey), append(body, string(e.Raw))
		}
		// ORDER BY ordinality: the rows take their seqs in the order sent.
		q = cols + `SELECT u.id, u.type, u.severity, u.occurred_at, u.logged_at, u.device_id, u.site_id, u.department,
			u.region_code, u.alarm_key, u.body
			FROM unnest(?::text[], ?::text[], ?::text[], ?::bigint[], ?::bigint[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[])
			WITH ORDINALITY AS u(id, type, severity, occurred_at, logged_at, device_id, site_id, department, region_code, alarm_key, body, n)
			ORDER BY u.n`
		args = []any{id, typ, sev, occurred, logged, dev, site, dept, region, alarm, body}
	} else {
		var b strings.Builder
		b.WriteString(cols + `VALUES `)
		args = make([]any, 0, 11*len(evs))
		for k, e := range evs {
			if k > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
			var devID, siteID string
			if e.Device != nil {
				devID = e.Device.ID
			}
			if e.Site != nil {
				siteID = e.Site.ID
			}
			args = append(args, e.ID, e.Type, e.Severity, e.OccurredAt.UnixMilli(), t.now.UnixMilli(),
				devID, siteID, e.Department, e.RegionCode(), e.AlarmKey, string(e.Raw))
		}
		q = b.String()
	}
	rows, err := t.Query(ctx, q+` ON CONFLICT (id) DO NOTHING RETURNING id, seq`, args...)
	if err != nil {
		return fmt.Errorf("events: append received batch: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return fmt.Errorf("events: append received batch: %w", err)
		}
		seqOf[id] = seq
	}
	return rows.Err()
}

// rawID is the id of an event that could not be decoded, if it has one, so the sender can
// dead-letter it; otherwise its position.
func rawID(raw json.RawMessage, i int) string {
	var v struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(raw, &v) == nil && v.ID != "" && len(v.ID) <= 64 {
		return v.ID
	}
	return fmt.Sprintf("#%d", i)
}
