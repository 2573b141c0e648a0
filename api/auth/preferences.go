package auth

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"regexp"

	"github.com/offsite-gw/offsite/internal/errs"
)

// MaxPreferenceBytes bounds one preference document.
const MaxPreferenceBytes = 16 << 10

var preferenceName = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,39}$`)

// Preference returns the user's preference document name (JSON), or nil if none is kept.
func (s *Service) Preference(ctx context.Context, userID, name string) (json.RawMessage, error) {
	if !preferenceName.MatchString(name) {
		return nil, errs.E(errs.KindInvalid, "invalid_preference", "preference name %q: lower-case letters, digits, '_', '.', '-' (up to 40)", name)
	}
	var body string
	err := s.DB.QueryRow(ctx, `SELECT body FROM user_preferences WHERE user_id = ? AND name = ?`, userID, name).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return json.RawMessage(body), nil
}

// SetPreference keeps the user's preference document name: a JSON object of at most
// MaxPreferenceBytes.
func (s *Service) SetPreference(ctx context.Context, userID, name string, body []byte) error {
	if !preferenceName.MatchString(name) {
		return errs.E(errs.KindInvalid, "invalid_preference", "preference name %q: lower-case letters, digits, '_', '.', '-' (up to 40)", name)
	}
	if len(body) > MaxPreferenceBytes {
		return errs.E(errs.KindInvalid, "preference_too_large", "a preference is at most %d bytes, got %d", MaxPreferenceBytes, len(body))
	}
	var obj map[string]any
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		return errs.E(errs.KindInvalid, "invalid_json", "a preference is a JSON object")
	}
	now := s.now().UnixMilli()
	_, err := s.DB.Exec(ctx, `INSERT INTO user_preferences(user_id, name, body, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id, name) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at`, userID, name, string(body), now)
	return err
}
