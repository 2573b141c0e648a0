// Command bench-alert-latency measures, end to end on the real binary, how long a sensor
// reading that crosses a threshold takes to reach an officer's live event stream, under a
// steady background of ordinary readings.
//
// It starts `offsite serve` (bin/offsite) as a child process in a temporary data directory
// with every listener on loopback, the SQLite store and a short rules.cooldown; reads the
// first-start admin password from its stdout; imports a site of gas detectors (profile
// gas-detector, rule lel-high: lel ≥ 20 %LEL, critical) and a construction site of dust
// monitors through POST /api/v1/devices/import; creates an officer of 市应急管理局 and opens
// GET /api/v1/events/stream as that officer. The dust monitors then publish a background of
// -background messages/s (QoS 1, each with four readings, all below their thresholds) while,
// every -every, one gas detector in turn publishes a reading over the line (each with its own
// value, so an event is matched to exactly one publish) and the detector half a round ahead
// publishes a normal reading that clears its alarm before its next turn, past the cooldown.
//
// For each crossing it records the time just before the MQTT publish and the arrival of the
// sensor.threshold (active, rule lel-high) frame of that alarm and value and of the alert frame
// of that detector and value (alert.opened, or alert.recurred / alert.escalated: one alert
// stands for a detector's reading while it is not closed) on the SSE stream, and prints
//
//	BENCH events_alert_latency samples=… p50_ms=… p99_ms=… max_ms=… background_readings_per_s=… lost=…
//	BENCH events_alert_opened_latency …
//
// where lost counts crossings with no such frame within -lost-after. Background rates are
// what the broker acknowledged during the measurement (messages, and values = 4 per message).
// The gateway is stopped with SIGTERM at the end. It never asserts on a figure; it fails only
// when it cannot run the measurement.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/offsite-gw/offsite/internal/benchkit"
)

type options struct {
	bin        string
	gas        int
	bgDevices  int
	bgRate     float64
	window     int
	every      time.Duration
	warmup     time.Duration
	measure    time.Duration
	lostAfter  time.Duration
	cooldown   time.Duration
	keep       bool
	routeLimit time.Duration
	samples    string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/offsite", "the offsite binary (CGO_ENABLED=0 go build -o bin/offsite ./gateway)")
	flag.IntVar(&o.gas, "gas", 20, "gas detectors taking turns to cross the threshold")
	flag.IntVar(&o.bgDevices, "background-devices", 50, "dust monitors publishing the background")
	flag.Float64Var(&o.bgRate, "background", 1000, "background messages per second (each carries 4 readings)")
	flag.IntVar(&o.window, "window", 16, "unacknowledged background publishes per device")
	flag.DurationVar(&o.every, "every", 200*time.Millisecond, "one threshold crossing this often")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "crossings and background before measuring")
	flag.DurationVar(&o.measure, "for", 60*time.Second, "length of the measurement")
	flag.DurationVar(&o.lostAfter, "lost-after", 5*time.Second, "a crossing with no event within this is lost")
	flag.DurationVar(&o.cooldown, "cooldown", time.Second, "rules.cooldown of the gateway")
	flag.BoolVar(&o.keep, "keep", false, "keep the gateway's data directory (and its gateway.log)")
	flag.DurationVar(&o.routeLimit, "route-limit", 30*time.Second, "longest wait for the gateway to route the new devices")
	flag.StringVar(&o.samples, "samples", "", "write every measured crossing to this CSV file (times in ms after the publish)")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, logger); err != nil {
		fmt.Fprintln(os.Stderr, "bench-alert-latency:", err)
		os.Exit(1)
	}
}

func (o options) check() error {
	switch {
	case o.gas < 2:
		return errors.New("-gas must be at least 2")
	case o.every <= 0 || o.measure <= 0 || o.lostAfter <= 0:
		return errors.New("-every, -for and -lost-after must be positive")
	case time.Duration(o.gas/2)*o.every <= o.cooldown+o.every:
		// A detector clears half a round after its crossing and crosses again half a round
		// later: both halves must outlast the cooldown, or the crossing is suppressed.
		return fmt.Errorf("-gas %d × -every %s gives %s between a clear and the next crossing; it must exceed -cooldown %s by one -every",
			o.gas, o.every, time.Duration(o.gas/2)*o.every, o.cooldown)
	}
	return nil
}

