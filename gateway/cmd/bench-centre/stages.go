package main

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// stagePrefixes are the centre's histograms that split an event's way from a site's batch to
// the officer's stream into stages (docs/benchmarks.md, bench-centre).
var stagePrefixes = []string{"offsite_centre_", "offsite_events_"}

// stageLines summarises every histogram between two scrapes of the centre's metrics (the
// latency phase's measurement): observations, mean, and the bucket bounds holding the median
// and the 99th percentile.
func stageLines(before, after map[string]float64) []string {
	type bucket struct {
		le float64
		n  float64
	}
	hist := map[string][]bucket{}
	for k, v := range after {
		i := strings.Index(k, "_bucket{")
		if i < 0 {
			continue
		}
		name, labels := k[:i], k[i+len("_bucket{"):len(k)-1]
		var le float64
		var rest []string
		for _, l := range strings.Split(labels, ",") {
			if s, ok := strings.CutPrefix(l, `le="`); ok {
				s = strings.TrimSuffix(s, `"`)
				if s == "+Inf" {
					le = math.Inf(1)
				} else {
					le, _ = strconv.ParseFloat(s, 64)
				}
				continue
			}
			rest = append(rest, l)
		}
		if len(rest) > 0 {
			name += "{" + strings.Join(rest, ",") + "}"
		}
		hist[name] = append(hist[name], bucket{le, v - before[k]})
	}
	names := make([]string, 0, len(hist))
	for n := range hist {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []string
	for _, name := range names {
		bs := hist[name]
		sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
		total := bs[len(bs)-1].n
		if total <= 0 {
			continue
		}
		base, labels, _ := strings.Cut(name, "{")
		suffix := ""
		if labels != "" {
			suffix = "{" + labels
		}
		sum := after[base+"_sum"+suffix] - before[base+"_sum"+suffix]
		at := func(p float64) string {
			for _, b := range bs {
				if b.n >= total*p {
					return fmt.Sprintf("≤%g", b.le)
				}
			}
			return "?"
		}
		out = append(out, fmt.Sprintf("%s n=%.0f mean=%.4g p50%s p99%s", name, total, sum/total, at(0.5), at(0.99)))
	}
	return out
}
