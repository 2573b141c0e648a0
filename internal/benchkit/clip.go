package benchkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// H264Clip returns the raw H.264 (Annex B) clip the video benchmarks stream: the file at path
// when one is given, else a 20 s 1280x720 25 fps baseline clip at 3 Mbit/s with a keyframe
// every 100 frames and noise (so the encoder cannot idle), made with ffmpeg once and kept in
// the user's cache directory.
func H264Clip(path string) ([]byte, error) {
	if path != "" {
		return os.ReadFile(path)
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "offsite-bench")
	_ = os.MkdirAll(dir, 0o755)
	p := filepath.Join(dir, "bench-720p-3m-g100.h264")
	if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
		return b, nil
	}
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return nil, fmt.Errorf("ffmpeg is needed once to make the 720p test clip (apt-get install -y ffmpeg), or pass -clip")
	}
	fmt.Println("generating the 720p test clip with ffmpeg (once) …")
	tmp := p + ".tmp"
	out, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25,noise=alls=8:allf=t", "-t", "20",
		"-c:v", "libx264", "-profile:v", "baseline", "-bf", "0", "-g", "100", "-keyint_min", "100", "-sc_threshold", "0",
		"-preset", "veryfast", "-b:v", "3M", "-maxrate", "3M", "-bufsize", "3M", "-pix_fmt", "yuv420p",
		"-f", "h264", tmp).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ffmpeg: %v: %s", err, out)
	}
	if err := os.Rename(tmp, p); err != nil {
		return nil, err
	}
	return os.ReadFile(p)
}
