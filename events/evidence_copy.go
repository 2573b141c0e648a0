package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	tmpDir := filepath.Join(s.Dir, "tmp")
	if err := os.MkdirAll(tmpDir, 0o750); err != nil {
		return "", fmt.Errorf("evidence: %w", err)
	}
	f, err := os.CreateTemp(tmpDir, "copy-*")
	if err != nil {
		return "", fmt.Errorf("evidence: %w", err)
	}
	defer os.Remove(f.Name()) // no-op after rename
	h := sha256.New()
	err = fill(io.MultiWriter(f, h))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return "", errs.E(errs.KindInvalid, "evidence_hash_mismatch", "the copy hashes to %s, not %s", got, want)
	}
	rel := s.rel(want, ext)
	dst := filepath.Join(s.Dir, rel)
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return "", fmt.Errorf("evidence: %w", err)
	}
	if _, err := os.Stat(dst); err != nil {
		if err := os.Rename(f.Name(), dst); err != nil {
			return "", fmt.Errorf("evidence: %w", err)
		}
	}
	return s.prefix() + filepath.ToSlash(rel), nil
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
