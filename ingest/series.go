package ingest

import (
	"time"

	"github.com/offsite-gw/offsite/internal/errs"
)

// DefaultMaxPoints bounds the steps of a series when the caller names no bound.
const DefaultMaxPoints = 5000

// Resolve fills a series query's defaults and checks it before it reaches a telemetry store.
// A zero To is now, a zero From 24 hours before To, a zero Step gives about 300 points (at
// least one second). The query needs a metric, From before To, a step of at least one second
// and at most maxPoints steps (DefaultMaxPoints when maxPoints <= 0). Problems are
// errs.KindInvalid with the codes metric_required, bad_range, bad_step and too_many_points.
func (q *SeriesQuery) Resolve(now time.Time, maxPoints int) error {
	if q.Metric == "" {
		return errs.E(errs.KindInvalid, "metric_required", "query parameter metric is required")
	}
	if q.To.IsZero() {
		q.To = now
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-24 * time.Hour)
	}
	if !q.From.Before(q.To) {
		return errs.E(errs.KindInvalid, "bad_range", "from must be before to")
	}
	if maxPoints <= 0 {
		maxPoints = DefaultMaxPoints
	}
	if q.Step == 0 {
		q.Step = max(time.Second, (q.To.Sub(q.From) / 300).Truncate(time.Second))
	}
	if q.Step < time.Second {
		return errs.E(errs.KindInvalid, "bad_step", "step must be a duration of at least 1s, e.g. 30s, 5m, 1h")
	}
	if q.To.Sub(q.From)/q.Step > time.Duration(maxPoints) {
		return errs.E(errs.KindInvalid, "too_many_points", "the range holds more than %d steps: use a larger step", maxPoints)
	}
	return nil
}
