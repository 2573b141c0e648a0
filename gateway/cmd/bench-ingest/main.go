// Command bench-ingest measures sensor ingest end to end on loopback: K simulated devices
// publish QoS 1 through a broker (the embedded one, then Mosquitto) and the gateway's ingest
// decodes, validates, journals (as the gateway does) and stores the readings in a real
// InfluxDB. For each broker it alternates, round by round on the same broker, a consumer that
// does nothing and the real pipeline, and prints one line per broker:
//
//	BENCH ingest_embedded msgs_per_s=… readings_per_s=… p50_ms=… p99_ms=… cpu_pct=… rss_mb=… lost=… ratio_vs_null=… null_msgs_per_s=…
//
// The do-nothing consumer is what ingest is on that broker, minus the work:
//   - Mosquitto: ingest is an MQTT subscriber, so the reference is a subscriber (the same
//     Subscriber code, persistent session, QoS 1) whose handler only counts; it receives and
//     acknowledges every message.
//   - embedded: ingest is no subscriber but the broker's publish hook (ingest/broker.go), which
//     runs before the PUBACK; the reference is the same hook with a Submit that only counts.
//     A network subscriber of the embedded broker is reported too (sub_null_msgs_per_s,
//     sub_null_not_received) for information only: mochi drops QoS 1 messages for a subscriber
//     that falls behind, so it is not a consumer that takes every message and a ratio to it
//     means nothing.
//
// ratio_vs_null = msgs_per_s / null_msgs_per_s. lost = published (acknowledged) − stored −
// quarantined, checked against a count in InfluxDB. cpu_pct is this process (publishers,
// broker, ingest) plus influxd and mosquitto during the pipeline's phases, in percent of one
// core; influxd_cpu_pct is influxd's part of it. Run it through scripts/bench-ingest.sh.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/offsite-gw/offsite/devices"
	profiles "github.com/offsite-gw/offsite/firmware-profiles"
	gwconfig "github.com/offsite-gw/offsite/gateway/config"
	"github.com/offsite-gw/offsite/ingest"
	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/internal/store"
)

type config struct {
	devices   int
	duration  time.Duration
	window    int
	influxd   string
	mosquitto string
	brokers   string
	rounds    int
	workdir   string
	// profileDir, when set, receives CPU profiles of the first round's phases on the first
	// broker: this process during the do-nothing consumer (null.pprof) and during the pipeline
	// (pipeline.pprof), and influxd during the pipeline (influxd.pprof, from its /debug/pprof).
	profileDir string
	// deploy is the folder of the shipped configuration: influxd runs with its influxdb.conf
	// and influxdb.default, ingest with the ingest section of its offsite.yml.
	deploy  string
	shipped gwconfig.Ingest
}

