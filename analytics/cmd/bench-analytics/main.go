// Command bench-analytics measures what one camera costs the analytics worker at one look
// per second: keyframe decode (libavcodec, luma only), RTP depacketisation of the whole
// stream (every packet must be read to find the keyframes), and each detector, in CPU time
// of the measuring thread so other load on the machine does not inflate the figures. It
// prints cameras per core = 1000 ms / (ms of CPU per camera-second).
//
// The clip is Debian opencv-doc's vtest.avi (people walking) scaled to 1280x720 at 25 fps
// with sensor noise, H.264 baseline, a keyframe every second (the costlier end of 1-2 s: one
// decode per look), made with ffmpeg into a cache directory.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
	"golang.org/x/sys/unix"

	"github.com/offsite-gw/offsite/analytics/lease"
	"github.com/offsite-gw/offsite/analytics/worker"
	"github.com/offsite-gw/offsite/streams/h264file"
)

func threadCPU() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}

func main() {
	var (
		cache   = flag.String("cache", filepath.Join(os.TempDir(), "offsite-bench-analytics"), "clip cache directory")
		cameras = flag.Int("cameras", 8, "cameras analysed (each with its own decoder and detectors)")
		seconds = flag.Int("seconds", 30, "seconds of video per camera (one look per second)")
		gop     = flag.Int("gop", 25, "keyframe interval in frames at 25 fps (25 = 1 s, 50 = 2 s)")
		src     = flag.String("src", "/usr/share/doc/opencv-doc/examples/data/vtest.avi", "source scene")
	)
	flag.Parse()
	clip, err := makeClip(*cache, *src, *seconds, *gop)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-analytics:", err)
		os.Exit(1)
	}
	data, err := os.ReadFile(clip)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-analytics:", err)
		os.Exit(1)
	}
	kfs, err := worker.Keyframes(data)
	if err != nil || len(kfs) == 0 {
		fmt.Fprintln(os.Stderr, "bench-analytics: no keyframes:", err)
		os.Exit(1)
	}
	aus, err := h264file.AccessUnits(data)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-analytics:", err)
		os.Exit(1)
	}

	worker.SingleThreadedOpenCV()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	// RTP: packetise the whole stream once, then time depacketising one second of it.
	rtpPerSecond := rtpCost(aus)

	set := benchSettings()
	var total worker.Timings
	var decode time.Duration
	var looks, events int
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.FixedZone("CST", 8*3600))
	for c := 0; c < *cameras; c++ {
		dec, err := worker.NewKeyframeDecoder()
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench-analytics:", err)
			os.Exit(1)
		}
		a := &worker.Analyzer{CameraID: fmt.Sprintf("cam-%02d", c), Settings: set, Clock: threadCPU}
		// Each camera starts at another point of the clip, so they do not see the same looks.
		for i := range kfs {
			kf := kfs[(i+c*3)%len(kfs)]
			t0 := threadCPU()
			pic, err := dec.Decode(kf)
			decode += threadCPU() - t0
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench-analytics: decode:", err)
				os.Exit(1)
			}
			sig, err := a.Analyze(start.Add(time.Duration(i)*time.Second), pic)
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench-analytics:", err)
				os.Exit(1)
			}
			events += len(sig)
			looks++
		}
		total.Add(a.Timings)
		a.Close()
		dec.Close()
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(looks) }
	rtpMS := float64(rtpPerSecond) / float64(time.Millisecond)
	decodeMS, prepMS := ms(decode), ms(total.Prepare)
	tamperMS, motionMS, peopleMS := ms(total.Tamper), ms(total.Motion), ms(total.People)
	// One look per camera-second: CPU per camera-second is one look plus a second of RTP.
	totalMS := decodeMS + prepMS + tamperMS + motionMS + peopleMS + rtpMS
	snapMS := 0.0
	if events > 0 {
		snapMS = float64(total.Snapshot) / float64(time.Millisecond) / float64(events)
	}
	fmt.Printf("clip %s: 1280x720 H.264, keyframe every %d frames, %d keyframes, %d cameras, %d looks, %d alarm changes\n",
		filepath.Base(clip), *gop, len(kfs), *cameras, looks, events)
	fmt.Printf("per camera-second (ms of CPU): decode %.2f  scale %.2f  tamper %.2f  motion %.2f  people %.2f  rtp %.2f  (snapshot %.2f per alarm)\n",
		decodeMS, prepMS, tamperMS, motionMS, peopleMS, rtpMS, snapMS)
	fmt.Printf("BENCH analytics cameras_per_core=%.0f decode_ms=%.2f tamper_ms=%.2f motion_ms=%.2f people_ms=%.2f scale_ms=%.2f rtp_ms=%.2f total_ms=%.2f\n",
		1000/totalMS, decodeMS, tamperMS, motionMS, peopleMS, prepMS, rtpMS, totalMS)
}

