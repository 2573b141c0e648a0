// Command bench-hj212 measures HJ 212 ingest end to end on loopback (make bench-hj212): N
// simulated stations, each on its own TCP connection, send CN 2011 real-time uploads with 8
// pollutants to a gateway process running the real HJ212Listener, pipeline (with its journal),
// SQLite metadata store and SQLite telemetry. Three phases, each then repeated against a
// do-nothing TCP reader (a process that cuts frames and checks their CRC, then discards them)
// with the same generator on the same machine:
//
//   - paced: each station sends one frame a second (the field's rate, with Flag=5 so the
//     gateway answers 9014); p50/p99 frame-to-stored latency and the gateway's CPU.
//   - offered: each station sends -rate frames a second (default 8: 8,000 frames/s from
//     1,000 stations, above the 5,000 the gateway must store); frames/s stored in the window
//     and ratio = that ÷ the frames/s the do-nothing reader completed under the same load.
//     This is the headline line, BENCH hj212.
//   - flood: each station sends as fast as TCP lets it (Flag=4): the gateway's capacity in
//     frames/s stored, and CPU microseconds a frame against the do-nothing reader's. Its ratio
//     is not a target: the do-nothing reader is bounded by loopback copies alone (hundreds of
//     thousands of frames a second), while every stored frame is 9 rows committed to SQLite.
//
// Frame-to-stored: each upload carries its send time (ms since the run's epoch) as an extra
// CP field t99999-Rtd, read by the bench profile into metric sent_ms; the gateway process
// subtracts it from the time the telemetry store reports the reading written.
//
// The gateway side runs in a child process (the same binary, "gateway" or "null") so its CPU
// is measured apart from the generator's.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/offsite-gw/offsite/devices"
	profiles "github.com/offsite-gw/offsite/firmware-profiles"
	"github.com/offsite-gw/offsite/ingest"
	"github.com/offsite-gw/offsite/ingest/hj212"
	"github.com/offsite-gw/offsite/internal/store"
)

const benchProfile = `id: bench-hj212
name: 基准测试站（HJ 212）
kind: sensor
vendor: bench
firmware:
  supported: ["*"]
heartbeat: 5m
decoder:
  kind: hj212
  fields:
    - {metric: cod, code: w01018}
    - {metric: ammonia_nitrogen, code: w21003}
    - {metric: ph, code: w01001}
    - {metric: total_phosphorus, code: w21011}
    - {metric: total_nitrogen, code: w21001}
    - {metric: flow, code: w00000}
    - {metric: water_temperature, code: w01010}
    - {metric: turbidity, code: w01003}
    - {metric: sent_ms, code: t99999}
metrics:
  - {name: cod, label: COD, unit: mg/L, min: 0, max: 5000}
  - {name: ammonia_nitrogen, label: 氨氮, unit: mg/L, min: 0, max: 500}
  - {name: ph, label: pH, unit: "", min: 0, max: 14}
  - {name: total_phosphorus, label: 总磷, unit: mg/L, min: 0, max: 100}
  - {name: total_nitrogen, label: 总氮, unit: mg/L, min: 0, max: 500}
  - {name: flow, label: 流量, unit: L/s, min: 0, max: 100000}
  - {name: water_temperature, label: 水温, unit: °C, min: -5, max: 80}
  - {name: turbidity, label: 浊度, unit: NTU, min: 0, max: 4000}
  - {name: sent_ms, label: 发送时刻, unit: ms, min: 0, max: 1000000000000}
`

// backlogAge is how far back the stations' DataTime starts: a station may send that many
// seconds' worth of frames before its DataTime runs ahead of the clock (refused as clock skew).
const backlogAge = 20 * time.Hour

// socketBuffer is the kernel buffer asked for on each side of a station's connection (the
// generator's send buffer, the gateway's and the do-nothing reader's receive buffer).
const socketBuffer = 8 << 10

var codes = []string{"w01018", "w21003", "w01001", "w21011", "w21001", "w00000", "w01010", "w01003"}

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "gateway" || os.Args[1] == "null") {
		if err := child(os.Args[1], os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench-hj212 child:", err)
			os.Exit(1)
		}
		return
	}
	if err := drive(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-hj212:", err)
		os.Exit(1)
	}
}

func mn(i int) string { return fmt.Sprintf("41070200BENCH%09d", i) }

// ---- the gateway side ----

