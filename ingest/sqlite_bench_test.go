package ingest_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/offsite-gw/offsite/ingest"
)

// BenchmarkSQLiteTelemetryWrite: readings written per second by the SQLite telemetry store's
// one writer (9 metrics a message, as an HJ 212 upload of 8 pollutants and a marker).
func BenchmarkSQLiteTelemetryWrite(b *testing.B) {
	s := &ingest.SQLiteTelemetry{Path: b.TempDir() + "/telemetry.db", Logger: quietLogger(), MaxPending: 1 << 30}
	if err := s.Initialize(); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	base := time.Now()
	devs := make([]string, 1000)
	for i := range devs {
		devs[i] = fmt.Sprintf("st-%04d", i)
	}
	metrics := []string{"m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"}
	rs := make([]ingest.Reading, 9)
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := range b.N {
		t := base.Add(time.Duration(i) * time.Millisecond)
		for j := range rs {
			rs[j] = ingest.Reading{Device: devs[i%1000], Site: "s", Metric: metrics[j], Value: float64(i),
				Unit: "mg/L", Quality: ingest.QualityGood, Flag: "N", Time: t, ReceiveTime: t}
		}
		s.Write(rs)
		if s.Backlogged() {
			// as the pipeline does: hold the source back while the writer is behind
			for s.Backlogged() {
				time.Sleep(time.Millisecond)
			}
		}
	}
	if err := s.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N*9)/b.Elapsed().Seconds(), "readings/s")
	// CPU time of the process per reading: steadier than the rate on a shared machine.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N*9), "cpu_us/reading")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