// crossing is one threshold-crossing publish and what the stream made of it.
type crossing struct {
	device            string
	value             float64
	measured          bool
	pub, ack          time.Time
	threshold, opened time.Time
	appended          time.Time // occurred_at of alert.opened: inside the append transaction (ms)
}

// tracker matches stream frames to crossings by alarm key and value (in tenths).
type tracker struct {
	mu        sync.Mutex
	byKey     map[string]*crossing
	all       []*crossing
	dups      int
	unmatched int
}

func crossingKey(alarmKey string, v float64) string {
	return fmt.Sprintf("%s|%d", alarmKey, int64(math.Round(v*10)))
}

func (t *tracker) add(alarmKey string, v float64, measured bool) *crossing {
	c := &crossing{device: strings.TrimSuffix(alarmKey, "/lel-high"), value: v, measured: measured, pub: time.Now()}
	t.mu.Lock()
	t.byKey[crossingKey(alarmKey, v)] = c
	t.all = append(t.all, c)
	t.mu.Unlock()
	return c
}

// isAlertFrame: the frame that puts a crossing in front of the officer. One alert stands for
// a detector's reading (its low and high limit, and every occurrence while not closed), so a
// crossing shows as alert.opened, as alert.recurred of the detector's alert, or as
// alert.escalated when the low limit's alarm came first — whichever of its two rules, lel-low
// or lel-high, reached the alerts first.
func isAlertFrame(t string) bool {
	return t == "alert.opened" || t == "alert.recurred" || t == "alert.escalated"
}

func (t *tracker) onEvent(at time.Time, e sseEvent) {
	if e.Reading == nil {
		return
	}
	var field func(*crossing) *time.Time
	key := e.AlarmKey
	switch {
	case e.Rule == "lel-high" && e.Type == "sensor.threshold" && e.State == "active":
		field = func(c *crossing) *time.Time { return &c.threshold }
	case (e.Rule == "lel-high" || e.Rule == "lel-low") && isAlertFrame(e.Type):
		field = func(c *crossing) *time.Time { return &c.opened }
		key = strings.TrimSuffix(e.AlarmKey, "/"+e.Rule) + "/lel-high"
	default:
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.byKey[crossingKey(key, e.Reading.Value)]
	switch {
	case c == nil:
		t.unmatched++
	case !field(c).IsZero():
		t.dups++
	default:
		*field(c) = at
		if isAlertFrame(e.Type) {
			c.appended = e.OccurredAt
		}
	}
}

// outstanding counts measured crossings published less than lostAfter ago still missing a frame.
func (t *tracker) outstanding(now time.Time, lostAfter time.Duration) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, c := range t.all {
		if c.measured && now.Sub(c.pub) < lostAfter && (c.threshold.IsZero() || c.opened.IsZero()) {
			n++
		}
	}
	return n
}