func child(mode string, args []string) error {
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	stations := fs.Int("stations", 1000, "")
	dataDir := fs.String("data", "", "")
	epoch := fs.Int64("epoch", 0, "unix ms")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if mode == "null" {
		// The do-nothing reader cuts frames off TCP and checks their CRC, as the listener's
		// first step does, then discards them; it counts frames parsed, the way the gateway
		// side counts frames stored.
		var parsed, refused atomic.Int64
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_ = c.(*net.TCPConn).SetReadBuffer(socketBuffer)
				go func() {
					defer c.Close()
					fr := hj212.NewReader(c, 0)
					for {
						_, err := fr.Next()
						switch {
						case err == nil:
							parsed.Add(1)
						case hj212.IsFrameError(err):
							refused.Add(1)
						default:
							return
						}
					}
				}()
			}
		}()
		fmt.Printf("READY %s\n", ln.Addr())
		return control(func() string {
			return fmt.Sprintf("frames=%d refused=%d", parsed.Load(), refused.Load())
		}, nil)
	}
	ln.Close() // the listener binds its own; the port was only a free one
	addr := ln.Addr().String()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// the telemetry store logs every lost batch; the bench counts them instead (OnDrop)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := store.Open(ctx, "", *dataDir, devices.Migrations, ingest.Migrations)
	if err != nil {
		return err
	}
	defer db.Close()
	pdir := filepath.Join(*dataDir, "profiles")
	if err := os.MkdirAll(pdir, 0o750); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(pdir, "bench-hj212.yml"), []byte(benchProfile), 0o640); err != nil {
		return err
	}
	reg, err := profiles.NewRegistry(true, pdir)
	if err != nil {
		return err
	}
	// Cheap password hashes: the bench measures ingest, not 1,000 Argon2 checks at connect.
	devs := &devices.SQLStore{DB: db, Profiles: reg, Argon2: devices.Argon2Params{Time: 1, MemoryKiB: 256, Threads: 1}}
	site := devices.Site{ID: "bench-site", Name: "基准测试", RegionCode: "410702", Department: "市生态环境局"}
	if err := devs.CreateSite(ctx, &site); err != nil {
		return err
	}
	var ds []devices.Device
	for i := range *stations {
		ds = append(ds, devices.Device{ID: fmt.Sprintf("st-%04d", i), SiteID: site.ID, Kind: devices.KindSensor, Profile: "bench-hj212",
			HJ212: &devices.HJ212Credentials{MN: mn(i), PW: "123456"}})
	}
	if err := devs.Import(ctx, []devices.Site{site}, ds); err != nil {
		return err
	}
	dir := &ingest.Directory{Devices: devs, Profiles: reg, RefreshInterval: -1, Logger: log}
	if err := dir.Initialize(); err != nil {
		return err
	}
	quar := &ingest.Quarantine{DB: db, Logger: log}
	if err := quar.Initialize(); err != nil {
		return err
	}
	var (
		mu     sync.Mutex
		lat    []float64 // ms, since the last mark
		stored atomic.Int64
		lost   atomic.Int64
	)
	tel := &ingest.SQLiteTelemetry{Path: filepath.Join(*dataDir, "telemetry.db"), Logger: quiet,
		OnDrop: func(n, _ int64, _ string) { lost.Add(n) },
		OnStored: func(rs []ingest.Reading, _ int) {
			now := float64(time.Now().UnixMilli() - *epoch)
			mu.Lock()
			for _, r := range rs {
				if r.Metric == "sent_ms" {
					lat = append(lat, now-r.Value)
					stored.Add(1)
				}
			}
			mu.Unlock()
		}}
	if err := tel.Initialize(); err != nil {
		return err
	}
	pres := &ingest.Presence{Directory: dir, Logger: log}
	if err := pres.Initialize(); err != nil {
		return err
	}
	pipe := &ingest.Pipeline{Directory: dir, Sink: tel, Quarantine: quar, Presence: pres, Logger: log,
		Journal: &ingest.Journal{Dir: filepath.Join(*dataDir, "ingest-journal")}, MaxAge: 24 * time.Hour}
	if err := pipe.Initialize(); err != nil {
		return err
	}
	// The generator's stations replay stored data (DataTime one second apart, starting an hour
	// back (backlogAge), as a logger uploading its backlog after an outage), so every frame is a reading of
	// its own in the store and can be counted there; their clocks are not what is measured.
	// (The pipeline keeps device times up to MaxAge old and refuses those ahead of its clock.)
	l := &ingest.HJ212Listener{Listen: addr, Auth: devs, Directory: dir, Pipeline: pipe, Logger: log, MaxClockDrift: 24 * time.Hour,
		ReadBuffer: socketBuffer}
	if err := l.Initialize(); err != nil {
		return err
	}
	if prof := os.Getenv("BENCH_HJ212_CPUPROFILE"); prof != "" {
		f, err := os.Create(prof)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	fmt.Printf("READY %s\n", l.Addr())
	err = control(func() string {
		mu.Lock()
		l := lat
		lat = nil
		mu.Unlock()
		slices.Sort(l)
		st := pipe.Stats()
		return fmt.Sprintf("frames=%d latencies=%d p50=%.1f p99=%.1f quarantined=%d dropped=%d handed=%d submitted=%d lost=%d",
			stored.Load(), len(l), pct(l, 0.50), pct(l, 0.99), st.Quarantined, st.Dropped, st.Stored, st.Submitted, lost.Load())
	}, func() string {
		// The senders have closed their connections: wait until the listener has read what
		// the kernel still held, the pipeline has handed it on and the store has written it,
		// then count what the telemetry file really holds.
		deadline := time.Now().Add(3 * time.Minute)
		for l.Connections() > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		fctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		drained := l.Connections() == 0 && pipe.Flush(fctx) == nil && tel.Flush(fctx) == nil
		frames, readings, err := countStored(filepath.Join(*dataDir, "telemetry.db"))
		if err != nil {
			return "error=" + strings.ReplaceAll(err.Error(), " ", "_")
		}
		st := pipe.Stats()
		ok := 0
		if drained {
			ok = 1
		}
		return fmt.Sprintf("db_frames=%d db_readings=%d drained=%d quarantined=%d dropped=%d lost=%d",
			frames, readings, ok, st.Quarantined, st.Dropped, lost.Load())
	})
	l.Close()
	pipe.Close()
	tel.Close()
	pres.Close()
	quar.Close()
	dir.Close()
	return err
}

