package api

import (
	"strconv"
	"strings"
	"time"

	"github.com/offsite-gw/offsite/internal/errs"
)

// ParseTime reads a time from a query parameter. It accepts RFC 3339 (with or without
// fractional seconds; "2026-11-27T10:15:04Z", "2026-11-27T18:15:04+08:00"), unix milliseconds
// ("1795774504123") and a plain date ("2026-11-27", midnight in the gateway's local time zone).
// "" gives the zero time. Times before 1970 or after 9999 are rejected.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if len(s) > 40 {
		return time.Time{}, errs.E(errs.KindInvalid, "invalid_time", "time is too long")
	}
	var t time.Time
	var err error
	switch {
	case isDigits(s):
		if len(s) > 15 {
			return time.Time{}, errs.E(errs.KindInvalid, "invalid_time", "%q: unix milliseconds out of range", s)
		}
		ms, perr := strconv.ParseInt(s, 10, 64)
		if perr != nil {
			return time.Time{}, errs.E(errs.KindInvalid, "invalid_time", "%q is not a valid unix millisecond time", s)
		}
		t = time.UnixMilli(ms).UTC()
	case len(s) == len(time.DateOnly):
		t, err = time.ParseInLocation(time.DateOnly, s, time.Local)
	default:
		t, err = time.Parse(time.RFC3339Nano, s)
	}
	if err != nil {
		return time.Time{}, errs.E(errs.KindInvalid, "invalid_time",
			"%q is not a time: use RFC 3339 (2026-11-27T10:15:04+08:00), unix milliseconds or a date (2026-11-27)", s)
	}
	if t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, errs.E(errs.KindInvalid, "invalid_time", "%q is outside 1970-9999", s)
	}
	return t, nil
}

// ParseLimit reads a limit query parameter: "" gives def; otherwise an integer in 1..max.
func ParseLimit(s string, def, max int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, errs.E(errs.KindInvalid, "invalid_limit", "limit must be a whole number from 1 to %d", max)
	}
	return n, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
