// Command bench-relay measures the video relay: one simulated 720p camera at about 3 Mbit/s
// (keyframe every 4 s, SPS/PPS only in the SDP) relayed to N WebRTC viewers, for N = 1, 10,
// 100, 500. The relay (simcam → Source → Hub → WHEP) runs in this process; the viewers are pion
// peers in a second process (this binary with -viewers), all on loopback. For each N it prints
// the relay process's CPU and RSS from /proc, packets dropped, the added latency (camera RTP
// in → WebRTC RTP out) and the time from WHEP POST to the first complete keyframe at the
// viewer, ending with one "BENCH relay_nN …" line per N. It never asserts on time.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/offsite-gw/offsite/internal/benchkit"
	"github.com/offsite-gw/offsite/streams"
	"github.com/offsite-gw/offsite/streams/internal/whepclient"
	"github.com/offsite-gw/offsite/streams/simcam"
)

const token = "bench"

var (
	profCPU, profMem string
	viewerNice       int
	fkMark           histCounts // the first-keyframe histogram when the last N's window began
)

func main() {
	viewers := flag.Bool("viewers", false, "run as the viewer process (internal)")
	endpoint := flag.String("endpoint", "", "WHEP endpoint (viewer process)")
	n := flag.Int("n", 1, "viewers (viewer process)")
	ns := flag.String("ns", "1,10,100,500", "viewer counts to measure")
	steady := flag.Duration("steady", 12*time.Second, "measurement window per N")
	clipPath := flag.String("clip", "", "H.264 Annex-B clip (default: generated with ffmpeg into the cache dir)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the relay over all steady windows")
	memProfile := flag.String("memprofile", "", "write a heap profile of the relay at the end of the last steady window")
	flag.IntVar(&viewerNice, "viewer-nice", 0, "run the viewer process at this nice value (e.g. 10 to favour the relay; on a shared box the viewers then fall behind)")
	flag.Parse()
	profCPU, profMem = *cpuProfile, *memProfile
	log.SetFlags(0)
	if *viewers {
		runViewers(*endpoint, *n)
		return
	}
	runRelay(*ns, *steady, *clipPath)
}

// ---- relay side ----

