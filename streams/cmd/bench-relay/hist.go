package main

import (
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// histCounts is a Prometheus histogram's cumulative bucket counts at one moment. A Prometheus
// histogram cannot be reset, so a measurement window is the difference of two of them.
type histCounts struct {
	bounds []float64 // upper bounds in seconds, the last +Inf
	counts []uint64  // cumulative
}

func readHist(h prometheus.Histogram) histCounts {
	var m dto.Metric
	must(h.Write(&m))
	var c histCounts
	for _, b := range m.GetHistogram().GetBucket() {
		c.bounds = append(c.bounds, b.GetUpperBound())
		c.counts = append(c.counts, b.GetCumulativeCount())
	}
	c.bounds = append(c.bounds, math.Inf(1))
	c.counts = append(c.counts, m.GetHistogram().GetSampleCount())
	return c
}

// since returns the observations made after old, an earlier reading of the same histogram
// (or the zero histCounts, for all of them).
func (c histCounts) since(old histCounts) histCounts {
	d := histCounts{bounds: c.bounds, counts: make([]uint64, len(c.counts))}
	for i, n := range c.counts {
		if i < len(old.counts) {
			n -= old.counts[i]
		}
		d.counts[i] = n
	}
	return d
}

// quantile estimates the q-quantile (0 < q ≤ 1) as Prometheus' histogram_quantile does: by
// linear interpolation within the bucket that holds it, or the last finite bound if that
// bucket is the +Inf one. 0 without observations.
func (c histCounts) quantile(q float64) time.Duration {
	n := c.counts[len(c.counts)-1]
	if n == 0 {
		return 0
	}
	rank := q * float64(n)
	lower, below := 0.0, uint64(0)
	for i, cum := range c.counts {
		if float64(cum) >= rank && cum > below {
			if math.IsInf(c.bounds[i], 1) {
				return seconds(lower)
			}
			return seconds(lower + (c.bounds[i]-lower)*(rank-float64(below))/float64(cum-below))
		}
		lower, below = c.bounds[i], cum
	}
	return seconds(lower)
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
