// Command bench-events measures the event path on this machine and prints BENCH lines:
// events durably logged per second on SQLite (batched, and one event per transaction),
// alarms/alerts throughput, delivery to a provincesim receiver over loopback, and the latency
// from Append to a Feed subscriber (what an SSE client sees) under a background load.
// It never asserts; scripts/bench-events.sh runs it with a time bound.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/events/uplink/provincesim"
	"github.com/offsite-gw/offsite/internal/store"
)

func main() {
	n := flag.Int("n", 50000, "events to log in the batched run")
	batch := flag.Int("batch", 500, "events per append transaction")
	upN := flag.Int("uplink-n", 30000, "events to deliver through the uplink")
	bg := flag.Int("background", 1000, "background events/s during the latency run")
	latDur := flag.Duration("latency-for", 5*time.Second, "length of the latency run")
	dsn := flag.String("dsn", "", "store DSN (default: SQLite in a temporary directory)")
	flag.Parse()
	if err := run(*n, *batch, *upN, *bg, *latDur, *dsn); err != nil {
		fmt.Fprintln(os.Stderr, "bench-events:", err)
		os.Exit(1)
	}
}

func ev(i int) event.Event {
	limit := 150.0
	return event.Event{Type: "sensor.threshold", Severity: "major",
		Site:       &event.Site{ID: "site-1", Name: "某建筑工地", RegionCode: "410702", USCC: "91410700MA44XXXX0X"},
		Device:     &event.Device{ID: fmt.Sprintf("dev-%d", i%50), Kind: "sensor", Profile: "generic-json"},
		Department: "市生态环境局", SupervisionItem: "410700-ST-001",
		Reading: &event.Reading{Metric: "pm10", Value: 150 + float64(i%100), Unit: "µg/m³", Limit: &limit},
		Rule:    "pm10-high", Message: fmt.Sprintf("PM10 超标 %d", i)}
}

