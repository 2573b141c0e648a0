package rules_test

import (
	"context"
	"testing"
	"time"

	"github.com/offsite-gw/offsite/ingest/decode"
)

// BenchmarkObserve pushes batches of three readings of 1,000 devices, each with five rules
// (duration, threshold, rate, silence, a duration with a daily window), through Observe and
// reports readings/s.
func BenchmarkObserve(b *testing.B) {
	const devs = 1000
	p := testProfile(pm10Duration, pm10Threshold, tempRate, silent,
		profileRule("noise-day", "noise", 70))
	h := newHarness(b, nil, p)
	h.e.Devices = testDevices(devs)
	ids := make([]string, devs)
	for i := range ids {
		ids[i] = devID(i)
	}
	batch := []decode.Reading{{Metric: "pm10", Value: 120}, {Metric: "temperature", Value: 20}, {Metric: "noise", Value: 60}}
	ctx := context.Background()
	// Warm up: every device looked up once.
	for _, id := range ids {
		h.e.Observe(ctx, id, batch, day0)
	}
	b.ResetTimer()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			h.e.Observe(ctx, ids[i%devs], batch, day0.Add(time.Duration(i)*time.Millisecond))
			i++
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "readings/s")
}

// BenchmarkTickStore measures one write-behind round when every rule of 1,000 devices changed
// since the last (5,000 rows upserted on SQLite).
func BenchmarkTickStore(b *testing.B) {
	const devs = 1000
	p := testProfile(pm10Duration, pm10Threshold, tempRate, silent, profileRule("noise-day", "noise", 70))
	h := newHarness(b, nil, p)
	h.e.Devices = testDevices(devs)
	batch := []decode.Reading{{Metric: "pm10", Value: 120}, {Metric: "temperature", Value: 20}, {Metric: "noise", Value: 60}}
	ctx := context.Background()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		at := day0.Add(time.Duration(n) * time.Second)
		b.StopTimer()
		for i := 0; i < devs; i++ {
			h.e.Observe(ctx, devID(i), batch, at)
		}
		h.clk.Set(at)
		b.StartTimer()
		if err := h.e.Tick(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