// control answers "mark" lines on stdin with a STATS line, and "final" with a STATS line of
// final (when set), until stdin closes.
func control(stats, final func() string) error {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "mark":
			fmt.Printf("STATS %s\n", stats())
		case "final":
			out := ""
			if final != nil {
				out = final()
			}
			fmt.Printf("STATS %s\n", out)
		}
	}
	return nil
}

// countStored reads back what the telemetry file holds: frames (one sent_ms reading each)
// and readings.
func countStored(path string) (frames, readings int64, err error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	if err := db.QueryRow(`SELECT COUNT(*) FROM points WHERE series IN (SELECT id FROM series WHERE metric = 'sent_ms')`).Scan(&frames); err != nil {
		return 0, 0, err
	}
	if err := db.QueryRow(`SELECT COUNT(*) FROM points`).Scan(&readings); err != nil {
		return 0, 0, err
	}
	return frames, readings, nil
}

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// ---- the driver ----

type proc struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	addr string
}

func startChild(mode string, args ...string) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{mode}, args...)...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	if !p.out.Scan() || !strings.HasPrefix(p.out.Text(), "READY ") {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("%s did not start: %q", mode, p.out.Text())
	}
	p.addr = strings.TrimPrefix(p.out.Text(), "READY ")
	return p, nil
}

func (p *proc) mark() map[string]float64 { return p.ask("mark") }

func (p *proc) ask(what string) map[string]float64 {
	fmt.Fprintln(p.in, what)
	out := map[string]float64{}
	if !p.out.Scan() {
		return out
	}
	for _, kv := range strings.Fields(strings.TrimPrefix(p.out.Text(), "STATS ")) {
		k, v, _ := strings.Cut(kv, "=")
		f, _ := strconv.ParseFloat(v, 64)
		out[k] = f
	}
	return out
}

func (p *proc) stop() {
	p.in.Close()
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// cpu is the child's user+system CPU time.
func (p *proc) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
}

func (p *proc) rssMB() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// station builds its frames fresh each time, as a data logger does. Its DataTime advances one
// second a frame from backlogAge before the run (a real-time upload each, replayed as fast as the
// connection takes them in the flood): the store keeps one reading per device, metric and
// time, so distinct times let the bench count every frame stored.
type station struct {
	i     int
	mn    string
	epoch time.Time
	next  *atomic.Int64 // the station's next DataTime offset, seconds; shared across phases
	buf   []byte
	cp    []byte
}

