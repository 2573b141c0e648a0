package main

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/streams"
)

// The benchmark's p50 and p99, read from the relay's Prometheus histogram, are within a
// millisecond of the true quantiles below 50 ms, and count only the window's observations.
func TestHistQuantile(t *testing.T) {
	m := &streams.Manager{Registerer: prometheus.NewRegistry()}
	require.NoError(t, m.Initialize())
	defer m.Close()
	for range 1000 {
		m.Latency.Observe(0.5) // before the window
	}
	before := readHist(m.Latency)
	require.Zero(t, readHist(m.Latency).since(readHist(m.Latency)).quantile(0.99))
	// 1 000 observations evenly from 0.02 ms to 20 ms: p50 10 ms, p99 19.8 ms
	for i := 1; i <= 1000; i++ {
		m.Latency.Observe(float64(i) * 20e-6)
	}
	w := readHist(m.Latency).since(before)
	require.InDelta(t, 10, ms(w.quantile(0.5)), 1)
	require.InDelta(t, 19.8, ms(w.quantile(0.99)), 1)
	require.InDelta(t, 0.5, ms(w.quantile(0.025)), 0.1, "0.1 ms steps below 1 ms")
	// beyond the last bound: the last finite bound
	m.Latency.Observe(60)
	require.Equal(t, 10*time.Second, readHist(m.Latency).since(before).quantile(1))
}