func runRelay(nsFlag string, steady time.Duration, clipPath string) {
	clip, err := benchkit.H264Clip(clipPath)
	if err != nil {
		log.Fatalf("bench-relay: %v", err)
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sim := &simcam.Server{Listen: "127.0.0.1:0", Cameras: []simcam.Camera{{Path: "hd", Clip: clip, FPS: 25}}, Logger: quiet}
	must(sim.Initialize())
	defer sim.Close()
	m := &streams.Manager{Logger: quiet, QueueSize: 256}
	must(m.Initialize())
	defer m.Close()
	must(m.AddCamera(streams.CameraConfig{ID: "hd", URL: sim.URL("hd"), AlwaysOn: true}))
	w := &streams.WHEP{Manager: m, UDPListen: "127.0.0.1:0", TCPListen: "127.0.0.1:0", MaxSessions: 2000, Logger: quiet}
	must(w.Initialize())
	defer w.Close()
	h := &streams.Handler{WHEP: w, Authorize: func(r *http.Request, _ string) (string, error) { return "bench", nil }}
	must(h.Initialize())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	endpoint := "http://" + ln.Addr().String() + "/api/v1/cameras/hd/whep"

	cam, _ := m.Camera("hd")
	deadline := time.Now().Add(15 * time.Second)
	for cam.Status().State != "online" {
		if time.Now().After(deadline) {
			log.Fatalf("bench-relay: camera not online: %+v", cam.Status())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(4500 * time.Millisecond) // a full GOP in the cache

	exe, err := os.Executable()
	must(err)
	// One viewer comes and goes before the baseline, so that pion's one-time setup (codec
	// tables, DTLS certificate, pools) is not charged to the first N's viewers.
	warmUp(exe, endpoint, w)

	in0 := cam.Status().PacketsIn
	cpu0, t0 := cpuTicks(), time.Now()
	time.Sleep(4 * time.Second)
	baseCPU := cpuPct(cpu0, cpuTicks(), time.Since(t0))
	pps := float64(cam.Status().PacketsIn-in0) / time.Since(t0).Seconds()
	kbps := float64(bytesPerSec(cam, 4*time.Second)) * 8 / 1000
	runtime.GC()
	debug.FreeOSMemory()
	baseRSS := rssMB()
	fmt.Printf("relay baseline: camera 1280x720 25 fps ~%.0f kbit/s (%.0f RTP packets/s in), keyframe every 4 s; cpu %.1f%% rss %.1f MB; GOMAXPROCS %d\n",
		kbps, pps, baseCPU, baseRSS, runtime.GOMAXPROCS(0))

	var bench []string
	for _, f := range strings.Split(nsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			log.Fatalf("bench-relay: bad -ns %q", nsFlag)
		}
		line := runN(exe, endpoint, n, steady, m, cam, w, baseCPU, baseRSS)
		bench = append(bench, line)
	}
	fmt.Println()
	for _, l := range bench {
		fmt.Println(l)
	}
}

func runN(exe, endpoint string, n int, steady time.Duration, m *streams.Manager, cam *streams.Camera, w *streams.WHEP, baseCPU, baseRSS float64) string {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd, stdin, sc := startViewers(ctx, exe, endpoint, n)
	time.Sleep(2 * time.Second) // let the GOP bursts of the last joiners pass
	ingest := collectIngest(cam)
	_, _ = io.WriteString(stdin, "window\n")
	lat0 := readHist(m.Latency)
	fk := readHist(w.FirstKeyframe)
	// this N's viewers joined since the last N's window began (the first N's: since the start)
	fk50, fk99 := fk.since(fkMark).quantile(0.5), fk.since(fkMark).quantile(0.99)
	fkMark = fk
	drop0 := w.Stats().PacketsDropped
	sendDrop0, rcvErr0 := w.SendDropped(), udpRcvbufErrors()
	if profCPU != "" {
		f, err := os.Create(fmt.Sprintf("%s.n%d", profCPU, n))
		must(err)
		must(pprof.StartCPUProfile(f))
		defer f.Close()
	}
	cpu0, t0 := cpuTicks(), time.Now()
	time.Sleep(steady)
	cpu := cpuPct(cpu0, cpuTicks(), time.Since(t0))
	rss := rssMB()
	if profCPU != "" {
		pprof.StopCPUProfile()
	}
	if profMem != "" {
		f, err := os.Create(fmt.Sprintf("%s.n%d", profMem, n))
		must(err)
		must(pprof.WriteHeapProfile(f))
		f.Close()
	}
	dropped := w.Stats().PacketsDropped - drop0
	sendDropped, rcvErr := w.SendDropped()-sendDrop0, udpRcvbufErrors()-rcvErr0
	lat := readHist(m.Latency).since(lat0)
	p50, p99 := lat.quantile(0.5), lat.quantile(0.99)
	sessions := w.Sessions()

	_, _ = io.WriteString(stdin, "stop\n")
	times := ingest.stop()
	enc := json.NewEncoder(stdin)
	_ = enc.Encode(times)
	var res viewerResult
	if sc.Scan() {
		_ = json.Unmarshal(sc.Bytes(), &res)
	}
	_ = cmd.Wait()
	waitSessionsGone(w)
	left := w.Sessions()
	runtime.GC()
	debug.FreeOSMemory()

	perViewerCPU := (cpu - baseCPU) / float64(n)
	perViewerRSS := (rss - baseRSS) / float64(n)
	fmt.Printf("N=%d: sessions %d (ok %d, failed %d), relay cpu %.1f%% (%.3f%%/viewer), rss %.1f MB (%.3f MB/viewer), dropped %d, lost at viewers in the window %d, "+
		"(send errors %d, kernel UDP receive-buffer drops %d), added latency camera RTP in → viewer RTP in p50 %.1f ms p99 %.1f ms "+
		"(in → handed to the UDP port p50 %.1f ms p99 %.1f ms), POST→first keyframe p50 %.0f ms p99 %.0f ms (connected→keyframe p99 %.0f ms; at the relay, connected→keyframe sent p50 %.1f ms p99 %.1f ms), viewer process cpu %.1f%%, sessions left after %d\n",
		n, sessions, res.OK, res.Failed, cpu, perViewerCPU, rss, perViewerRSS, dropped, res.Lost, sendDropped, rcvErr,
		res.LatP50, res.LatP99, ms(p50), ms(p99), res.FirstKeyP50, res.FirstKeyP99, res.ConnToKeyP99, ms(fk50), ms(fk99), res.CPU, left)
	// p50_ms/p99_ms: the relay's added latency, camera RTP in → the frame's last packet to
	// this viewer handed to the kernel (sendmsg returned); viewer_*: camera RTP in → RTP read by
	// the viewer process (adds loopback delivery and the viewers' own scheduling on the shared
	// cores). keyframe_*: the relay's connected → first keyframe sent; viewer_post_to_keyframe:
	// WHEP POST → first keyframe complete at the viewer (ICE and DTLS included).
	return fmt.Sprintf("BENCH relay_n%d viewers=%d cpu_pct=%.1f cpu_per_viewer_pct=%.3f rss_mb=%.1f rss_per_viewer_mb=%.3f dropped=%d lost=%d reordered=%d "+
		"p50_ms=%.2f p99_ms=%.2f viewer_p50_ms=%.2f viewer_p99_ms=%.2f keyframe_p50_ms=%.1f keyframe_p99_ms=%.1f "+
		"viewer_connected_to_keyframe_p99_ms=%.0f viewer_post_to_keyframe_p50_ms=%.0f viewer_post_to_keyframe_p99_ms=%.0f viewer_cpu_pct=%.1f viewer_failures=%d",
		n, res.OK, cpu, perViewerCPU, rss, perViewerRSS, dropped, res.Lost, res.Reordered,
		ms(p50), ms(p99), res.LatP50, res.LatP99, ms(fk50), ms(fk99),
		res.ConnToKeyP99, res.FirstKeyP50, res.FirstKeyP99, res.CPU, res.Failed)
}

// startViewers starts the viewer process for n viewers and waits until all are playing.
func startViewers(ctx context.Context, exe, endpoint string, n int) (*exec.Cmd, io.WriteCloser, *bufio.Scanner) {
	args := []string{exe, "-viewers", "-endpoint", endpoint, "-n", strconv.Itoa(n)}
	if nice, err := exec.LookPath("nice"); err == nil && viewerNice > 0 {
		// the viewers stand in for browsers on other machines: they get the CPU after the relay
		args = append([]string{nice, "-n", strconv.Itoa(viewerNice)}, args...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	must(cmd.Start())
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "READY") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		log.Fatalf("bench-relay: viewers for N=%d did not get ready: %s", n, sc.Text())
	}
	return cmd, stdin, sc
}

// waitSessionsGone waits (at most 20 s) until the relay has ended every session.
func waitSessionsGone(w *streams.WHEP) {
	for deadline := time.Now().Add(20 * time.Second); w.Sessions() > 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
}

// warmUp runs one viewer session to its first keyframe and ends it.
func warmUp(exe, endpoint string, w *streams.WHEP) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd, stdin, sc := startViewers(ctx, exe, endpoint, 1)
	_, _ = io.WriteString(stdin, "window\nstop\n{}\n")
	for sc.Scan() {
	}
	_ = cmd.Wait()
	waitSessionsGone(w)
}

// ingestLog records when each video frame (by its RTP timestamp on the hub's timeline, which
// the viewers see unchanged) completed at the relay's camera input.
type ingestLog struct {
	r     *streams.Reader
	done  chan struct{}
	mu    sync.Mutex
	times map[uint32]int64
}

func collectIngest(cam *streams.Camera) *ingestLog {
	l := &ingestLog{r: cam.Hub().AddReader(streams.ReaderOptions{NoGOP: true, Passive: true, QueueSize: 1024}),
		done: make(chan struct{}), times: map[uint32]int64{}}
	go func() {
		for {
			select {
			case <-l.done:
				return
			case u := <-l.r.C():
				if u.Kind == streams.UnitVideo {
					l.mu.Lock()
					l.times[uint32(u.PTS)] = u.Received.UnixNano()
					l.mu.Unlock()
				}
			}
		}
	}()
	return l
}

func (l *ingestLog) stop() map[uint32]int64 {
	close(l.done)
	l.r.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.times
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func bytesPerSec(cam *streams.Camera, d time.Duration) int {
	r := cam.Hub().AddReader(streams.ReaderOptions{Passive: true})
	defer r.Close()
	total := 0
	start := time.Now()
	end := time.After(d)
	for {
		select {
		case u := <-r.C():
			if u.Received.Before(start) {
				continue
			}
			for _, p := range u.Packets {
				total += len(p.Payload) + 12
			}
		case <-end:
			return int(float64(total) / d.Seconds())
		}
	}
}

// cpuTicks returns utime+stime of this process in clock ticks (100 Hz on Linux).
func cpuTicks() int64 { return int64(benchkit.CPUTime(os.Getpid()) / (10 * time.Millisecond)) }

func cpuPct(t0, t1 int64, wall time.Duration) float64 {
	return float64(t1-t0) / 100 / wall.Seconds() * 100
}

// udpRcvbufErrors returns the kernel's count of UDP datagrams dropped on full receive buffers
// (machine-wide; on loopback these are the viewers').
func udpRcvbufErrors() uint64 {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0
	}
	var head []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "Udp:") {
			continue
		}
		f := strings.Fields(l)
		if head == nil {
			head = f
			continue
		}
		for i, h := range head {
			if h == "RcvbufErrors" && i < len(f) {
				v, _ := strconv.ParseUint(f[i], 10, 64)
				return v
			}
		}
	}
	return 0
}

