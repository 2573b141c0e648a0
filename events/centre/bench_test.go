package centre_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/centre"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// BenchmarkReceiverBatch is the centre's receiving path in-process (no HTTP): many site
// gateways at once each logging signed batches of sensor events, about 4 % of them alarm
// activations that open alerts. It reports events/s stored; make bench-centre measures the
// same on the real binary. Run with OFFSITE_TEST_PG_DSN set to include PostgreSQL:
//
//	go test -run '^$' -bench ReceiverBatch -benchtime 20x ./events/centre
func BenchmarkReceiverBatch(b *testing.B) {
	const gateways, batch = 100, 100
	for _, be := range storetest.Backends(b) {
		b.Run(be.Name, func(b *testing.B) {
			ctx := context.Background()
			db := be.Open(b, testSchema...)
			sealer, err := devices.NewSealer(devices.GenerateSealerKey())
			if err != nil {
				b.Fatal(err)
			}
			l := &events.Log{DB: db, GatewayID: "centre-01"}
			if err := l.Initialize(); err != nil {
				b.Fatal(err)
			}
			if err := (&events.Alerts{Log: l}).Initialize(); err != nil {
				b.Fatal(err)
			}
			gws := &devices.GatewayStore{DB: db, Sealer: sealer}
			recv := &centre.Receiver{Log: l, Gateways: gws}
			secrets := make([]string, gateways)
			for i := range secrets {
				g := devices.Gateway{ID: fmt.Sprintf("gw-%03d", i)}
				if secrets[i], err = gws.Enrol(ctx, &g, ""); err != nil {
					b.Fatal(err)
				}
			}
			var seq atomic.Int64
			mkBatch := func(gw string) (http.Header, []byte) {
				evs := make([]event.Event, batch)
				now := time.Now()
				for i := range evs {
					n := seq.Add(1)
					e := event.Event{ID: events.NewID(now), Type: "sensor.reading", Severity: "info", OccurredAt: now.UTC().Truncate(time.Millisecond),
						GatewayID: gw, Department: "市应急管理局", Site: &event.Site{ID: gw + "-site", RegionCode: "410702"},
						Device:  &event.Device{ID: fmt.Sprintf("%s-gas-%02d", gw, n%10), Kind: "sensor"},
						Reading: &event.Reading{Metric: "lel", Value: float64(n%150) / 10, Unit: "%LEL"}}
					if n%25 == 0 {
						e.Type, e.Severity, e.State, e.AlarmKey = event.TypeSensorThreshold, "critical", event.StateActive, fmt.Sprintf("%s/lel-high/%d", e.Device.ID, n)
					}
					e.Raw, _ = json.Marshal(&e)
					evs[i] = e
				}
				body := uplink.EncodeBatch(gw, evs)
				req, _ := http.NewRequest(http.MethodPost, "http://centre/offsite/v1/events:batch", nil)
				_ = uplink.SignRequest(req, gw, uplink.AlgSM3, []byte(secrets[gwIndex(gw)]), time.Now(), body)
				return req.Header, body
			}
			// b.N rounds; in each, every gateway sends one batch, all at once.
			var wg sync.WaitGroup
			cpu0 := cpuNow()
			start := time.Now()
			for range b.N {
				for i := range gateways {
					gw := fmt.Sprintf("gw-%03d", i)
					wg.Go(func() {
						h, body := mkBatch(gw)
						resp, err := recv.Batch(ctx, h, body, "127.0.0.1")
						if err != nil || len(resp.Accepted) != batch {
							b.Errorf("batch of %s: %v (%d accepted)", gw, err, len(resp.Accepted))
						}
					})
				}
				wg.Wait()
			}
			el := time.Since(start)
			n := float64(b.N * gateways * batch)
			b.ReportMetric(n/el.Seconds(), "events/s")
			// CPU of this process (receiver and the simulated sites' signing alike) per event:
			// steadier than events/s on a shared machine.
			b.ReportMetric(float64((cpuNow()-cpu0).Microseconds())/n, "cpu-µs/event")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// cpuNow is the CPU time (user + system) this process used so far.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func gwIndex(gw string) int {
	var i int
	_, _ = fmt.Sscanf(gw, "gw-%03d", &i)
	return i
}
