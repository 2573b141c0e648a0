package worker_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// clipDir caches generated clips between test runs (they are deterministic).
func clipDir(t testing.TB) string {
	dir := os.Getenv("OFFSITE_CLIP_CACHE")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "offsite-analytics-clips")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// makeClip renders an H.264 Annex-B clip with ffmpeg: input arguments, an optional filter
// graph, baseline profile without B-frames, a keyframe every 2 s at 25 fps.
func makeClip(t testing.TB, name, input, filter string) string {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	args := strings.Fields(input)
	if filter != "" {
		args = append(args, "-vf", filter)
	}
	args = append(args, "-an", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-profile:v", "baseline", "-bf", "0",
		"-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-f", "h264")
	h := sha256.Sum256([]byte(strings.Join(args, " ")))
	out := filepath.Join(clipDir(t), name+"-"+hex.EncodeToString(h[:6])+".h264")
	if _, err := os.Stat(out); err == nil {
		return out
	}
	tmp := out + ".tmp"
	cmd := exec.Command("ffmpeg", append(append([]string{"-hide_banner", "-loglevel", "error", "-y", "-threads", "1"}, args...), tmp)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", name, err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		t.Fatal(err)
	}
	return out
}
