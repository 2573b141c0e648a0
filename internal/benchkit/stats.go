package benchkit

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// Pct is the p-th percentile (nearest rank) of ds; 0 for none.
func Pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// MS is d in milliseconds with microsecond precision.
func MS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// FormatCounters prints the non-zero counters of m as key=value, sorted, leaving out
// histogram buckets.
func FormatCounters(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		if m[k] == 0 || strings.Contains(k, "_bucket") {
			continue
		}
		fmt.Fprintf(&b, "%s=%g ", k, m[k])
	}
	return strings.TrimSpace(b.String())
}
