package benchkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// ClipSpec describes a 20 s 1280x720 25 fps baseline H.264 test clip made with ffmpeg: its
// bit rate, keyframe interval and the noise that keeps the encoder from idling.
type ClipSpec struct {
	Name  string // file name in the cache directory
	Mbit  int    // bit rate, Mbit/s
	GOP   int    // frames between keyframes
	Noise int    // ffmpeg noise strength (alls)
}

// BenchClip is the clip the relay and cascade benchmarks stream: 3 Mbit/s, a keyframe every
// 100 frames.
var BenchClip = ClipSpec{Name: "bench-720p-3m-g100.h264", Mbit: 3, GOP: 100, Noise: 8}

// H264Clip returns the raw H.264 (Annex B) clip of BenchClip: the file at path when one is
// given, else the clip made with ffmpeg once and kept in the user's cache directory.
func H264Clip(path string) ([]byte, error) {
	if path != "" {
		return os.ReadFile(path)
	}
	return MakeClip(CachedClip(BenchClip), BenchClip)
}

// CachedClip is where spec's clip is kept between runs.
func CachedClip(spec ClipSpec) string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "offsite-bench", spec.Name)
}

// MakeClip returns the clip at path, making it with ffmpeg first when it is missing.
func MakeClip(path string, spec ClipSpec) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
		return b, nil
	}
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return nil, fmt.Errorf("ffmpeg is needed once to make the 720p test clip (apt-get install -y ffmpeg), or pass -clip")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	fmt.Println("generating the 720p test clip with ffmpeg (once) …")
	tmp := path + ".tmp"
	rate := fmt.Sprintf("%dM", spec.Mbit)
	gop := fmt.Sprint(spec.GOP)
	out, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=1280x720:rate=25,noise=alls=%d:allf=t", spec.Noise), "-t", "20",
		"-c:v", "libx264", "-profile:v", "baseline", "-bf", "0", "-g", gop, "-keyint_min", gop, "-sc_threshold", "0",
		"-preset", "veryfast", "-b:v", rate, "-maxrate", rate, "-bufsize", rate, "-pix_fmt", "yuv420p",
		"-f", "h264", tmp).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ffmpeg: %v: %s", err, out)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}
