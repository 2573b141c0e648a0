package events

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/offsite-gw/offsite/events/event"
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
//
// The batch's events are inserted with multi-row statements (a round trip per 200 events, not
// per event: on PostgreSQL the round trips were most of the time), in the order sent, so
// their seqs follow that order. The hooks (alarms and alerts) then run for each new event in
// that order; events they append (alert.opened) come after the batch's.
func (t *Tx) AppendReceived(ctx context.Context, sender string, raws []json.RawMessage, allowed func(gatewayID string) bool) (Received, error) {
	const (
		accepted = iota + 1
		duplicate
		conflict
	)
	type item struct {
		e       event.Event
		outcome int
		first   int // index of an earlier item with the same id, or -1
	}
	var r Received
	items := make([]item, 0, len(raws))
	firstOf := make(map[string]int, len(raws))
	reject := func(n *int, id, reason string) {
		*n++
		r.Rejected = append(r.Rejected, Rejected{ID: id, Reason: reason})
	}
	for i, raw := range raws {
		var e event.Event
		if err := json.Unmarshal(raw, &e); err != nil {
			reject(&r.Invalid, rawID(raw, i), "not a valid event: "+err.Error())
			continue
		}
		if e.ID == "" {
			reject(&r.Invalid, rawID(raw, i), "id is missing: a gateway sends every event with the id it logged it under")
			continue
		}
		if e.GatewayID == "" {
			e.GatewayID = sender
		}
		if e.GatewayID != sender && (allowed == nil || !allowed(e.GatewayID)) {
			reject(&r.Foreign, e.ID, fmt.Sprintf("gateway_id %q is not the sender's (%s)", e.GatewayID, sender))
			continue
		}
		normalize(&e, t.log.GatewayID, t.now)
		if err := e.Validate(); err != nil {
			reject(&r.Invalid, e.ID, err.Error())
			continue
		}
		e.Raw = nil
		body, err := e.MarshalJSON() // what json.Marshal(&e) gives, without re-scanning it
		if err != nil {
			return Received{}, fmt.Errorf("events: encode %s: %w", e.ID, err)
		}
		e.Raw, e.LoggedAt = body, t.now
		it := item{e: e, first: -1}
		if j, ok := firstOf[e.ID]; ok {
			it.first = j
		} else {
			firstOf[e.ID] = len(items)
		}
		items = append(items, it)
	}

	// Insert the first occurrence of each id, up to 200 rows a statement.
	seqOf := make(map[string]int64, len(items))
	const chunk = 200
	var batch []int
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		var q strings.Builder
		q.WriteString(`INSERT INTO events(id, type, severity, occurred_at, logged_at, device_id, site_id, department, region_code, alarm_key, body) VALUES `)
		args := make([]any, 0, 11*len(batch))
		for k, i := range batch {
			if k > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
			e := &items[i].e
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
		q.WriteString(` ON CONFLICT (id) DO NOTHING RETURNING id, seq`)
		rows, err := t.Query(ctx, q.String(), args...)
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
		batch = batch[:0]
		return rows.Err()
	}
	for i := range items {
		if items[i].first >= 0 {
			continue
		}
		batch = append(batch, i)
		if len(batch) == chunk {
			if err := flush(); err != nil {
				return Received{}, err
			}
		}
	}
	if err := flush(); err != nil {
		return Received{}, err
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
				return Received{}, err
			}
			if bytes.Equal(prev.Raw, it.e.Raw) {
				it.outcome = duplicate
			} else {
				it.outcome = conflict
			}
		}
		switch it.outcome {
		case accepted:
			r.Accepted = append(r.Accepted, it.e.ID)
		case duplicate:
			r.Duplicates = append(r.Duplicates, it.e.ID)
		case conflict:
			reject(&r.Conflicts, it.e.ID, "id already logged with different content")
		}
	}
	sort.Slice(fresh, func(i, j int) bool { return fresh[i].Seq < fresh[j].Seq })
	t.appended = append(t.appended, fresh...)
	for i := range fresh {
		for _, h := range t.log.hooks {
			if err := h(ctx, t, &fresh[i]); err != nil {
				return Received{}, err
			}
		}
	}
	return r, nil
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