func (s *station) frame(flag int) []byte {
	now := time.Now()
	dt := s.epoch.Add(-backlogAge).Truncate(time.Second).Add(time.Duration(s.next.Add(1)) * time.Second)
	s.cp = append(s.cp[:0], "DataTime="...)
	s.cp = append(s.cp, hj212.FormatTime(dt)...)
	for j, c := range codes {
		s.cp = append(s.cp, ';')
		s.cp = append(s.cp, c...)
		s.cp = append(s.cp, "-Rtd="...)
		s.cp = strconv.AppendFloat(s.cp, 1+float64((s.i+j)%10)+float64(now.Nanosecond()%100)/100, 'f', 2, 64)
		s.cp = append(s.cp, ',')
		s.cp = append(s.cp, c...)
		s.cp = append(s.cp, "-Flag=N"...)
	}
	s.cp = append(s.cp, ";t99999-Rtd="...)
	s.cp = strconv.AppendInt(s.cp, now.Sub(s.epoch).Milliseconds(), 10)
	seg := hj212.Segment{QN: hj212.QN(now), ST: "32", CN: hj212.CNRealtime, PW: "123456", MN: s.mn, Flag: flag, HasFlag: true, CP: string(s.cp)}
	data := hj212.AppendSegment(make([]byte, 0, 512), seg)
	s.buf = hj212.AppendFrame(s.buf[:0], data)
	return s.buf
}

// dialAll connects n stations to addr, retrying: 1,000 connects at once can outrun a busy
// accept loop.
func dialAll(addr string, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	errc := make(chan error, n)
	sem := make(chan struct{}, 64)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			var err error
			for attempt := 0; attempt < 10; attempt++ {
				var c net.Conn
				if c, err = net.DialTimeout("tcp", addr, 10*time.Second); err == nil {
					// A data logger on a modem has little in flight; without a bound the
					// loopback lets the generator park hundreds of thousands of frames in
					// socket buffers, which then take minutes to drain.
					_ = c.(*net.TCPConn).SetWriteBuffer(socketBuffer)
					conns[i] = c
					go func() { _, _ = io.Copy(io.Discard, c); c.Close() }() // answers, until the reader closes
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
			errc <- err
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		closeAll(conns)
		return nil, err
	}
	return conns, nil
}

// finish ends the stations' uploads with a FIN and leaves the connections to close when the
// reader closes its side (see dialAll). Closing at once would send an RST whenever an answer
// was still unread, and the reader's kernel would discard the frames it had not read yet.
func finish(conns []net.Conn) {
	for _, c := range conns {
		_ = c.(*net.TCPConn).CloseWrite()
	}
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// load drives the stations on conns for d: paced (rate frames a second each, Flag=5: answer
// wanted) or, with rate 0, flooding (Flag=4, as fast as TCP takes it). It returns the frames the kernel took whole
// (a write cut by its deadline counts only the frames it carried entirely).
func load(conns []net.Conn, clocks []atomic.Int64, d time.Duration, rate int, epoch time.Time) int64 {
	var sent atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	n := len(conns)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &station{i: i, mn: mn(i), epoch: epoch, next: &clocks[i]}
			if rate > 0 {
				// spread the stations over the period
				every := time.Second / time.Duration(rate)
				time.Sleep(time.Duration(i) * every / time.Duration(n))
				t := time.NewTicker(every)
				defer t.Stop()
				for time.Now().Before(deadline) {
					_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
					if _, err := c.Write(s.frame(hj212.Version2017<<2 | hj212.FlagAnswer)); err != nil {
						return
					}
					sent.Add(1)
					<-t.C
				}
				return
			}
			// Frames go out 16 KiB at a time; ends are where each frame in buf ends, so a
			// write cut short counts the frames it delivered whole.
			buf := make([]byte, 0, 16<<10)
			var ends []int
			flush := func() bool {
				n, err := c.Write(buf)
				k := 0
				for k < len(ends) && ends[k] <= n {
					k++
				}
				sent.Add(int64(k))
				buf, ends = buf[:0], ends[:0]
				return err == nil
			}
			_ = c.SetWriteDeadline(deadline.Add(2 * time.Second))
			for time.Now().Before(deadline) {
				buf = append(buf, s.frame(hj212.Version2017<<2)...)
				ends = append(ends, len(buf))
				if len(buf) > cap(buf)-1024 && !flush() {
					return // the write deadline: the reader fell behind, as a flood should find
				}
			}
			if len(buf) > 0 {
				flush()
			}
			_ = c.SetWriteDeadline(time.Time{})
		}()
	}
	wg.Wait()
	return sent.Load()
}

