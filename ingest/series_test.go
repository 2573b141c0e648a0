package ingest_test

import (
	"testing"
	"time"

	"github.com/offsite-gw/offsite/ingest"
	"github.com/offsite-gw/offsite/internal/errs"
)

func TestSeriesQueryResolve(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	q := ingest.SeriesQuery{Device: "dust-1", Metric: "pm10"}
	if err := q.Resolve(now, 0); err != nil {
		t.Fatal(err)
	}
	if !q.To.Equal(now) || !q.From.Equal(now.Add(-24*time.Hour)) || q.Step != 288*time.Second {
		t.Errorf("defaults: from %s to %s step %s", q.From, q.To, q.Step)
	}
	for _, tc := range []struct {
		q    ingest.SeriesQuery
		max  int
		code string
	}{
		{ingest.SeriesQuery{}, 0, "metric_required"},
		{ingest.SeriesQuery{Metric: "pm10", From: now, To: now}, 0, "bad_range"},
		{ingest.SeriesQuery{Metric: "pm10", Step: time.Millisecond}, 0, "bad_step"},
		{ingest.SeriesQuery{Metric: "pm10", Step: time.Second}, 0, "too_many_points"},
		{ingest.SeriesQuery{Metric: "pm10", Step: time.Minute}, 1000, "too_many_points"},
		{ingest.SeriesQuery{Metric: "pm10", Step: time.Minute}, 1440, ""},
	} {
		err := tc.q.Resolve(now, tc.max)
		if tc.code == "" && err != nil || tc.code != "" && (errs.CodeOf(err) != tc.code || errs.KindOf(err) != errs.KindInvalid) {
			t.Errorf("Resolve(%+v, %d) = %v, want code %q", tc.q, tc.max, err, tc.code)
		}
	}
}