func main() {
	var c config
	flag.IntVar(&c.devices, "devices", 40, "simulated devices (K)")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "publishing time of each phase of each round")
	flag.IntVar(&c.window, "window", 64, "unacknowledged QoS 1 publishes per device")
	flag.StringVar(&c.influxd, "influxd", "bin/influxd", "influxd 1.8 binary")
	flag.StringVar(&c.mosquitto, "mosquitto", "mosquitto", "mosquitto binary")
	flag.StringVar(&c.brokers, "brokers", "embedded,mosquitto", "brokers to measure")
	flag.IntVar(&c.rounds, "rounds", 3, "alternations of the do-nothing consumer and the pipeline")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run here")
	flag.StringVar(&c.deploy, "deploy", "deploy", "folder of the shipped configuration (influxdb.conf, influxdb.default, offsite.yml)")
	flag.StringVar(&c.profileDir, "profiledir", "", "write CPU profiles of the first round's phases (this process and influxd) here")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench-ingest:", err)
			os.Exit(1)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench-ingest:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(c config) error {
	dir, err := os.MkdirTemp("", "bench-ingest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	c.workdir = dir
	// the gateway's own loader: its defaults and checks, not a second reading of the file
	shipped, err := gwconfig.Load(filepath.Join(c.deploy, "offsite.yml"), nil)
	if err != nil {
		return err
	}
	c.shipped = shipped.Ingest
	influx, err := startInflux(c.influxd, c.deploy, filepath.Join(dir, "influx"))
	if err != nil {
		return err
	}
	defer influx.stop()
	in := c.shipped.Telemetry.Influx
	fmt.Printf("bench-ingest: influxd with %s/influxdb.conf and %s (%s/influxdb.default); ingest as %s/offsite.yml: queue_size=%d workers=%d batch_size=%d flush_interval=%s max_pending=%d\n",
		c.deploy, strings.Join(influx.env, " "), c.deploy, c.deploy, c.shipped.QueueSize, c.shipped.Workers, in.BatchSize, c.shipped.Telemetry.Influx.FlushInterval, in.MaxPending)
	for i, b := range strings.Split(c.brokers, ",") {
		var r result
		if i > 0 {
			c.profileDir = ""
		}
		switch b {
		case "embedded":
			r, err = benchEmbedded(c, influx)
		case "mosquitto":
			if _, lerr := exec.LookPath(c.mosquitto); lerr != nil {
				fmt.Println("BENCH ingest_mosquitto skipped: mosquitto not installed")
				continue
			}
			r, err = benchMosquitto(c, influx)
		default:
			return fmt.Errorf("unknown broker %q", b)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", b, err)
		}
		fmt.Printf("BENCH ingest_%s msgs_per_s=%.0f readings_per_s=%.0f p50_ms=%.1f p99_ms=%.1f cpu_pct=%.0f influxd_cpu_pct=%.0f rss_mb=%.0f lost=%d ratio_vs_null=%.2f null_msgs_per_s=%.0f null_not_received=%d devices=%d published=%d stored_msgs=%d quarantined=%d influx_count=%d%s cpu_us_per_msg=%.1f influxd_us_per_msg=%.1f null_cpu_us_per_msg=%.1f\n",
			b, r.msgsPerS, r.readingsPerS, r.p50, r.p99, r.cpuPct, r.influxCPUPct, r.rssMB, r.lost, r.msgsPerS/r.nullPerS, r.nullPerS, r.nullMissed,
			c.devices, r.published, r.stored, r.quarantined, r.influxCount, subField(r), r.cpuPerMsg*1e6, r.influxPerMsg*1e6, r.nullCPUPerMsg*1e6)
	}
	return nil
}

func subField(r result) string {
	if r.subPerS == 0 {
		return ""
	}
	return fmt.Sprintf(" sub_null_msgs_per_s=%.0f sub_null_not_received=%d", r.subPerS, r.subMissed)
}

type result struct {
	msgsPerS, readingsPerS, nullPerS float64
	p50, p99, cpuPct, rssMB          float64
	published, stored, quarantined   int64
	lost, influxCount                int64
	nullMissed                       int64 // acknowledged publishes the do-nothing consumer never got
	subPerS                          float64
	subMissed                        int64
	influxCPUPct                     float64
	// CPU seconds per message over all measured processes (this one, influxd, mosquitto):
	// the pipeline's, influxd's part of it, and the do-nothing consumer's.
	cpuPerMsg, influxPerMsg, nullCPUPerMsg float64
}

// devicesStore is the part of devices.Store ingest uses: K dust monitors.
type devicesStore struct {
	devices.Store
	devs []devices.Device
}

func newDevices(site, prefix string, k int) *devicesStore {
	s := &devicesStore{}
	for i := range k {
		id := fmt.Sprintf("%s-%03d", prefix, i)
		s.devs = append(s.devs, devices.Device{ID: id, SiteID: site, Kind: devices.KindSensor, Profile: "dust-noise-monitor",
			MQTT: &devices.MQTTCredentials{Username: id}})
	}
	return s
}

func (s *devicesStore) ListDevices(context.Context, devices.DeviceFilter) ([]devices.Device, error) {
	return s.devs, nil
}

func (s *devicesStore) CheckMQTT(_ context.Context, username, secret string) (devices.Device, error) {
	for _, d := range s.devs {
		if d.ID == username && secret == "secret-"+username {
			return d, nil
		}
	}
	return devices.Device{}, errs.E(errs.KindUnauthorized, "mqtt_login_refused", "refused")
}

// nullConsumer takes a message (so the broker acknowledges it) and counts it.
type nullConsumer struct{ n atomic.Int64 }

func (c *nullConsumer) Submit(ingest.Message) bool { c.n.Add(1); return true }

// discard takes messages and forgets them.
type discard struct{}

func (discard) Submit(ingest.Message) bool { return true }

// ingestStack is the real pipeline into InfluxDB with latency sampling.
type ingestStack struct {
	influxURL string
	dir       *ingest.Directory
	quar      *ingest.Quarantine
	pres      *ingest.Presence
	pipe      *ingest.Pipeline
	tel       *ingest.InfluxStore
	db        *store.DB
	mu        sync.Mutex
	lat       []int64 // stored points by publish→stored latency, in latBucket steps
	first     atomic.Int64
	last      atomic.Int64
	count     atomic.Int64
}

func newIngest(c config, influx *influxd, devs *devicesStore, measurement string) (*ingestStack, error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	reg, err := profiles.NewRegistry(true, "")
	if err != nil {
		return nil, err
	}
	s := &ingestStack{influxURL: influx.url}
	s.dir = &ingest.Directory{Devices: devs, Profiles: reg, Logger: log, RefreshInterval: -1}
	if err := s.dir.Initialize(); err != nil {
		return nil, err
	}
	s.db, err = store.Open(context.Background(), "sqlite:"+filepath.Join(c.workdir, measurement+".db"), c.workdir, devices.Migrations, ingest.Migrations)
	if err != nil {
		return nil, err
	}
	s.quar = &ingest.Quarantine{DB: s.db, Logger: log}
	if err := s.quar.Initialize(); err != nil {
		return nil, err
	}
	in := c.shipped.Telemetry.Influx
	s.tel = &ingest.InfluxStore{URL: influx.url, Bucket: "bench/autogen", Measurement: measurement,
		SpoolDir: filepath.Join(c.workdir, "spool-"+measurement), Logger: log,
		BatchSize: in.BatchSize, FlushInterval: c.shipped.Telemetry.Influx.FlushInterval, MaxPending: in.MaxPending,
		OnStored: s.stored}
	if err := s.tel.Initialize(); err != nil {
		return nil, err
	}
	// As the gateway runs it (gateway/sensors.go): presence from every message (kept in the
	// metadata DB), every message journaled before the PUBACK. OnReadings (the analytics feed)
	// is analytics' cost, not ingest's, and is left out.
	s.pres = &ingest.Presence{Directory: s.dir, DB: s.db, Logger: log}
	if err := s.pres.Initialize(); err != nil {
		return nil, err
	}
	s.pipe = &ingest.Pipeline{Directory: s.dir, Sink: s.tel, Quarantine: s.quar, Presence: s.pres, Logger: log, QueueSize: c.shipped.QueueSize, Workers: c.shipped.Workers,
		Journal: &ingest.Journal{Dir: filepath.Join(c.workdir, "journal-"+measurement)}}
	if err := s.pipe.Initialize(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *ingestStack) stored(readings int, _ bool, points []int64) {
	now := time.Now()
	s.count.Add(int64(readings))
	s.first.CompareAndSwap(0, now.UnixNano())
	s.last.Store(now.UnixNano())
	// One point per message: its timestamp is the device time the publisher set. Counted into
	// fixed buckets, so the measuring allocates nothing per point during the phase.
	s.mu.Lock()
	if s.lat == nil {
		s.lat = make([]int64, latBuckets)
	}
	for _, t := range points {
		s.lat[min(max(now.UnixNano()-t, 0)/int64(latBucket), latBuckets-1)]++
	}
	s.mu.Unlock()
}

// Latencies are counted in 0.1 ms steps up to a minute.
const (
	latBucket  = 100 * time.Microsecond
	latBuckets = int64(time.Minute / latBucket)
)

// latPercentile returns the q-th fraction of the counted latencies in ms.
func latPercentile(lat []int64, q float64) float64 {
	var total int64
	for _, n := range lat {
		total += n
	}
	want, seen := int64(float64(total)*q), int64(0)
	for i, n := range lat {
		if seen += n; seen > want {
			return float64(i) * latBucket.Seconds() * 1e3
		}
	}
	return 0
}

func (s *ingestStack) close() {
	s.pipe.Close()
	s.tel.Close()
	s.quar.Close()
	s.pres.Close()
	s.dir.Close()
	_ = s.db.Close()
}

// drain waits until the pipeline has taken published messages in total and everything is
// in InfluxDB.
func (s *ingestStack) drain(published int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for s.pipe.Stats().Submitted < published && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.pipe.Flush(ctx); err != nil {
		return fmt.Errorf("drain pipeline: %w", err)
	}
	if err := s.tel.Flush(ctx); err != nil {
		return fmt.Errorf("drain influx: %w", err)
	}
	for {
		if b, _ := s.tel.Backlog(); b == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nullTarget is a do-nothing consumer with its own devices.
type nullTarget struct {
	url  string
	cons *nullConsumer
	devs *devicesStore
}

// run publishes for c.duration and waits for the consumer to get everything, or to stop
// receiving: a broker may drop messages for a subscriber that falls behind (mochi does past
// MaximumClientWritesPending). It returns the time to the last message, the count, and how
// many acknowledged publishes the consumer never got.
func (nt nullTarget) run(c config) (float64, int64, int64, error) {
	before, t0 := nt.cons.n.Load(), time.Now()
	p, err := publish(nt.url, nt.devs, c.window, c.duration)
	if err != nil {
		return 0, 0, 0, err
	}
	lastN, lastAt := nt.cons.n.Load(), time.Now()
	for nt.cons.n.Load()-before < p && time.Since(lastAt) < time.Second {
		time.Sleep(2 * time.Millisecond)
		if n := nt.cons.n.Load(); n != lastN {
			lastN, lastAt = n, time.Now()
		}
	}
	got := nt.cons.n.Load() - before
	return lastAt.Sub(t0).Seconds(), got, p - got, nil
}

// measure alternates the do-nothing consumers and the real pipeline, round by round on the
// same broker, so both see the same load of the (shared) machine. nulls[0] is the reference;
// nulls[1], if any, is the informational subscriber of the embedded broker. Each rate is the
// total over the rounds of messages taken, divided by the time from the first publish to the
// last message consumed (for the pipeline: stored in InfluxDB).
func measure(c config, r *result, nulls []nullTarget, realURL string, s *ingestStack, devs *devicesStore, pids ...int) error {
	var realSecs float64
	var published int64
	nullSecs := make([]float64, len(nulls))
	nullMsgs := make([]int64, len(nulls))
	cpu := startCPU(pids...)
	// influxd is idle during the do-nothing phases; mosquitto (the last helper) works in both.
	nullCPU := startCPU(pids[1:]...)
	for round := range c.rounds {
		prof := round == 0 && c.profileDir != ""
		for i, nt := range nulls {
			if i == 0 {
				nullCPU.resume()
				if prof {
					startProfile(filepath.Join(c.profileDir, "null.pprof"))
				}
			}
			secs, got, missed, err := nt.run(c)
			if i == 0 {
				nullCPU.pause()
				if prof {
					pprof.StopCPUProfile()
				}
			}
			if err != nil {
				return err
			}
			nullSecs[i] += secs
			nullMsgs[i] += got
			if i == 0 {
				r.nullMissed += missed
			} else {
				r.subMissed += missed
			}
		}
		var influxProf chan error
		if prof {
			startProfile(filepath.Join(c.profileDir, "pipeline.pprof"))
			influxProf = make(chan error, 1)
			go func() {
				influxProf <- fetchProfile(s.influxURL, c.duration, filepath.Join(c.profileDir, "influxd.pprof"))
			}()
		}
		cpu.resume()
		t0 := time.Now()
		p, err := publish(realURL, devs, c.window, c.duration)
		if err != nil {
			return err
		}
		published += p
		if err := s.drain(published); err != nil {
			return err
		}
		realSecs += time.Since(t0).Seconds()
		cpu.pause()
		if prof {
			pprof.StopCPUProfile()
			if err := <-influxProf; err != nil {
				fmt.Fprintln(os.Stderr, "bench-ingest: influxd profile:", err)
			}
		}
	}
	st := s.pipe.Stats()
	r.nullPerS = float64(nullMsgs[0]) / nullSecs[0]
	if len(nulls) > 1 {
		r.subPerS = float64(nullMsgs[1]) / nullSecs[1]
	}
	r.published, r.stored, r.quarantined = published, st.Stored, st.Quarantined
	r.lost = published - st.Stored - st.Quarantined
	r.msgsPerS = float64(st.Stored) / realSecs
	r.readingsPerS = float64(s.count.Load()) / realSecs
	r.cpuPct, r.rssMB = cpu.result()
	r.influxCPUPct = cpu.influx / cpu.sec * 100
	r.cpuPerMsg, r.influxPerMsg = cpu.cpu/float64(st.Stored), cpu.influx/float64(st.Stored)
	r.nullCPUPerMsg = nullCPU.cpu / float64(nullMsgs[0])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := s.tel.Count(ctx, "", time.Now().Add(-24*time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		return fmt.Errorf("count in influx: %w", err)
	}
	r.influxCount = n
	if n < st.Readings {
		r.lost += (st.Readings - n + 7) / 8
	}
	s.mu.Lock()
	r.p50, r.p99 = latPercentile(s.lat, 0.5), latPercentile(s.lat, 0.99)
	s.mu.Unlock()
	return nil
}

// publishers runs K devices publishing dust-monitor payloads at QoS 1 for d and returns the
// acknowledged count.
func publish(brokerURL string, devs *devicesStore, window int, d time.Duration) (int64, error) {
	var (
		acked  atomic.Int64
		wg     sync.WaitGroup
		errMu  sync.Mutex
		first  error
		stopAt = time.Now().Add(d)
	)
	clients := make([]paho.Client, len(devs.devs))
	for i, dv := range devs.devs {
		opts := paho.NewClientOptions().AddBroker(brokerURL).SetClientID(dv.ID).SetUsername(dv.ID).SetPassword("secret-" + dv.ID).
			SetCleanSession(true).SetProtocolVersion(4).SetAutoReconnect(false).SetWriteTimeout(10 * time.Second)
		cl := paho.NewClient(opts)
		if t := cl.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
			return 0, fmt.Errorf("device %s connect: %v", dv.ID, t.Error())
		}
		clients[i] = cl
	}
	stopAt = time.Now().Add(d)
	for i, dv := range devs.devs {
		wg.Add(1)
		go func(cl paho.Client, topic string) {
			defer wg.Done()
			var last int64
			pending := make([]paho.Token, 0, window)
			for time.Now().Before(stopAt) {
				// Unix ms with microseconds: strictly increasing per device (one point each in
				// InfluxDB) and still the publish time at over 1,000 messages a second, so
				// publish→stored latency is measured from it.
				ts := time.Now().UnixMicro()
				if ts <= last {
					ts = last + 1
				}
				last = ts
				p := fmt.Appendf(nil, `{"ts": %d.%03d, "sn": "B1", "data": {"pm25": %d.5, "pm10": %d, "tsp": 150, "noise": 62.5, "ws": 2.1, "wd": 180, "temp": 11.5, "hum": 55}}`,
					ts/1000, ts%1000, 20+ts/1000%50, 60+ts/1000%90)
				pending = append(pending, cl.Publish(topic, 1, false, p))
				if len(pending) >= window {
					t := pending[0]
					pending = pending[1:]
					if !t.WaitTimeout(30*time.Second) || t.Error() != nil {
						errMu.Lock()
						first = fmt.Errorf("publish: %v", t.Error())
						errMu.Unlock()
						return
					}
					acked.Add(1)
				}
			}
			for _, t := range pending {
				if t.WaitTimeout(30*time.Second) && t.Error() == nil {
					acked.Add(1)
				}
			}
		}(clients[i], ingest.ExpandTopic("offsite/{site}/{device}/up", dv.SiteID, dv.ID))
	}
	wg.Wait()
	for _, cl := range clients {
		cl.Disconnect(100)
	}
	return acked.Load(), first
}

func benchEmbedded(c config, influx *influxd) (result, error) {
	var r result
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg, err := profiles.NewRegistry(true, "")
	if err != nil {
		return r, err
	}
	// The do-nothing consumer: an identical broker whose ingest hook only counts. Ingest on
	// the embedded broker is that hook (no subscription), so this is the same consumer minus
	// the work.
	hookDevs := newDevices("hook", "hook", c.devices)
	hdir := &ingest.Directory{Devices: hookDevs, Profiles: reg, Logger: log, RefreshInterval: -1}
	if err := hdir.Initialize(); err != nil {
		return r, err
	}
	defer hdir.Close()
	hook := &nullConsumer{}
	hb := &ingest.Broker{Listen: "127.0.0.1:0", Auth: hookDevs, Directory: hdir, Pipeline: hook, Logger: log, ConnectRate: 1000, ConnectBurst: 1000, MaxConnsPerAddr: -1}
	if err := hb.Initialize(); err != nil {
		return r, err
	}
	defer hb.Close()
	// For information: an MQTT subscriber of an identical embedded broker (a service account)
	// that only acknowledges; that broker's own hook discards. mochi drops QoS 1 messages for
	// a subscriber that falls behind, so it does not get every message.
	nullDevs := newDevices("null", "null", c.devices)
	dir := &ingest.Directory{Devices: nullDevs, Profiles: reg, Logger: log, RefreshInterval: -1}
	if err := dir.Initialize(); err != nil {
		return r, err
	}
	defer dir.Close()
	nb := &ingest.Broker{Listen: "127.0.0.1:0", Auth: nullDevs, Directory: dir, Pipeline: discard{}, Logger: log, ConnectRate: 1000, ConnectBurst: 1000, MaxConnsPerAddr: -1,
		ServiceAccounts: []ingest.ServiceAccount{{Username: "bench-null", Password: "bench-null", Subscribe: []string{"offsite/#"}}}}
	if err := nb.Initialize(); err != nil {
		return r, err
	}
	defer nb.Close()
	null := &nullConsumer{}
	nsub := &ingest.Subscriber{URL: "tcp://" + nb.Addr(), ClientID: "bench-null", Username: "bench-null", Password: "bench-null",
		Topics: []string{"offsite/null/+/up"}, Pipeline: null, Logger: log}
	if err := nsub.Initialize(); err != nil {
		return r, err
	}
	defer nsub.Close()
	waitSubscribed(nsub)
	// The real pipeline into InfluxDB.
	devs := newDevices("bench", "emb", c.devices)
	s, err := newIngest(c, influx, devs, "bench_embedded")
	if err != nil {
		return r, err
	}
	defer s.close()
	b := &ingest.Broker{Listen: "127.0.0.1:0", Auth: devs, Directory: s.dir, Pipeline: s.pipe, Logger: log, ConnectRate: 1000, ConnectBurst: 1000, MaxConnsPerAddr: -1}
	if err := b.Initialize(); err != nil {
		return r, err
	}
	defer b.Close()
	err = measure(c, &r, []nullTarget{{"tcp://" + hb.Addr(), hook, hookDevs}, {"tcp://" + nb.Addr(), null, nullDevs}},
		"tcp://"+b.Addr(), s, devs, influx.pid())
	return r, err
}

func benchMosquitto(c config, influx *influxd) (result, error) {
	var r result
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := startMosquitto(c.mosquitto, filepath.Join(c.workdir, "mosquitto"))
	if err != nil {
		return r, err
	}
	defer m.stop()
	// The do-nothing consumer: a paho subscriber (same options as ingest's) that only
	// acknowledges, on site "null".
	null := &nullConsumer{}
	nsub := &ingest.Subscriber{URL: m.url, ClientID: "bench-null", Topics: []string{"offsite/null/+/up"}, Pipeline: null, Logger: log}
	if err := nsub.Initialize(); err != nil {
		return r, err
	}
	defer nsub.Close()
	waitSubscribed(nsub)
	nullDevs := newDevices("null", "null", c.devices)
	// The real pipeline, on site "bench".
	devs := newDevices("bench", "mq", c.devices)
	s, err := newIngest(c, influx, devs, "bench_mosquitto")
	if err != nil {
		return r, err
	}
	defer s.close()
	sub := &ingest.Subscriber{URL: m.url, ClientID: "bench-ingest", Topics: []string{"offsite/bench/+/up"}, Directory: s.dir, Pipeline: s.pipe, Logger: log}
	if err := sub.Initialize(); err != nil {
		return r, err
	}
	defer sub.Close()
	waitSubscribed(sub)
	err = measure(c, &r, []nullTarget{{m.url, null, nullDevs}}, m.url, s, devs, influx.pid(), m.pid())
	return r, err
}

// startProfile starts a CPU profile of this process into path (the -cpuprofile of the whole
// run, if any, must not be on: only one profile runs at a time).
func startProfile(path string) {
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-ingest: profile:", err)
	}
}

// fetchProfile saves a CPU profile of influxd over the publishing time d (its /debug/pprof).
func fetchProfile(influxURL string, d time.Duration, path string) error {
	resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", influxURL, int(d.Seconds())))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func waitSubscribed(s *ingest.Subscriber) {
	for deadline := time.Now().Add(10 * time.Second); !s.Subscribed() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
}

// cpuMeter sums the CPU time of this process and the given helper processes over the
// intervals between resume and pause.
type cpuMeter struct {
	pids     []int
	cpu, sec float64
	t0       time.Time
	c0       float64
	influx   float64 // CPU seconds of the first helper (influxd)
	i0       float64
}

func startCPU(pids ...int) *cpuMeter { return &cpuMeter{pids: pids} }

func (m *cpuMeter) resume() { m.t0, m.c0, m.i0 = time.Now(), m.total(), m.first() }

func (m *cpuMeter) pause() {
	m.cpu += m.total() - m.c0
	m.influx += m.first() - m.i0
	m.sec += time.Since(m.t0).Seconds()
}

func (m *cpuMeter) first() float64 {
	if len(m.pids) == 0 {
		return 0
	}
	return procCPU(m.pids[0])
}

func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) <= 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100 // USER_HZ
}

func (m *cpuMeter) total() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	t := float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	for _, p := range m.pids {
		t += procCPU(p)
	}
	return t
}

