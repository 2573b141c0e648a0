// Command bench-centre measures a city centre on the real binary: how many events per second
// 100 site gateways can get stored at one centre, and how long an event takes from its
// creation at a site to an officer's live event stream at the centre under a steady load.
//
// For each store (SQLite, and PostgreSQL when -pg-dsn is given) it starts `offsite serve`
// (bin/offsite) as a child process in a temporary data directory with every listener on
// loopback, reads the first-start admin password from its stdout, enrols -gateways site
// gateways through POST /api/v1/gateways (keeping the secret each answer shows once), creates
// an officer of the sites' department and opens GET /api/v1/events/stream as him. Then:
//
//  1. Throughput: every simulated site posts signed batches of -batch events to
//     POST /offsite/v1/events:batch one after the other, as fast as the centre answers, for
//     -throughput-for; events_per_s is what the centre answered as accepted (stored and
//     committed) per second of wall time.
//  2. Latency: the sites make -rate events per second in total (evenly spread, each site at
//     rate/gateways), and each posts whatever it has as soon as its previous batch was
//     answered, as the site's centre uplink does. After -warmup, for -latency-for, every
//     event's creation time is noted; p99_ms is the 99th percentile from creation to the
//     officer's SSE frame for that event (lost: never seen within 10 s). alert_p99_ms is
//     the same from an alarm activation's creation to the alert frame it caused (alert.opened,
//     or alert.recurred while that alarm's alert is still open).
//
// The event mix is what a kitchen's gas detectors send: sensor readings forwarded as events,
// about 4 % alarm activations (each opens an alert) and their clears. Sites retry a refused
// or failed batch with backoff, like events/uplink. CPU (percent of one core) and peak RSS of
// the centre's PID, from /proc, are recorded per phase. The last lines are
//
//	BENCH centre store=sqlite events_per_s=… p99_ms=… cpu_pct=… rss_mb=… …
//	BENCH centre store=postgres …
//
// where cpu_pct and rss_mb are those of the throughput phase (load_cpu_pct, load_rss_mb: the
// latency phase), centre_cpu_us_per_event the centre's CPU time per stored event in the
// throughput phase, bench_cpu_pct this program's own CPU (the simulated sites share the
// machine) and load1 the machine's load at the end. It never asserts on a figure; it fails
// only when it cannot measure.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/benchkit"
)

type options struct {
	bin           string
	pgDSN         string
	gateways      int
	batch         int
	throughputFor time.Duration
	rate          float64
	warmup        time.Duration
	latencyFor    time.Duration
	lostAfter     time.Duration
	keep          bool
	stores        string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/offsite", "the offsite binary (CGO_ENABLED=0 go build -o bin/offsite ./gateway)")
	flag.StringVar(&o.pgDSN, "pg-dsn", "", "PostgreSQL DSN of an empty throw-away database for the second run (empty: SQLite only)")
	flag.IntVar(&o.gateways, "gateways", 100, "simulated site gateways")
	flag.IntVar(&o.batch, "batch", 100, "events per batch in the throughput phase")
	flag.DurationVar(&o.throughputFor, "throughput-for", 20*time.Second, "length of the throughput phase")
	flag.Float64Var(&o.rate, "rate", 1000, "events per second in total during the latency phase")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "latency phase: load before measuring")
	flag.DurationVar(&o.latencyFor, "latency-for", 30*time.Second, "latency phase: measurement length")
	flag.DurationVar(&o.lostAfter, "lost-after", 10*time.Second, "an event not on the officer's stream this long after the end counts as lost")
	flag.BoolVar(&o.keep, "keep", false, "keep the centres' data directories (logs) instead of removing them")
	flag.StringVar(&o.stores, "stores", "sqlite,postgres", "which stores to measure, comma-separated (postgres needs -pg-dsn)")
	flag.Parse()
	lg := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var stores []struct{ name, dsn string }
	want := "," + o.stores + ","
	if strings.Contains(want, ",sqlite,") {
		stores = append(stores, struct{ name, dsn string }{"sqlite", ""})
	}
	if o.pgDSN != "" && strings.Contains(want, ",postgres,") {
		stores = append(stores, struct{ name, dsn string }{"postgres", o.pgDSN})
	}
	var lines []string
	for _, st := range stores {
		line, err := run(ctx, o, st.name, st.dsn, lg.With("store", st.name))
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench-centre (%s): %v\n", st.name, err)
			os.Exit(1)
		}
		lines = append(lines, line)
	}
	for _, l := range lines {
		fmt.Println(l)
	}
}