func benchSettings() lease.CameraSettings {
	s := lease.CameraSettings{
		Schedule: []lease.Period{{Days: []int{1, 2, 3, 4, 5}, From: "08:30", To: "17:30"}},
		Zones: []lease.Zone{
			{ID: "counter", Kind: lease.ZoneCounter, Polygon: [][2]float64{{0, 0.5}, {0.3, 0.5}, {0.3, 1}, {0, 1}}},
			{ID: "queue", Kind: lease.ZoneQueue, Polygon: [][2]float64{{0.3, 0.3}, {0.8, 0.3}, {0.8, 1}, {0.3, 1}}, MaxPeople: 8, MaxOccupancy: 0.5},
			{ID: "door", Kind: lease.ZoneArea, Polygon: [][2]float64{{0.8, 0}, {1, 0}, {1, 1}, {0.8, 1}}, MaxPeople: 4},
		},
	}
	s.Defaults()
	if err := s.Validate(); err != nil {
		panic(err)
	}
	return s
}

func makeClip(cache, src string, seconds, gop int) (string, error) {
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(cache, fmt.Sprintf("vtest-720p-%ds-g%d.h264", seconds, gop))
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if _, err := os.Stat(src); err != nil {
		return "", fmt.Errorf("%s: %w (apt-get install opencv-doc)", src, err)
	}
	tmp := out + ".tmp"
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", src, "-t", fmt.Sprint(seconds),
		"-vf", "scale=1280:720,fps=25,noise=alls=4:allf=t", "-an", "-c:v", "libx264", "-preset", "veryfast", "-b:v", "2500k", "-maxrate", "3000k", "-bufsize", "3000k",
		"-profile:v", "baseline", "-bf", "0", "-g", fmt.Sprint(gop), "-keyint_min", fmt.Sprint(gop), "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-f", "h264", tmp)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("ffmpeg: %w", err)
	}
	return out, os.Rename(tmp, out)
}

// rtpCost is the CPU time to depacketise one second (25 access units) of the stream, as the
// pipeline does for every packet to find the keyframes.
func rtpCost(aus [][][]byte) time.Duration {
	f := &format.H264{PayloadTyp: 96, PacketizationMode: 1}
	enc, err := f.CreateEncoder()
	if err != nil {
		panic(err)
	}
	var pkts []*rtp.Packet
	for _, au := range aus {
		p, err := enc.Encode(au)
		if err != nil {
			panic(err)
		}
		pkts = append(pkts, p...)
	}
	dec, err := f.CreateDecoder()
	if err != nil {
		panic(err)
	}
	// Packets go through marshal/unmarshal as they would off the wire.
	wire := make([][]byte, len(pkts))
	for i, p := range pkts {
		wire[i], _ = p.Marshal()
	}
	t0 := threadCPU()
	var p rtp.Packet
	for _, b := range wire {
		if err := p.Unmarshal(b); err != nil {
			continue
		}
		_, _ = dec.Decode(&p)
	}
	d := threadCPU() - t0
	seconds := float64(len(aus)) / 25
	ds := durations(d, seconds)
	return ds
}

func durations(d time.Duration, seconds float64) time.Duration {
	if seconds <= 0 {
		return 0
	}
	return time.Duration(float64(d) / seconds)
}
