// Command bench-clips measures what event clips cost the gateway (make bench-clips): 32
// simulated cameras at about 2 Mbit/s, pulled by the relay (streams.Manager) in this process,
// first without clips, then with a pre-roll on every camera and one event per camera per
// minute, each clip stored into an evidence store (hashing and copying, as the gateway does).
// The cameras run in a child process (this binary with -sim), so their cost is not counted.
//
// It prints the relay's CPU and RSS without and with clips in one run, the difference per
// camera, the MP4 bytes written per second and the time from an event to its finished, stored
// clip, and ends with one "BENCH clips …" line.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/internal/benchkit"
	"github.com/offsite-gw/offsite/streams"
	"github.com/offsite-gw/offsite/streams/simcam"
)

func main() {
	sim := flag.Bool("sim", false, "serve the simulated cameras (child process) until stdin closes")
	cameras := flag.Int("cameras", 32, "cameras")
	window := flag.Duration("window", 60*time.Second, "measuring window without clips")
	run := flag.Duration("run", 120*time.Second, "measuring window with clips and events")
	every := flag.Duration("every", time.Minute, "one event per camera this often")
	pre := flag.Duration("pre", 10*time.Second, "pre-roll")
	post := flag.Duration("post", 20*time.Second, "post-roll")
	clipPath := flag.String("clip", "", "H.264 Annex-B clip (default: generated once with ffmpeg)")
	flag.Parse()
	clip, err := loadClip(*clipPath)
	must(err)
	if *sim {
		serveSim(clip, *cameras)
		return
	}

	// the cameras, in a child process
	self, err := os.Executable()
	must(err)
	child := exec.Command(self, "-sim", "-cameras", strconv.Itoa(*cameras), "-clip", clipFile())
	child.Stderr = os.Stderr
	stdin, err := child.StdinPipe()
	must(err)
	stdout, err := child.StdoutPipe()
	must(err)
	must(child.Start())
	defer func() { stdin.Close(); _ = child.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	must(err)
	addr := strings.TrimSpace(line)

	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	m := &streams.Manager{Logger: quiet}
	must(m.Initialize())
	defer m.Close()
	ids := make([]string, *cameras)
	for i := range ids {
		ids[i] = fmt.Sprintf("cam-%02d", i)
		must(m.AddCamera(streams.CameraConfig{ID: ids[i], URL: "rtsp://" + addr + "/" + ids[i], AlwaysOn: true}))
	}
	time.Sleep(10 * time.Second) // every camera online, the heap settled
	bitrate := measureBitrate(m, ids)

	runtime.GC()
	cpuOff, rssOff := measure(*window)
	fmt.Printf("clips off: %d cameras at %.2f Mbit/s each, relay cpu %.2f%% of a core, rss %.1f MB (%d s)\n",
		*cameras, bitrate, cpuOff, rssOff, int(window.Seconds()))

	dir, err := os.MkdirTemp("", "bench-clips")
	must(err)
	defer os.RemoveAll(dir)
	store := &events.EvidenceStore{Dir: filepath.Join(dir, "evidence"), MaxFileBytes: 1 << 30}
	var (
		mu        sync.Mutex
		latencies []float64 // event → stored, minus the post-roll (s)
		eventAt   = map[string]time.Time{}
		clipsDone int
		stored    int64
	)
	clips := &streams.Clips{Manager: m, Dir: filepath.Join(dir, "clips"), PreRoll: *pre, PostRoll: *post, Logger: quiet,
		OnClip: func(r streams.ClipResult) error {
			f, err := os.Open(r.Path)
			if err != nil {
				return err
			}
			defer f.Close()
			sum, _, err := store.Put(f, ".mp4")
			if err != nil {
				return err
			}
			_ = os.Remove(filepath.Join(store.Dir, sum[0:2], sum[2:4], sum+".mp4")) // keep the disk free
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			clipsDone++
			stored += r.Bytes
			for _, ref := range r.Refs {
				if at, ok := eventAt[ref.Ref]; ok {
					latencies = append(latencies, now.Sub(at.Add(*post)).Seconds())
				}
			}
			return nil
		}}
	must(clips.Initialize())
	for _, id := range ids {
		must(clips.Enable(id, true))
	}
	time.Sleep(*pre + 5*time.Second) // pre-rolls fill
	runtime.GC()

	// one event per camera per `every`, spread evenly
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	nEvents := 0
	go func() {
		defer wg.Done()
		gap := *every / time.Duration(len(ids))
		t := time.NewTicker(gap)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case now := <-t.C:
				id := ids[i%len(ids)]
				ref := fmt.Sprintf("ev-%d", i)
				mu.Lock()
				eventAt[ref] = now
				mu.Unlock()
				if _, _, err := clips.Record(id, streams.ClipRequest{Ref: ref, At: now}); err != nil {
					log.Printf("no clip for %s: %v", id, err)
				}
				nEvents++
			}
		}
	}()
	written0 := clips.Stats().BytesWritten
	cpuOn, rssOn := measure(*run)
	st := clips.Stats()
	close(stop)
	wg.Wait()
	written := st.BytesWritten - written0
	// let the clips of the window finish
	deadline := time.Now().Add(*post + 15*time.Second)
	for time.Now().Before(deadline) && clips.Stats().ActiveClips > 0 {
		time.Sleep(200 * time.Millisecond)
	}
	clips.Close()

	mu.Lock()
	sort.Float64s(latencies)
	n := len(latencies)
	p50, p99 := quantile(latencies, 0.50), quantile(latencies, 0.99)
	done := clipsDone
	mu.Unlock()
	perCamCPU := (cpuOn - cpuOff) / float64(*cameras)
	perCamRSS := (rssOn - rssOff) / float64(*cameras)
	preRollMB := float64(st.PreRollBytes) / (1 << 20)
	fmt.Printf("clips on: pre-roll %s, post-roll %s, %d events (one per camera per %s), %d clips stored; relay cpu %.2f%% (+%.3f%%/camera), rss %.1f MB (+%.2f MB/camera; pre-roll held %.1f MB = %.2f MB/camera), MP4 written %.0f kB/s, units lost by the pre-roll %d, event → stored clip after the post-roll p50 %.0f ms p99 %.0f ms (%d)\n",
		*pre, *post, nEvents, *every, done, cpuOn, perCamCPU, rssOn, perCamRSS, preRollMB, preRollMB/float64(*cameras),
		float64(written)/run.Seconds()/1000, st.UnitsDropped, p50*1000, p99*1000, n)
	fmt.Printf("BENCH clips cameras=%d camera_mbit_s=%.2f cpu_off_pct=%.2f cpu_on_pct=%.2f cpu_per_camera_pct=%.3f rss_off_mb=%.1f rss_on_mb=%.1f rss_per_camera_mb=%.2f preroll_per_camera_mb=%.2f mp4_bytes_per_s=%.0f events=%d clips=%d clip_after_post_p50_ms=%.0f clip_after_post_p99_ms=%.0f units_lost=%d\n",
		*cameras, bitrate, cpuOff, cpuOn, perCamCPU, rssOff, rssOn, perCamRSS, preRollMB/float64(*cameras),
		float64(written)/run.Seconds(), nEvents, done, p50*1000, p99*1000, st.UnitsDropped)
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return sorted[i]
}

