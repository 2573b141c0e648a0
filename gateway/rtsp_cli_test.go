package main_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRTSPConsumersCLI: a consumer added with the CLI reads a camera of the running demo
// with ffprobe under its own login; revoked, it is refused while the configured login still
// reads.
func TestRTSPConsumersCLI(t *testing.T) {
	ffprobe, err := exec.LookPath("ffprobe")
	if err != nil {
		t.Skip("ffprobe not installed")
	}
	dir := t.TempDir()
	_, _, out := startDemo(t, dir)
	env := []string{"OFFSITE_DATA_DIR=" + dir}
	code, stdout, stderr := run(t, env, "rtsp-consumers", "add", "--note", "NVR room 2", "recorder-1")
	require.Equal(t, 0, code, stderr)
	secret := regexp.MustCompile(`(?m)^([A-Za-z0-9_-]{32})$`).FindStringSubmatch(stdout)
	require.Len(t, secret, 2, stdout)
	code, _, stderr = run(t, env, "rtsp-consumers", "add", "recorder-1")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "exists")

	b, err := os.ReadFile(filepath.Join(dir, "demo.json"))
	require.NoError(t, err)
	var dj struct {
		RTSP    string
		Cameras []struct{ ID, RTSP string }
	}
	require.NoError(t, json.Unmarshal(b, &dj))
	host := dj.RTSP[len("rtsp://"):]
	probe := func(url string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return exec.CommandContext(ctx, ffprobe, "-v", "error", "-rtsp_transport", "tcp", "-show_entries", "stream=codec_name", url).Run()
	}
	mine := "rtsp://recorder-1:" + secret[1] + "@" + host + "/" + dj.Cameras[0].ID
	require.NoError(t, probe(mine), out.String())

	code, stdout, stderr = run(t, env, "rtsp-consumers", "revoke", "recorder-1")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "revoked")
	code, stdout, _ = run(t, env, "rtsp-consumers", "list")
	require.Equal(t, 0, code)
	require.Regexp(t, `recorder-1\s+\S+ \S+\s+cli:\S*\s+\d{4}-`, stdout)
	// The running gateway's lookup cache forgets within 5 s.
	require.Eventually(t, func() bool { return probe(mine) != nil }, 30*time.Second, time.Second)
	require.NoError(t, probe(dj.Cameras[0].RTSP), "the configured login still reads")
}