func openLog(ctx context.Context, dsn, dir, name string) (*events.Log, *store.DB, error) {
	if dsn == "" {
		dsn = "sqlite:" + filepath.Join(dir, name+".db")
	}
	db, err := store.Open(ctx, dsn, dir, devices.Migrations, events.Migrations)
	if err != nil {
		return nil, nil, err
	}
	l := &events.Log{DB: db, GatewayID: "bench-gw", Logger: quiet}
	return l, db, l.Initialize()
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func run(n, batch, upN, bg int, latDur time.Duration, dsn string) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "bench-events-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// 1. Batched append.
	l, db, err := openLog(ctx, dsn, dir, "log")
	if err != nil {
		return err
	}
	start := time.Now()
	for i := 0; i < n; i += batch {
		b := make([]event.Event, min(batch, n-i))
		for j := range b {
			b[j] = ev(i + j)
		}
		if _, err := l.Append(ctx, b...); err != nil {
			return err
		}
	}
	el := time.Since(start)
	fmt.Printf("BENCH events_log events_per_s=%.0f events=%d batch=%d seconds=%.2f backend=%s\n", float64(n)/el.Seconds(), n, batch, el.Seconds(), db.Dialect)

	// 2. One event per transaction (how single producers append), for 2 seconds.
	start = time.Now()
	k := 0
	for time.Since(start) < 2*time.Second {
		if _, err := l.Append(ctx, ev(k)); err != nil {
			return err
		}
		k++
	}
	el = time.Since(start)
	fmt.Printf("BENCH events_log_single events_per_s=%.0f events=%d seconds=%.2f\n", float64(k)/el.Seconds(), k, el.Seconds())

	// 2b. One event per call from 16 producers at once: group commit shares transactions.
	var cnt sync.Map
	var pwg sync.WaitGroup
	start = time.Now()
	for p := 0; p < 16; p++ {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			k := 0
			for time.Since(start) < 2*time.Second {
				if _, err := l.Append(ctx, ev(k)); err != nil {
					panic(err)
				}
				k++
			}
			cnt.Store(p, k)
		}()
	}
	pwg.Wait()
	el = time.Since(start)
	k = 0
	cnt.Range(func(_, v any) bool { k += v.(int); return true })
	fmt.Printf("BENCH events_log_concurrent events_per_s=%.0f events=%d producers=16 seconds=%.2f\n", float64(k)/el.Seconds(), k, el.Seconds())

	// 3. Alarms: every event activates its own alarm, so each opens an alert (2 events, alert row).
	a := &events.Alerts{Log: l, Logger: quiet}
	if err := a.Initialize(); err != nil {
		return err
	}
	start = time.Now()
	na := n / 5
	for i := 0; i < na; i += batch {
		b := make([]event.Event, min(batch, na-i))
		for j := range b {
			b[j] = ev(i + j)
			b[j].State, b[j].AlarmKey = event.StateActive, fmt.Sprintf("bench/%d", i+j)
		}
		if _, err := l.Append(ctx, b...); err != nil {
			return err
		}
	}
	el = time.Since(start)
	fmt.Printf("BENCH events_alarms activations_per_s=%.0f activations=%d\n", float64(na)/el.Seconds(), na)
	db.Close()

	// 4. Delivery to provincesim over loopback while appending.
	l, db, err = openLog(ctx, "", dir, "uplink")
	if err != nil {
		return err
	}
	h := &provincesim.Handler{Secret: []byte("bench"), Logger: quiet}
	if err := h.Initialize(); err != nil {
		return err
	}
	srv := &provincesim.Server{Addr: "127.0.0.1:0", Handler: h}
	if err := srv.Start(); err != nil {
		return err
	}
	defer srv.Stop()
	u := &uplink.Uplink{Config: uplink.Config{Name: "province", BaseURL: srv.URL(), Secret: "bench"}, GatewayID: "bench-gw", Log: l, Logger: quiet}
	if err := u.Initialize(); err != nil {
		return err
	}
	start = time.Now()
	for i := 0; i < upN; i += batch {
		b := make([]event.Event, min(batch, upN-i))
		for j := range b {
			b[j] = ev(i + j)
		}
		if _, err := l.Append(ctx, b...); err != nil {
			return err
		}
	}
	for u.Status().Backlog > 0 {
		time.Sleep(2 * time.Millisecond)
	}
	el = time.Since(start)
	u.Close()
	if got := h.Stats().Received; got != upN {
		return fmt.Errorf("receiver has %d of %d events", got, upN)
	}
	fmt.Printf("BENCH events_uplink events_per_s=%.0f events=%d alg=hmac-sm3 seconds=%.2f\n", float64(upN)/el.Seconds(), upN, el.Seconds())
	db.Close()

	// 5. Append → Feed subscriber latency with a background of single-event appends.
	l, db, err = openLog(ctx, "", dir, "latency")
	if err != nil {
		return err
	}
	defer db.Close()
	feed := &events.Feed{Log: l}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	head, _ := l.Head()
	ch := feed.Subscribe(cctx, head, func(e *event.Event) bool { return e.Type == "bench.probe" })
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(max(bg, 1)))
		defer tick.Stop()
		i := 0
		for cctx.Err() == nil {
			<-tick.C
			_, _ = l.Append(cctx, ev(i))
			i++
		}
	}()
	var mu sync.Mutex
	sent := map[string]time.Time{}
	var lat []time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range ch {
			mu.Lock()
			lat = append(lat, time.Since(sent[e.Message]))
			mu.Unlock()
		}
	}()
	end := time.Now().Add(latDur)
	for i := 0; time.Now().Before(end); i++ {
		p := event.Event{Type: "bench.probe", Severity: "major", Message: fmt.Sprint(i)}
		mu.Lock()
		sent[p.Message] = time.Now()
		mu.Unlock()
		if _, err := l.Append(ctx, p); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	wg.Wait()
	<-done
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) == 0 {
		return fmt.Errorf("no probe arrived")
	}
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	fmt.Printf("BENCH events_feed_latency p50_ms=%.2f p99_ms=%.2f probes=%d background_per_s=%d\n", q(0.5), q(0.99), len(lat), bg)
	return nil
}
