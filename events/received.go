package events

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/errs"
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
	var r Received
	for i, raw := range raws {
		var e event.Event
		if err := json.Unmarshal(raw, &e); err != nil {
			r.Invalid++
			r.Rejected = append(r.Rejected, Rejected{ID: rawID(raw, i), Reason: "not a valid event: " + err.Error()})
			continue
		}
		if e.ID == "" {
			r.Invalid++
			r.Rejected = append(r.Rejected, Rejected{ID: rawID(raw, i), Reason: "id is missing: a gateway sends every event with the id it logged it under"})
			continue
		}
		if e.GatewayID == "" {
			e.GatewayID = sender
		}
		if e.GatewayID != sender && (allowed == nil || !allowed(e.GatewayID)) {
			r.Foreign++
			r.Rejected = append(r.Rejected, Rejected{ID: e.ID, Reason: fmt.Sprintf("gateway_id %q is not the sender's (%s)", e.GatewayID, sender)})
			continue
		}
		if err := e.Validate(); err != nil {
			r.Invalid++
			r.Rejected = append(r.Rejected, Rejected{ID: e.ID, Reason: err.Error()})
			continue
		}
		before := len(t.appended)
		_, err := t.Append(ctx, e)
		switch {
		case errs.Is(err, errs.KindConflict):
			r.Conflicts++
			r.Rejected = append(r.Rejected, Rejected{ID: e.ID, Reason: "id already logged with different content"})
		case errs.Is(err, errs.KindInvalid):
			r.Invalid++
			r.Rejected = append(r.Rejected, Rejected{ID: e.ID, Reason: err.Error()})
		case err != nil:
			return Received{}, err
		case len(t.appended) > before:
			r.Accepted = append(r.Accepted, e.ID)
		default:
			r.Duplicates = append(r.Duplicates, e.ID)
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
