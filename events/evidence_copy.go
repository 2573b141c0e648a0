package events

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/errs"
)

// PutCopy stores a copy of evidence fetched from elsewhere (a child gateway's file, docs/
// contracts.md §9) under the sha256 it is known by. fill writes the bytes to w; only when
// fill succeeds and the bytes hash to want is the file kept, so a copy that does not match,
// or that broke off, leaves nothing behind. An existing file of that name is kept as it is.
func (s *EvidenceStore) PutCopy(want, ext string, fill func(w io.Writer) error) (url string, err error) {
	ext = strings.ToLower(ext)
	if !event.IsHex64(want) || !allowedExt[ext] {
		return "", errs.E(errs.KindInvalid, "invalid_evidence", "evidence %q%q is not a sha256 with a known extension", want, ext)
	}
	_, url, err = s.store(ext, want, fill)
	return url, err
}

// EventsWithEvidence returns up to limit events of the log that carry evidence file sum (in
// their evidence list), oldest first.
func (l *Log) EventsWithEvidence(ctx context.Context, sum string, limit int) ([]event.Event, error) {
	if !event.IsHex64(sum) {
		return nil, nil
	}
	if limit <= 0 {
		limit = 100
	}
	rows, err := l.DB.Query(ctx, `SELECT seq, logged_at, body FROM events WHERE body LIKE ? ORDER BY seq LIMIT ?`, "%"+sum+"%", limit)
	if err != nil {
		return nil, fmt.Errorf("events: events with evidence: %w", err)
	}
	defer rows.Close()
	var out []event.Event
	for rows.Next() {
		var seq, logged int64
		var body string
		if err := rows.Scan(&seq, &logged, &body); err != nil {
			return nil, err
		}
		e, err := decodeStored(seq, logged, body)
		if err != nil {
			continue
		}
		for _, ev := range e.Evidence {
			if ev.SHA256 == sum {
				out = append(out, e)
				break
			}
		}
	}
	return out, rows.Err()
}
