package api_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/api"
	"github.com/offsite-gw/offsite/internal/errs"
)

func TestParseTime(t *testing.T) {
	cst := time.FixedZone("CST", 8*3600)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"2026-11-27T10:15:04Z", time.Date(2026, 11, 27, 10, 15, 4, 0, time.UTC)},
		{"2026-11-27T18:15:04.123+08:00", time.Date(2026, 11, 27, 18, 15, 4, 123e6, cst)},
		{"1795774504123", time.UnixMilli(1795774504123)},
		{"2026-11-27", time.Date(2026, 11, 27, 0, 0, 0, 0, time.Local)},
	} {
		got, err := api.ParseTime(tc.in)
		require.NoError(t, err, tc.in)
		require.True(t, tc.want.Equal(got), "%s: %s", tc.in, got)
	}
	for _, bad := range []string{"yesterday", "2026-13-01", "2026-11-27 10:15", "-5", "99999999999999999999", "1e12", "0001-01-01T00:00:00Z"} {
		_, err := api.ParseTime(bad)
		require.Error(t, err, bad)
		require.Equal(t, "invalid_time", errs.CodeOf(err), bad)
	}
}

func TestParseLimit(t *testing.T) {
	n, err := api.ParseLimit("", 200, 5000)
	require.NoError(t, err)
	require.Equal(t, 200, n)
	n, err = api.ParseLimit("5000", 200, 5000)
	require.NoError(t, err)
	require.Equal(t, 5000, n)
	for _, bad := range []string{"0", "-1", "5001", "ten", "1.5"} {
		_, err := api.ParseLimit(bad, 200, 5000)
		require.Error(t, err, bad)
	}
}

func FuzzParseTimeParam(f *testing.F) {
	for _, s := range []string{"", "2026-11-27T10:15:04Z", "2026-11-27T18:15:04.123+08:00", "1795774504123", "2026-11-27",
		"9999-12-31T23:59:59Z", "0", "１２３", "2026-11-27T10:15:04+25:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := api.ParseTime(s)
		if err != nil {
			require.Equal(t, "invalid_time", errs.CodeOf(err))
			require.True(t, got.IsZero())
			return
		}
		if got.IsZero() {
			return
		}
		require.GreaterOrEqual(t, got.Year(), 1970)
		require.LessOrEqual(t, got.Year(), 9999)
		// What the API accepted it can be asked again in unix milliseconds.
		again, err := api.ParseTime(strconv.FormatInt(got.UnixMilli(), 10))
		require.NoError(t, err)
		require.Equal(t, got.UnixMilli(), again.UnixMilli())
	})
}