func run(ctx context.Context, o options, lg *slog.Logger) (err error) {
	if err := o.check(); err != nil {
		return err
	}
	if _, err := os.Stat(o.bin); err != nil {
		return fmt.Errorf("gateway binary: %w (build it: CGO_ENABLED=0 go build -o bin/offsite ./gateway)", err)
	}
	bin, _ := filepath.Abs(o.bin)
	dir, err := os.MkdirTemp("", "bench-alert-latency-")
	if err != nil {
		return err
	}
	var gw *gatewayProc
	defer func() {
		if err != nil && gw != nil && gw.LogPath != "" {
			err = fmt.Errorf("%w\n(gateway log %s, last lines:)\n%s", err, gw.LogPath, gw.Tail(15))
			o.keep = true
		}
		if o.keep {
			lg.Info("data directory kept", "dir", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	if gw, err = startGateway(ctx, bin, dir, o.cooldown, lg); err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = gw.Stop()
		}
	}()

	hc := &http.Client{Timeout: 30 * time.Second}
	admin, err := benchkit.Login(ctx, gw.HTTP, hc, "admin", gw.AdminPassword())
	if err != nil {
		return err
	}
	f := newFleet(o.gas, o.bgDevices)
	officer, err := register(ctx, admin, f)
	if err != nil {
		return err
	}
	lg.Info("registered", "gas_detectors", len(f.Gas), "dust_monitors", len(f.Background), "sse_user", "bench-officer (officer, 市应急管理局)")

	// The gateway's device directory reloads every few seconds; until it has the new devices
	// it refuses their logins.
	routedAt := time.Now()
	if err := waitRouted(ctx, gw.MQTT, f.Gas[0], o.routeLimit); err != nil {
		return err
	}
	lg.Info("devices known to the broker", "after", time.Since(routedAt).Round(time.Millisecond))
	gasClients, err := connectAll(gw.MQTT, f.Gas)
	if err != nil {
		return err
	}
	defer disconnectAll(gasClients)
	bgClients, err := connectAll(gw.MQTT, f.Background)
	if err != nil {
		return err
	}
	defer disconnectAll(bgClients)
	// A normal reading from every detector first: the rule engine looks each device up once.
	for i, cl := range gasClients {
		if t := cl.Publish(f.Gas[i].Topic, 1, false, gasPayload(time.Now(), 3.0)); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
			return fmt.Errorf("publish %s: %v", f.Gas[i].ID, t.Error())
		}
	}

	tr := &tracker{byKey: map[string]*crossing{}}
	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	streamDone, err := openStream(streamCtx, officer, []string{"sensor.threshold", "alert.opened", "alert.recurred", "alert.escalated"}, tr.onEvent)
	if err != nil {
		return err
	}

	bgCtx, stopBg := context.WithCancel(ctx)
	defer stopBg()
	var bgAcked atomic.Int64
	bgDone := make(chan error, 1)
	go func() { bgDone <- background(bgCtx, bgClients, f.Background, o.bgRate, o.window, &bgAcked) }()

	lg.Info("measuring", "warmup", o.warmup, "for", o.measure, "crossing_every", o.every,
		"background_msgs_per_s", o.bgRate, "background_devices", o.bgDevices)
	var (
		acks    sync.WaitGroup
		tick    = time.NewTicker(o.every)
		warmEnd = time.Now().Add(o.warmup)
		end     = warmEnd.Add(o.measure)
		bgStart int64
		bgEnd   int64
		started bool
		cpu0    [2]time.Duration // gateway, this process
		cpu1    [2]time.Duration
		load0   string
		k       int
	)
	defer tick.Stop()
	publish := func(i int, lel float64) paho.Token {
		return gasClients[i].Publish(f.Gas[i].Topic, 1, false, gasPayload(time.Now(), lel))
	}
loop:
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-streamDone:
			return err
		case err := <-bgDone:
			return fmt.Errorf("background stopped early: %v", err)
		case now := <-tick.C:
			if now.After(end) {
				bgEnd = bgAcked.Load()
				cpu1 = [2]time.Duration{benchkit.CPUTime(gw.Pid()), benchkit.CPUTime(os.Getpid())}
				break loop
			}
			if !started && now.After(warmEnd) {
				bgStart, started = bgAcked.Load(), true
				cpu0 = [2]time.Duration{benchkit.CPUTime(gw.Pid()), benchkit.CPUTime(os.Getpid())}
				load0 = benchkit.LoadAvg()
			}
			i := k % len(f.Gas)
			v := 20.5 + float64(k%700)/10                               // 20.5 … 90.4 %LEL: over lel-high (≥ 20), each value once per 700
			c := tr.add(f.Gas[i].ID+"/lel-high", v, now.After(warmEnd)) // stamps the publish time
			tok := publish(i, v)
			acks.Go(func() {
				if tok.WaitTimeout(30*time.Second) && tok.Error() == nil {
					tr.mu.Lock()
					c.ack = time.Now()
					tr.mu.Unlock()
				}
			})
			// Half a round ahead: back to normal (below lel-low's 10 − 2 hysteresis), so both
			// alarms clear and the cooldown has passed at this detector's next turn.
			publish((k+len(f.Gas)/2)%len(f.Gas), 3.0)
			k++
		}
	}
	// Wait for the last frames (at most lost-after), then stop the background.
	for tr.outstanding(time.Now(), o.lostAfter) > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	stopBg()
	if err := <-bgDone; err != nil {
		lg.Warn("background", "err", err)
	}
	acks.Wait()
	counters, err := admin.Metrics(ctx, "offsite_rules_", "offsite_ingest_messages_total", "offsite_ingest_quarantined_total",
		"offsite_mqtt_refused_total", "offsite_telemetry_sqlite_dropped_total", "offsite_api_event_streams")
	if err != nil {
		lg.Warn("metrics", "err", err)
	}
	stopStream()
	stopped = true
	if err := gw.Stop(); err != nil {
		lg.Warn("gateway stop", "err", err)
	}
	warns, errs := gw.CountLogLines()
	lg.Info("gateway", "log_warnings", warns, "log_errors", errs, "counters", benchkit.FormatCounters(counters))
	pctOf := func(d time.Duration) string { return fmt.Sprintf("%.0f%%", 100*d.Seconds()/o.measure.Seconds()) }
	lg.Info("machine during the measurement", "gateway_cpu", pctOf(cpu1[0]-cpu0[0]), "bench_cpu", pctOf(cpu1[1]-cpu0[1]),
		"cores", runtime.NumCPU(), "load1_start", load0, "load1_end", benchkit.LoadAvg())

	bgMsgs := float64(bgEnd-bgStart) / o.measure.Seconds()
	report(tr, o, bgMsgs, lg)
	if o.samples != "" {
		if err := writeSamples(o.samples, tr); err != nil {
			return err
		}
		lg.Info("samples written", "file", o.samples)
	}
	return nil
}

