package uplink

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// BatchResponse is a receiver's answer to one batch (docs/contracts.md §6).
type BatchResponse struct {
	Accepted   []string    `json:"accepted"`
	Duplicates []string    `json:"duplicates"`
	Rejected   []Rejection `json:"rejected"`
}

// Rejection is one refused event and why.
type Rejection struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// ParseBatchResponse decodes a receiver's 200 body. Unknown fields are ignored (receivers may
// add to the answer); anything that is not a JSON object of the documented shape is an error.
func ParseBatchResponse(body []byte) (BatchResponse, error) {
	var r BatchResponse
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return BatchResponse{}, fmt.Errorf("uplink: answer is not a JSON object")
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return BatchResponse{}, fmt.Errorf("uplink: answer: %w", err)
	}
	return r, nil
}

// Outcome sorts the ids of a batch by the answer: done (accepted or duplicate), rejected (with
// reason) and missing (not mentioned at all — the batch must be retried).
func (r BatchResponse) Outcome(ids []string) (done int, rejected []Rejection, missing []string) {
	ok := make(map[string]bool, len(r.Accepted)+len(r.Duplicates))
	for _, id := range r.Accepted {
		ok[id] = true
	}
	for _, id := range r.Duplicates {
		ok[id] = true
	}
	rej := make(map[string]string, len(r.Rejected))
	for _, x := range r.Rejected {
		rej[x.ID] = x.Reason
	}
	for _, id := range ids {
		switch reason, isRej := rej[id]; {
		case ok[id]:
			done++
		case isRej:
			if reason == "" {
				reason = "rejected without a reason"
			}
			rejected = append(rejected, Rejection{ID: id, Reason: reason})
		default:
			missing = append(missing, id)
		}
	}
	return done, rejected, missing
}