// result returns CPU % of one core and the peak RSS of this process in MiB.
func (m *cpuMeter) result() (float64, float64) {
	var rss float64
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmHWM:") {
				kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
				rss = kb / 1024
			}
		}
	}
	return m.cpu / m.sec * 100, rss
}

type proc struct{ cmd *exec.Cmd }

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
	}
}

type influxd struct {
	proc
	url string
	env []string
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startInflux runs influxd with the shipped deploy/influxdb.conf and the environment of
// deploy/influxdb.default — what we recommend to operators — with only its directories and
// ports moved into dir.
func startInflux(bin, deployDir, dir string) (*influxd, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("influxd not found at %s (go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10)", bin)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	shipped, err := os.ReadFile(filepath.Join(deployDir, "influxdb.conf"))
	if err != nil {
		return nil, err
	}
	env, err := readEnvFile(filepath.Join(deployDir, "influxdb.default"))
	if err != nil {
		return nil, err
	}
	port := freePort()
	text := string(shipped)
	for _, r := range [][2]string{{"/var/lib/influxdb", dir}, {"127.0.0.1:8086", fmt.Sprintf("127.0.0.1:%d", port)},
		{"127.0.0.1:8088", fmt.Sprintf("127.0.0.1:%d", freePort())}} {
		if !strings.Contains(text, r[0]) {
			return nil, fmt.Errorf("%s/influxdb.conf no longer mentions %s; update the benchmark", deployDir, r[0])
		}
		text = strings.ReplaceAll(text, r[0], r[1])
	}
	conf := filepath.Join(dir, "influxdb.conf")
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "-config", conf)
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &influxd{proc: proc{cmd: cmd}, url: fmt.Sprintf("http://127.0.0.1:%d", port), env: env}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.PostForm(d.url+"/query", url.Values{"q": {"CREATE DATABASE bench"}})
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return d, nil
			}
		}
	}
	d.stop()
	return nil, fmt.Errorf("influxd did not start")
}

// readEnvFile reads KEY=VALUE lines (an EnvironmentFile of systemd), skipping comments.
func readEnvFile(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var env []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if !strings.Contains(l, "=") {
			return nil, fmt.Errorf("%s: %q is not KEY=VALUE", path, l)
		}
		env = append(env, l)
	}
	return env, nil
}

type mosquitto struct {
	proc
	url string
}

func startMosquitto(bin, dir string) (*mosquitto, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	port := freePort()
	user := ""
	if os.Geteuid() == 0 {
		user = "user root\n"
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	// Anonymous on loopback: the benchmark measures throughput, the tests check the ACL.
	if err := os.WriteFile(conf, fmt.Appendf(nil, "listener %d 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 0\nmax_queued_messages 1000000\nlog_dest none\n%s", port, user), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-c", conf)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	m := &mosquitto{proc: proc{cmd: cmd}, url: fmt.Sprintf("tcp://127.0.0.1:%d", port)}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return m, nil
		}
	}
	m.stop()
	return nil, fmt.Errorf("mosquitto did not start")
}