// tracker matches SSE frames to the events the sites made.
type tracker struct {
	siteFrames  atomic.Int64 // frames of site events (any phase)
	alertFrames atomic.Int64 // alert.opened/recurred/escalated frames (any phase)

	mu       sync.Mutex
	created  map[string]time.Time // measured event id → creation
	alarms   map[string]time.Time // measured activation's alarm key → creation
	lat      []time.Duration
	alertLat []time.Duration
	// The two halves of lat: creation → the centre's answer to the batch (the site's wait
	// for its previous batch, the request, the commit), and that answer → the SSE frame.
	answer   map[string]time.Time // measured event id → when its batch was answered
	born     map[string]time.Time // measured event id → creation, kept after its frame
	early    map[string]time.Time // measured event id → its frame, seen before the answer
	toAnswer []time.Duration
	toFrame  []time.Duration
	measured int
	activ    int
}

func newTracker() *tracker {
	return &tracker{created: map[string]time.Time{}, alarms: map[string]time.Time{}, answer: map[string]time.Time{},
		born: map[string]time.Time{}, early: map[string]time.Time{}}
}

// answered notes when the batch holding evs was answered, for the measured ones.
func (t *tracker) answered(evs []event.Event, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range evs {
		id := evs[i].ID
		c, ok := t.born[id]
		if !ok {
			continue
		}
		delete(t.born, id)
		t.toAnswer = append(t.toAnswer, at.Sub(c))
		if f, ok := t.early[id]; ok {
			t.toFrame = append(t.toFrame, max(0, f.Sub(at)))
			delete(t.early, id)
		} else {
			t.answer[id] = at
		}
	}
}

func (t *tracker) add(e *event.Event, kind int, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.created[e.ID] = at
	t.born[e.ID] = at
	t.measured++
	if kind == kindActivation {
		t.alarms[e.AlarmKey] = at
		t.activ++
	}
}

func (t *tracker) onEvent(at time.Time, e sseEvent) {
	switch {
	case e.Type == "alert.opened" || e.Type == "alert.recurred" || e.Type == "alert.escalated":
		// An activation opens an alert, or, while the alarm's alert is still open, adds an
		// occurrence to it (or raises its severity): either is the officer's alert frame.
		t.alertFrames.Add(1)
		t.mu.Lock()
		if c, ok := t.alarms[e.AlarmKey]; ok {
			t.alertLat = append(t.alertLat, at.Sub(c))
			delete(t.alarms, e.AlarmKey)
		}
		t.mu.Unlock()
	case strings.HasPrefix(e.GatewayID, "bench-gw-"):
		t.siteFrames.Add(1)
		t.mu.Lock()
		if c, ok := t.created[e.ID]; ok {
			t.lat = append(t.lat, at.Sub(c))
			delete(t.created, e.ID)
		}
		if a, ok := t.answer[e.ID]; ok {
			t.toFrame = append(t.toFrame, at.Sub(a))
			delete(t.answer, e.ID)
		} else if _, ok := t.born[e.ID]; ok {
			t.early[e.ID] = at
		}
		t.mu.Unlock()
	}
}

func (t *tracker) outstanding() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.created) + len(t.alarms)
}