// measure returns this process's CPU (% of one core) over d and its RSS at the end.
func measure(d time.Duration) (float64, float64) {
	c0, t0 := cpuTicks(), time.Now()
	time.Sleep(d)
	cpu := float64(cpuTicks()-c0) / 100 / time.Since(t0).Seconds() * 100
	return cpu, rssMB()
}

func measureBitrate(m *streams.Manager, ids []string) float64 {
	cam, _ := m.Camera(ids[0])
	r := cam.Hub().AddReader(streams.ReaderOptions{Passive: true, NoGOP: true})
	defer r.Close()
	var bytes int
	end := time.After(5 * time.Second)
	for {
		select {
		case u := <-r.C():
			for _, n := range u.NALUs {
				bytes += len(n)
			}
		case <-end:
			return float64(bytes) * 8 / 5 / 1e6
		}
	}
}

func serveSim(clip []byte, n int) {
	var cams []simcam.Camera
	for i := 0; i < n; i++ {
		cams = append(cams, simcam.Camera{Path: fmt.Sprintf("cam-%02d", i), Clip: clip, FPS: 25})
	}
	s := &simcam.Server{Cameras: cams, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))}
	must(s.Initialize())
	fmt.Println(s.Addr())
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
	s.Close()
}

// clipSpec is the benchmark's camera: 2 Mbit/s, a keyframe every 2 s.
var clipSpec = benchkit.ClipSpec{Name: "clips-720p-2mbit-gop2s-n20.h264", Mbit: 2, GOP: 50, Noise: 20}

func clipFile() string { return benchkit.CachedClip(clipSpec) }

// loadClip reads the test clip at path (default: the cached one, made with ffmpeg once).
func loadClip(path string) ([]byte, error) {
	if path == "" {
		path = clipFile()
	}
	return benchkit.MakeClip(path, clipSpec)
}

// cpuTicks returns this process's CPU time in clock ticks (100 Hz).
func cpuTicks() int64 { return int64(benchkit.CPUTime(os.Getpid()) / (10 * time.Millisecond)) }

func rssMB() float64 { return float64(benchkit.RSSBytes(os.Getpid())) / (1 << 20) }

func must(err error) {
	if err != nil {
		log.Fatalf("bench-clips: %v", err)
	}
}