// report prints the BENCH lines.
func report(tr *tracker, o options, bgMsgs float64, lg *slog.Logger) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var thr, opened, ack, toAppend, fromAppend []time.Duration
	n := 0
	for _, c := range tr.all {
		if !c.measured {
			continue
		}
		n++
		if !c.threshold.IsZero() && c.threshold.Sub(c.pub) <= o.lostAfter {
			thr = append(thr, c.threshold.Sub(c.pub))
		}
		if !c.opened.IsZero() && c.opened.Sub(c.pub) <= o.lostAfter {
			opened = append(opened, c.opened.Sub(c.pub))
		}
		if !c.ack.IsZero() {
			ack = append(ack, c.ack.Sub(c.pub))
		}
		if !c.appended.IsZero() && !c.ack.IsZero() {
			// Wall clock (occurred_at has no monotonic reading), millisecond resolution.
			toAppend = append(toAppend, c.appended.Sub(c.ack.Round(0)))
			fromAppend = append(fromAppend, c.opened.Round(0).Sub(c.appended))
		}
	}
	bg := fmt.Sprintf("background_readings_per_s=%.0f background_values_per_s=%.0f", bgMsgs, bgMsgs*dustValues)
	line := func(name string, ds []time.Duration) {
		fmt.Printf("BENCH %s samples=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f %s lost=%d crossings=%d\n",
			name, len(ds), benchkit.MS(benchkit.Pct(ds, 50)), benchkit.MS(benchkit.Pct(ds, 99)), benchkit.MS(benchkit.Pct(ds, 100)), bg, n-len(ds), n)
	}
	line("events_alert_latency", thr)
	line("events_alert_opened_latency", opened)
	// Where the time goes: MQTT in (publish → PUBACK, which the broker sends once the message
	// is queued for ingest), then ingest, rules and the append transaction (PUBACK → the
	// alert.opened occurred_at, stamped inside the transaction), then commit, feed and SSE.
	lg.Info("breakdown (p50/p99 ms)",
		"publish_to_puback", fmt.Sprintf("%.1f/%.1f", benchkit.MS(benchkit.Pct(ack, 50)), benchkit.MS(benchkit.Pct(ack, 99))),
		"puback_to_append_tx", fmt.Sprintf("%.1f/%.1f", benchkit.MS(benchkit.Pct(toAppend, 50)), benchkit.MS(benchkit.Pct(toAppend, 99))),
		"append_tx_to_sse", fmt.Sprintf("%.1f/%.1f", benchkit.MS(benchkit.Pct(fromAppend, 50)), benchkit.MS(benchkit.Pct(fromAppend, 99))),
		"duplicate_frames", tr.dups, "unmatched_frames", tr.unmatched)
}

// writeSamples writes the measured crossings as CSV, times in ms after the publish (empty when
// never seen).
func writeSamples(path string, tr *tracker) error {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var b strings.Builder
	b.WriteString("published_at,device,lel,puback_ms,append_tx_ms,threshold_ms,opened_ms\n")
	after := func(c *crossing, t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return fmt.Sprintf("%.1f", benchkit.MS(t.Round(0).Sub(c.pub.Round(0))))
	}
	for _, c := range tr.all {
		if c.measured {
			fmt.Fprintf(&b, "%s,%s,%.1f,%s,%s,%s,%s\n", c.pub.UTC().Format("15:04:05.000"), c.device, c.value,
				after(c, c.ack), after(c, c.appended), after(c, c.threshold), after(c, c.opened))
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("samples: %w", err)
	}
	return nil
}