// rssMB returns VmRSS of this process.
func rssMB() float64 { return float64(benchkit.RSSBytes(os.Getpid())) / (1 << 20) }

func must(err error) {
	if err != nil {
		log.Fatalf("bench-relay: %v", err)
	}
}

// ---- viewer side ----

type viewerResult struct {
	OK, Failed   int
	Lost         int64
	Reordered    int64 // frames out of order at the viewers (whole run)
	LatP50       float64
	LatP99       float64
	FirstKeyP50  float64
	FirstKeyP99  float64
	ConnToKeyP99 float64
	CPU          float64
}

func runViewers(endpoint string, n int) {
	api, err := whepclient.NewAPI(false)
	must(err)
	clients := make([]*whepclient.Client, n)
	arrivals := make([]arrivalLog, n)
	var measuring atomic.Bool
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8) // offers in flight at a time
	failed := 0
	var mu sync.Mutex
	joinCtx, cancelJoin := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancelJoin()
	for i := range clients {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			arr := &arrivals[i]
			c := &whepclient.Client{API: api, Endpoint: endpoint, Token: token, HeaderOnly: true, OnFrame: func(ts uint32, at time.Time) {
				if measuring.Load() {
					arr.mu.Lock()
					arr.v = append(arr.v, frameArrival{ts, at.UnixNano()})
					arr.mu.Unlock()
				}
			}}
			ctx, cancel := context.WithTimeout(joinCtx, 30*time.Second)
			defer cancel()
			if err := c.Start(ctx); err != nil {
				log.Printf("viewer %d: %v", i, err)
				mu.Lock()
				failed++
				mu.Unlock()
				return
			}
			clients[i] = c
		}(i)
	}
	wg.Wait()
	// then everyone's first frame, within the same budget
	for i, c := range clients {
		if c == nil {
			continue
		}
		if err := c.WaitFrames(joinCtx, 1); err != nil {
			log.Printf("viewer %d: %v", i, err)
		}
	}
	fmt.Println("READY")
	in := bufio.NewReader(os.Stdin)
	lostBefore := func() []int64 {
		v := make([]int64, len(clients))
		for i, c := range clients {
			if c != nil {
				v[i] = c.Stats().Lost
			}
		}
		return v
	}
	_, _ = in.ReadString('\n') // "window"
	lost0 := lostBefore()
	measuring.Store(true)
	cpu0, t0 := cpuTicks(), time.Now()
	_, _ = in.ReadString('\n') // "stop"
	measuring.Store(false)
	lost1 := lostBefore()
	res := viewerResult{Failed: failed, CPU: cpuPct(cpu0, cpuTicks(), time.Since(t0))}
	var ingest map[uint32]int64
	_ = json.NewDecoder(in).Decode(&ingest)
	var lat []float64
	for i := range arrivals {
		for _, a := range arrivals[i].v {
			if t, ok := ingest[a.ts]; ok {
				lat = append(lat, float64(a.at-t)/1e6)
			}
		}
	}
	res.LatP50, res.LatP99 = quantile(lat, 0.5), quantile(lat, 0.99)
	var fk, ck []float64
	for i, c := range clients {
		if c == nil {
			continue
		}
		st := c.Stats()
		if st.FirstKeyframe > 0 {
			res.OK++
			fk = append(fk, ms(st.FirstKeyframe))
			ck = append(ck, ms(st.FirstKeyframe-st.Connected))
		} else {
			res.Failed++
		}
		res.Lost += lost1[i] - lost0[i]
		res.Reordered += st.Reordered
	}
	res.FirstKeyP50, res.FirstKeyP99 = quantile(fk, 0.5), quantile(fk, 0.99)
	res.ConnToKeyP99 = quantile(ck, 0.99)
	for _, c := range clients {
		if c != nil {
			wg.Add(1)
			sem <- struct{}{}
			go func(c *whepclient.Client) {
				defer wg.Done()
				defer func() { <-sem }()
				_ = c.Close(true)
			}(c)
		}
	}
	wg.Wait()
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
}

type frameArrival struct {
	ts uint32
	at int64
}

type arrivalLog struct {
	mu sync.Mutex
	v  []frameArrival
}

func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	i := int(q*float64(len(v))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(v) {
		i = len(v) - 1
	}
	return v[i]
}