// run measures one centre on one store and returns its BENCH line.
func run(ctx context.Context, o options, storeName, dsn string, lg *slog.Logger) (string, error) {
	dir, err := os.MkdirTemp("", "bench-centre-"+storeName+"-")
	if err != nil {
		return "", err
	}
	var c *benchkit.Proc
	stopped := false
	defer func() {
		if !stopped && c != nil {
			_ = c.Stop()
		}
		if o.keep {
			lg.Info("data directory kept", "dir", dir)
		} else {
			_ = os.RemoveAll(dir)
		}
	}()
	if c, err = startCentre(ctx, o.bin, dir, dsn, lg); err != nil {
		return "", err
	}
	// One connection per site, as 100 separate gateways would have.
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConns: 4 * o.gateways,
		MaxIdleConnsPerHost: 4 * o.gateways, IdleConnTimeout: time.Minute}}
	admin, err := benchkit.Login(ctx, c.HTTP, hc, "admin", c.AdminPassword())
	if err != nil {
		return "", err
	}
	began := time.Now()
	sites, err := enrol(ctx, admin, o.gateways)
	if err != nil {
		return "", err
	}
	lg.Info("gateways enrolled", "n", len(sites), "took", time.Since(began).Round(time.Millisecond))
	officer, err := createOfficer(ctx, admin)
	if err != nil {
		return "", err
	}
	tr := newTracker()
	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	streamDone, err := openStream(streamCtx, officer, tr.onEvent)
	if err != nil {
		return "", err
	}
	p := &poster{Base: c.HTTP, HTTP: hc}

	// 1. Throughput.
	lg.Info("throughput phase", "gateways", len(sites), "batch", o.batch, "for", o.throughputFor, "load1", benchkit.LoadAvg())
	u, self := benchkit.Watch(c.Pid()), benchkit.Watch(os.Getpid())
	cpuAt := benchkit.CPUTime(c.Pid())
	stored, activations, elapsed, err := throughput(ctx, p, sites, o.batch, o.throughputFor)
	cpuUsed := benchkit.CPUTime(c.Pid()) - cpuAt
	cpuPct, rssMB := u.End()
	benchPct, _ := self.End()
	if err != nil {
		return "", err
	}
	perS := float64(stored) / elapsed.Seconds()
	// CPU the centre spent per stored event: steadier than events/s on a shared machine.
	usPerEvent := float64(cpuUsed.Microseconds()) / max(float64(stored), 1)
	lg.Info("throughput", "stored", stored, "seconds", elapsed.Seconds(), "events_per_s", int(perS), "alarm_activations", activations,
		"centre_cpu_pct", int(cpuPct), "centre_cpu_us_per_event", int(usPerEvent), "centre_rss_mb", int(rssMB),
		"bench_cpu_pct", int(benchPct), "load1", benchkit.LoadAvg())
	// The officer's stream catches up before the latency phase starts.
	catchUp := time.Now()
	for tr.siteFrames.Load() < stored {
		select {
		case err := <-streamDone:
			return "", err
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Since(catchUp) > 2*time.Minute {
			return "", fmt.Errorf("the officer's stream shows %d of %d stored events 2 minutes after the throughput phase", tr.siteFrames.Load(), stored)
		}
	}
	lg.Info("officer's stream caught up", "after", time.Since(catchUp).Round(time.Millisecond), "frames", tr.siteFrames.Load(), "alert_opened_frames", tr.alertFrames.Load())

	// 2. Latency at a fixed load.
	lg.Info("latency phase", "events_per_s", o.rate, "warmup", o.warmup, "for", o.latencyFor)
	var lu *benchkit.Usage
	var stagesBefore map[string]float64
	loadStored, err := steady(ctx, p, sites, o.rate, o.warmup, o.latencyFor, tr, func() {
		lu = benchkit.Watch(c.Pid())
		stagesBefore, _ = admin.Metrics(ctx, stagePrefixes...)
	})
	if err != nil {
		return "", err
	}
	if stagesAfter, err := admin.Metrics(ctx, stagePrefixes...); err == nil && stagesBefore != nil {
		for _, l := range stageLines(stagesBefore, stagesAfter) {
			lg.Info("latency phase stage", "histogram", l)
		}
	}
	loadCPU, loadRSS := lu.End()
	wait := time.Now()
	for tr.outstanding() > 0 && time.Since(wait) < o.lostAfter {
		select {
		case err := <-streamDone:
			return "", err
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	counters, err := admin.Metrics(ctx, "offsite_centre_")
	if err != nil {
		lg.Warn("metrics", "err", err)
	}
	stopStream()
	stopped = true
	if err := c.Stop(); err != nil {
		lg.Warn("centre stop", "err", err)
	}
	warns, errCount := c.CountLogLines()
	var retries, rejected int64
	for _, s := range sites {
		retries += s.retries.Load()
		rejected += s.rejected.Load()
	}
	accepted := counters[`offsite_centre_events_total{outcome="accepted"}`]
	lg.Info("centre", "log_warnings", warns, "log_errors", errCount, "site_retries", retries, "events_accepted_metric", accepted,
		"events_accepted_answers", stored+loadStored, "counters", benchkit.FormatCounters(counters))
	if int64(accepted) != stored+loadStored {
		lg.Warn("the centre's accepted counter differs from the sites' answers", "metric", accepted, "answers", stored+loadStored)
	}

	tr.mu.Lock()
	defer tr.mu.Unlock()
	lost := len(tr.created)
	alertsLost := len(tr.alarms)
	lg.Info("latency (ms)", "samples", len(tr.lat), "p50", benchkit.MS(benchkit.Pct(tr.lat, 50)), "p90", benchkit.MS(benchkit.Pct(tr.lat, 90)), "p99", benchkit.MS(benchkit.Pct(tr.lat, 99)),
		"max", benchkit.MS(benchkit.Pct(tr.lat, 100)), "lost", lost, "alerts", len(tr.alertLat), "alert_p99", benchkit.MS(benchkit.Pct(tr.alertLat, 99)), "alerts_lost", alertsLost,
		"centre_cpu_pct", int(loadCPU), "centre_rss_mb", int(loadRSS), "cores", runtime.NumCPU(), "load1", benchkit.LoadAvg())
	// A frame can come before the site reads its answer; answer_to_frame counts it as 0.
	lg.Info("latency split (ms)", "to_answer_p50", benchkit.MS(benchkit.Pct(tr.toAnswer, 50)), "to_answer_p99", benchkit.MS(benchkit.Pct(tr.toAnswer, 99)),
		"answer_to_frame_p50", benchkit.MS(benchkit.Pct(tr.toFrame, 50)), "answer_to_frame_p99", benchkit.MS(benchkit.Pct(tr.toFrame, 99)))
	return fmt.Sprintf("BENCH centre store=%s events_per_s=%.0f p99_ms=%.1f cpu_pct=%.0f rss_mb=%.0f gateways=%d batch=%d p50_ms=%.1f max_ms=%.1f lost=%d "+
		"load_events_per_s=%.0f load_cpu_pct=%.0f load_rss_mb=%.0f alert_p99_ms=%.1f alerts=%d alerts_lost=%d site_retries=%d rejected=%d "+
		"centre_cpu_us_per_event=%.0f bench_cpu_pct=%.0f load1=%s",
		storeName, perS, benchkit.MS(benchkit.Pct(tr.lat, 99)), cpuPct, rssMB, len(sites), o.batch, benchkit.MS(benchkit.Pct(tr.lat, 50)), benchkit.MS(benchkit.Pct(tr.lat, 100)), lost,
		o.rate, loadCPU, loadRSS, benchkit.MS(benchkit.Pct(tr.alertLat, 99)), len(tr.alertLat), alertsLost, retries, rejected,
		usPerEvent, benchPct, benchkit.LoadAvg()), nil
}

// throughput has every site post batches back to back until the phase ends; it returns the
// events the centre accepted, the alarm activations among them and the wall time from the
// first request to the last answer.
func throughput(ctx context.Context, p *poster, sites []*site, batch int, d time.Duration) (stored, activations int64, elapsed time.Duration, err error) {
	var (
		n, act  atomic.Int64
		errOnce sync.Once
		first   error
		wg      sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(d)
	for _, s := range sites {
		wg.Go(func() {
			evs := make([]event.Event, batch)
			for time.Now().Before(end) && ctx.Err() == nil {
				now := time.Now()
				a := 0
				for i := range evs {
					var k int
					evs[i], k = s.next(now)
					if k == kindActivation {
						a++
					}
				}
				acc, _, err := p.post(ctx, s, evs, 0)
				if err != nil {
					errOnce.Do(func() { first = err })
					return
				}
				n.Add(int64(acc))
				act.Add(int64(a))
			}
		})
	}
	wg.Wait()
	return n.Load(), act.Load(), time.Since(start), first
}

// steady makes rate events per second in total, spread over the sites, for warmup + measure;
// each site posts what it has whenever its previous batch was answered. Events made after the
// warm-up are tracked. measuring is called when the measurement starts. It returns the events
// the centre accepted.
func steady(ctx context.Context, p *poster, sites []*site, rate float64, warmup, measure time.Duration, tr *tracker, measuring func()) (int64, error) {
	every := time.Duration(float64(time.Second) * float64(len(sites)) / rate)
	start := time.Now()
	warmEnd, end := start.Add(warmup), start.Add(warmup+measure)
	var (
		n       atomic.Int64
		errOnce sync.Once
		first   error
		wg      sync.WaitGroup
	)
	go func() {
		select {
		case <-time.After(time.Until(warmEnd)):
			measuring()
		case <-ctx.Done():
		}
	}()
	for i, s := range sites {
		var (
			mu      sync.Mutex
			pending []event.Event
			made    = make(chan struct{}, 1)
			genDone = make(chan struct{})
		)
		wg.Go(func() { // the site's rules: events as things happen
			defer close(genDone)
			select { // staggered, so the load is smooth rather than a burst each tick
			case <-time.After(every * time.Duration(i) / time.Duration(len(sites))):
			case <-ctx.Done():
				return
			}
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				now := time.Now()
				if !now.Before(end) {
					return
				}
				e, k := s.next(now)
				if !now.Before(warmEnd) {
					tr.add(&e, k, now)
				}
				mu.Lock()
				pending = append(pending, e)
				mu.Unlock()
				select {
				case made <- struct{}{}:
				default:
				}
			}
		})
		wg.Go(func() { // the site's centre uplink: everything pending, one batch at a time
			for {
				select {
				case <-made:
				case <-genDone:
				case <-ctx.Done():
					return
				}
				for {
					mu.Lock()
					k := min(len(pending), 500)
					evs := pending[:k:k]
					pending = pending[k:]
					left := len(pending)
					mu.Unlock()
					if k == 0 {
						break
					}
					acc, _, err := p.post(ctx, s, evs, left)
					if err != nil {
						errOnce.Do(func() { first = err })
						return
					}
					n.Add(int64(acc))
					tr.answered(evs, time.Now())
				}
				select {
				case <-genDone:
					mu.Lock()
					left := len(pending)
					mu.Unlock()
					if left == 0 {
						return
					}
				default:
				}
			}
		})
	}
	wg.Wait()
	return n.Load(), first
}
