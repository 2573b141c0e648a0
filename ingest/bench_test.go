package ingest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/offsite-gw/offsite/ingest"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// BenchmarkPipelineToInflux is ingest's own cost per message, without a broker or a real
// InfluxDB: dust-monitor payloads (8 readings) submitted as a subscriber would, decoded,
// validated, batched, encoded and POSTed to a server that only reads the body, from 40
// goroutines as the broker or the MQTT client would. cpu-ns/msg is the CPU time of the whole
// process (submitters, both workers, the writer, the HTTP server) per message.
func BenchmarkPipelineToInflux(b *testing.B) {
	for _, journal := range []bool{false, true} {
		b.Run(fmt.Sprintf("journal=%v", journal), func(b *testing.B) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				w.WriteHeader(http.StatusNoContent)
			}))
			defer srv.Close()
			devs := &fakeDevices{}
			const k = 40
			for i := range k {
				devs.add("s1", fmt.Sprintf("d%02d", i), "dust-noise-monitor")
			}
			dir := &ingest.Directory{Devices: devs, Profiles: registry(b), Logger: quietLogger(), RefreshInterval: -1}
			if err := dir.Initialize(); err != nil {
				b.Fatal(err)
			}
			defer dir.Close()
			quar := &ingest.Quarantine{DB: storetest.SQLite(b, testSchema...), Logger: quietLogger()}
			if err := quar.Initialize(); err != nil {
				b.Fatal(err)
			}
			defer quar.Close()
			tel := &ingest.InfluxStore{URL: srv.URL, Bucket: "b/rp", SpoolDir: b.TempDir(), Logger: quietLogger(), BatchSize: 10000}
			if err := tel.Initialize(); err != nil {
				b.Fatal(err)
			}
			defer tel.Close()
			pipe := &ingest.Pipeline{Directory: dir, Sink: tel, Quarantine: quar, Logger: quietLogger(), QueueSize: 1 << 17}
			if journal {
				pipe.Journal = &ingest.Journal{Dir: b.TempDir()}
			}
			if err := pipe.Initialize(); err != nil {
				b.Fatal(err)
			}
			defer pipe.Close()
			topics := make([]string, k)
			for i := range topics {
				topics[i] = fmt.Sprintf("offsite/s1/d%02d/up", i)
			}
			base := time.Now().UnixMilli()
			payloads := make([][]byte, 1024)
			for i := range payloads {
				payloads[i] = fmt.Appendf(nil, `{"ts": %d, "sn": "B1", "data": {"pm25": %d.5, "pm10": %d, "tsp": 150, "noise": 62.5, "ws": 2.1, "wd": 180, "temp": 11.5, "hum": 55}}`,
					base+int64(i), 20+i%50, 60+i%90)
			}
			c0 := cpuSeconds()
			b.ReportAllocs()
			// 40 submitters, as the broker's client loops or the MQTT client's handlers are.
			var next, total atomic.Int64
			b.SetParallelism(k / runtime.GOMAXPROCS(0))
			b.RunParallel(func(pb *testing.PB) {
				topic := topics[int(next.Add(1)-1)%k]
				i := 0
				for pb.Next() {
					// A fresh payload slice per message, as the MQTT client hands over.
					p := append([]byte(nil), payloads[i%len(payloads)]...)
					pipe.Submit(ingest.Message{Topic: topic, Payload: p})
					i++
				}
				total.Add(int64(i))
			})
			i := total.Load()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := pipe.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			if err := tel.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric((cpuSeconds()-c0)*1e9/float64(i), "cpu-ns/msg")
			if st := pipe.Stats(); st.Stored != i {
				b.Fatalf("stored %d of %d", st.Stored, i)
			}
		})
	}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