// loadavg is /proc/loadavg's first three fields: on a shared machine the figures mean little
// without it.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func drive() error {
	stations := flag.Int("stations", 1000, "simulated stations (connections)")
	paced := flag.Duration("paced", 20*time.Second, "paced phase: one frame a second per station")
	flood := flag.Duration("flood", 15*time.Second, "flood phase: as fast as TCP allows")
	rate := flag.Int("rate", 8, "offered-load phase: frames a second per station")
	target := flag.Duration("offered", 15*time.Second, "offered-load phase")
	flag.Parse()
	epoch := time.Now()
	tmp, err := os.MkdirTemp("", "bench-hj212")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Printf("bench-hj212: %d stations, 8 pollutants a frame, %d CPUs, GOMAXPROCS %d, load average %s\n", *stations, runtime.NumCPU(), runtime.GOMAXPROCS(0), loadavg())

	gw, err := startChild("gateway", "-stations", strconv.Itoa(*stations), "-data", tmp, "-epoch", strconv.FormatInt(epoch.UnixMilli(), 10))
	if err != nil {
		return err
	}
	defer gw.stop()
	conns, err := dialAll(gw.addr, *stations)
	if err != nil {
		return err
	}
	clocks := make([]atomic.Int64, *stations)
	// warm-up: every station is checked once (MN, PW) and its connection set up
	total := load(conns, clocks, 3*time.Second, 1, epoch)
	time.Sleep(2 * time.Second)
	gw.mark()

	c0, t0 := gw.cpu(), time.Now()
	sent := load(conns, clocks, *paced, 1, epoch)
	time.Sleep(2 * time.Second) // the last frames reach the store
	el := time.Since(t0)
	st := gw.mark()
	total += sent
	cpuPct := 100 * float64(gw.cpu()-c0) / float64(el)
	fmt.Printf("paced: sent %d frames in %s, stored %.0f (quarantined %.0f, dropped %.0f, readings lost %.0f)\n", sent, el.Round(time.Millisecond), st["latencies"], st["quarantined"], st["dropped"], st["lost"])
	pacedP99 := st["p99"]
	fmt.Printf("BENCH hj212-paced stations=%d frames_per_s=%.0f p50_ms=%.1f p99_ms=%.1f cpu_pct=%.0f rss_mb=%.0f\n",
		*stations, st["latencies"]/el.Seconds(), st["p50"], st["p99"], cpuPct, gw.rssMB())

	// Offered load: every station sends rate frames a second, the gateway stores them; the
	// do-nothing reader gets the same later. Each side counts what it completed between a mark
	// before the window and one 2 s after it.
	before := gw.mark()
	c0, t0 = gw.cpu(), time.Now()
	sent = load(conns, clocks, *target, *rate, epoch)
	time.Sleep(2 * time.Second) // the last frames reach the store
	st = gw.mark()
	el = time.Since(t0)
	total += sent
	tgtStored := st["frames"] - before["frames"]
	tgtCPU := 100 * float64(gw.cpu()-c0) / float64(el)
	fmt.Printf("offered %d frames/s: sent %d frames in %s, stored %.0f (p99 %.0f ms, quarantined %.0f, dropped %.0f, readings lost %.0f)\n",
		*rate**stations, sent, el.Round(time.Millisecond), tgtStored, st["p99"], st["quarantined"], st["dropped"], st["lost"])
	tgtP99 := st["p99"]

	// Flood, gateway then do-nothing reader: the same connections, generator, frames and
	// window; each side counts what it completed inside the window (frames committed to the
	// telemetry store; frames cut and CRC-checked), between two marks around the window.
	before = gw.mark()
	c0, t0 = gw.cpu(), time.Now()
	sent = load(conns, clocks, *flood, 0, epoch)
	st = gw.mark()
	el = time.Since(t0)
	total += sent
	stored := st["frames"] - before["frames"]
	cpuPct = 100 * float64(gw.cpu()-c0) / float64(el)
	gwRate := stored / el.Seconds()
	fmt.Printf("flood: sent %d frames in %s, stored %.0f during it (pipeline: submitted %.0f, handed to the store %.0f during it; readings lost %.0f)\n",
		sent, el.Round(time.Millisecond), stored, st["submitted"]-before["submitted"], st["handed"]-before["handed"], st["lost"])
	// Read back: every frame the generator sent must be in the telemetry file once the
	// gateway has drained its connections.
	finish(conns)
	tf, cf := time.Now(), gw.cpu()
	fin := gw.ask("final")
	// The drain: what the senders left in the socket buffers, stored with the generator idle
	// (as when the stations are other machines).
	drainEl, drainCPU := time.Since(tf), gw.cpu()-cf
	drained := fin["db_frames"] - st["frames"]
	if _, ok := fin["db_frames"]; !ok {
		return errors.New("the gateway could not count the stored frames")
	}
	lostFrames := float64(total) - fin["db_frames"]
	fmt.Printf("read back: %d frames sent in all, %.0f in the telemetry store (%.0f readings), %.0f not stored (drained in %s: %t; quarantined %.0f, dropped %.0f, readings lost %.0f)\n",
		total, fin["db_frames"], fin["db_readings"], lostFrames, time.Since(tf).Round(time.Millisecond), fin["drained"] == 1, fin["quarantined"], fin["dropped"], fin["lost"])
	gwTotalCPU := gw.cpu() // the whole run: connect, warm-up, every phase, the drain
	gw.stop()

	null, err := startChild("null")
	if err != nil {
		return err
	}
	nconns, err := dialAll(null.addr, *stations)
	if err != nil {
		null.stop()
		return err
	}
	nclocks := make([]atomic.Int64, *stations)
	nbefore := null.mark()
	nc0, nt := null.cpu(), time.Now()
	load(nconns, nclocks, *target, *rate, epoch)
	time.Sleep(2 * time.Second)
	nst := null.mark()
	nTgt := nst["frames"] - nbefore["frames"]
	nTgtEl := time.Since(nt)
	nTgtCPU := 100 * float64(null.cpu()-nc0) / float64(nTgtEl)
	fmt.Printf("do-nothing reader, offered %d frames/s: %.0f frames cut and CRC-checked in %s\n", *rate**stations, nTgt, nTgtEl.Round(time.Millisecond))
	nbefore = null.mark()
	c1, t1 := null.cpu(), time.Now()
	nsent := load(nconns, nclocks, *flood, 0, epoch)
	nst = null.mark()
	nel := time.Since(t1)
	nullCPUTime := null.cpu() - c1
	nullCPU := 100 * float64(nullCPUTime) / float64(nel)
	closeAll(nconns)
	null.stop()
	nparsed := nst["frames"] - nbefore["frames"]
	nullRate := nparsed / nel.Seconds()
	fmt.Printf("do-nothing reader, flood: sent %d frames in %s, %.0f cut and CRC-checked during it (refused %.0f, cpu %.0f%%)\n", nsent, nel.Round(time.Millisecond), nparsed, nst["refused"], nullCPU)
	if nullRate == 0 || nTgt == 0 {
		return errors.New("the do-nothing reader got nothing")
	}
	fmt.Printf("bench-hj212: load average at the end %s\n", loadavg())
	fmt.Printf("BENCH hj212-flood stations=%d frames_per_s=%.0f readings_per_s=%.0f null_frames_per_s=%.0f flood_ratio=%.3f cpu_pct=%.0f cpu_us_per_frame=%.0f null_cpu_us_per_frame=%.1f p99_ms=%.1f drain_frames_per_s=%.0f drain_cpu_pct=%.0f\n",
		*stations, gwRate, gwRate*9, nullRate, gwRate/nullRate, cpuPct, cpuPct*1e4/gwRate, float64(nullCPUTime.Microseconds())/nparsed, st["p99"],
		drained/drainEl.Seconds(), 100*float64(drainCPU)/float64(drainEl))
	// The headline: frames sent in the offered-load window and completed by 2 s after it, per
	// second of the window, by the gateway (stored) and by the do-nothing reader (cut and
	// checked), under the same load.
	tgtRate, nTgtRate := tgtStored/target.Seconds(), nTgt/target.Seconds()
	fmt.Printf("BENCH hj212 stations=%d offered_frames_per_s=%d frames_per_s=%.0f readings_per_s=%.0f null_frames_per_s=%.0f ratio=%.2f p99_ms=%.1f cpu_pct=%.0f null_cpu_pct=%.0f paced_p99_ms=%.1f flood_frames_per_s=%.0f frames_sent=%d frames_stored=%.0f frames_lost=%.0f cpu_us_per_frame=%.0f\n",
		*stations, *rate**stations, tgtRate, tgtRate*9, nTgtRate, tgtRate/nTgtRate, tgtP99, tgtCPU, nTgtCPU, pacedP99, gwRate,
		total, fin["db_frames"], lostFrames, float64(gwTotalCPU.Microseconds())/fin["db_frames"])
	return nil
}
