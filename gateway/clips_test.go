package main_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/streams/simcam"
)

// clipGateway is one `offsite serve` process with clips on.
type clipGateway struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	base string
}

var servingRE = regexp.MustCompile(`msg="offsite serving".* http=(\S+)`)

func startClipGateway(t *testing.T, dir string, env ...string) *clipGateway {
	t.Helper()
	cfg := filepath.Join(dir, "offsite.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`data_dir: %s
clips:
  enabled: true
  pre_roll: 4s
  post_roll: 4s
`, dir)), 0o600))
	g := &clipGateway{out: &syncBuffer{}}
	g.cmd = exec.Command(offsiteBin, "serve", "--config", cfg)
	g.cmd.Env = append(append(os.Environ(), loopbackEnv()...), env...)
	g.cmd.Stdout, g.cmd.Stderr = g.out, g.out
	require.NoError(t, g.cmd.Start())
	t.Cleanup(func() { _ = g.cmd.Process.Kill(); _, _ = g.cmd.Process.Wait() })
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if m := servingRE.FindStringSubmatch(g.out.String()); m != nil {
			g.base = "http://" + m[1]
			return g
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("gateway did not start:\n%s", g.out.String())
	return nil
}

var adminPWRE = regexp.MustCompile(`created user "admin" with password\s+(\S+)`)

func ffprobeOrSkip(t *testing.T) string {
	p, err := exec.LookPath("ffprobe")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ffprobe is required in CI")
		}
		t.Skip("ffprobe not installed")
	}
	return p
}

type clipEvidence struct {
	ID       string           `json:"id"`
	Ref      string           `json:"ref_event_id"`
	Message  string           `json:"message"`
	Evidence []event.Evidence `json:"evidence"`
}

// evidenceFor waits for the evidence.added event of ref.
func evidenceFor(t *testing.T, base, token, ref string, within time.Duration) clipEvidence {
	t.Helper()
	var found *clipEvidence
	deadline := time.Now().Add(within)
	for found == nil && time.Now().Before(deadline) {
		for _, e := range evidenceEvents(t, base, token) {
			if e.Ref == ref {
				found = &e
				break
			}
		}
		if found == nil {
			time.Sleep(200 * time.Millisecond)
		}
	}
	require.NotNil(t, found, "no evidence.added for event %s within %s", ref, within)
	return *found
}

func evidenceEvents(t *testing.T, base, token string) []clipEvidence {
	code, body := get(t, base+"/api/v1/events?type=evidence.added&limit=1000", token)
	require.Equal(t, 200, code, string(body))
	var page struct{ Events []clipEvidence }
	require.NoError(t, json.Unmarshal(body, &page))
	return page.Events
}

// download fetches an evidence file, checks its sha256 against the one the event names and
// keeps it in dir for ffprobe.
func download(t *testing.T, base, token, dir string, ev event.Evidence) string {
	t.Helper()
	code, body := get(t, base+ev.URL, token)
	require.Equal(t, 200, code, "GET %s", ev.URL)
	sum := sha256.Sum256(body)
	require.Equal(t, ev.SHA256, hex.EncodeToString(sum[:]), "the file %s has the hash its event names", ev.URL)
	p := filepath.Join(dir, ev.SHA256+".mp4")
	require.NoError(t, os.WriteFile(p, body, 0o600))
	return p
}

func probe(t *testing.T, ffprobe, path string) (codec string, duration float64, firstKey bool) {
	t.Helper()
	out, err := exec.Command(ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name:format=duration",
		"-of", "default=nw=1", path).Output()
	require.NoError(t, err, "ffprobe reads %s", path)
	for _, l := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(l, "=")
		switch k {
		case "codec_name":
			codec = v
		case "duration":
			duration, _ = strconv.ParseFloat(v, 64)
		}
	}
	out, err = exec.Command(ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=key_frame,pict_type",
		"-read_intervals", "%+#1", "-of", "csv=p=0", path).Output()
	require.NoError(t, err)
	return codec, duration, strings.HasPrefix(strings.TrimSpace(string(out)), "1,I")
}

// An event of a camera with clips gets an MP4 of the moment through evidence.added, whose hash
// is the file's; a gateway killed (-9) mid-clip leaves no event naming a file with another
// hash, and the clip it was writing is recovered at the restart, marked incomplete.
func TestClipOfEventAndKill9MidClip(t *testing.T) {
	ffprobe := ffprobeOrSkip(t)
	var cams []simcam.Camera
	for _, c := range simcam.DemoCameras() {
		if c.Path == "hall-entrance" { // a keyframe every 2 s
			cams = append(cams, c)
		}
	}
	sim := &simcam.Server{Cameras: cams}
	require.NoError(t, sim.Initialize())
	t.Cleanup(sim.Close)

	dir := t.TempDir()
	files := t.TempDir()
	gw := startClipGateway(t, dir)
	m := adminPWRE.FindStringSubmatch(gw.out.String())
	require.NotNil(t, m, gw.out.String())
	admin := login(t, gw.base, "admin", m[1])
	code, body := post(t, gw.base+"/api/v1/sites", admin, `{"id":"cold-store","name":"冷库","region_code":"410702","department":"市市场监督管理局"}`)
	require.Equal(t, 201, code, string(body))
	code, body = post(t, gw.base+"/api/v1/devices", admin, fmt.Sprintf(
		`{"id":"cam-cold","site_id":"cold-store","kind":"camera","name":"冷库门口","stream":{"url":%q}}`, sim.URL("hall-entrance")))
	require.Equal(t, 201, code, string(body))

	waitOnline := func(g *clipGateway) {
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			_, b := get(t, g.base+"/api/v1/cameras/cam-cold", admin)
			if strings.Contains(string(b), `"state":"online"`) {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("camera not online:\n%s", g.out.String())
	}
	postEvent := func(g *clipGateway) (string, time.Time) {
		at := time.Now().UTC()
		code, body := post(t, g.base+"/api/v1/events", admin, fmt.Sprintf(
			`{"type":"video.tamper","severity":"major","state":"active","alarm_key":"cam-cold/tamper","device":{"id":"cam-cold"},"occurred_at":%q,"message":"摄像机遮挡"}`,
			at.Format(event.TimeFormat)))
		require.Equal(t, 201, code, string(body))
		var e struct{ ID string }
		require.NoError(t, json.Unmarshal(body, &e))
		return e.ID, at.Truncate(time.Millisecond)
	}

	// 1. a clip of the moment
	waitOnline(gw)
	time.Sleep(7 * time.Second) // the pre-roll fills (a precondition, not a timing assertion)
	id, at := postEvent(gw)
	ev := evidenceFor(t, gw.base, admin, id, 60*time.Second)
	require.Len(t, ev.Evidence, 1)
	clip := ev.Evidence[0]
	require.Equal(t, "clip", clip.Kind)
	require.Equal(t, "video/mp4", clip.MIME)
	require.Equal(t, "h264", clip.Codec)
	require.Equal(t, "cam-cold", clip.CameraID)
	require.NotNil(t, clip.Complete)
	require.True(t, *clip.Complete, clip.Note)
	require.Contains(t, ev.Message, "证据录像已生成：冷库门口")
	require.True(t, clip.EventAt.Equal(at))
	require.False(t, clip.Start.After(at.Add(-4*time.Second)), "starts at least the pre-roll before the event")
	require.False(t, clip.End.Before(at.Add(4*time.Second)), "ends at least the post-roll after it")
	p := download(t, gw.base, admin, files, clip)
	codec, dur, key := probe(t, ffprobe, p)
	require.Equal(t, "h264", codec)
	require.True(t, key, "the first frame is a keyframe")
	require.GreaterOrEqual(t, dur, 8.0-0.05)
	require.Less(t, dur, 8.0+2.0+0.2, "pre + post within one GOP (2 s)")

	// 2. kill -9 while a long clip is being written
	require.NoError(t, gw.cmd.Process.Signal(syscall.SIGINT))
	_, _ = gw.cmd.Process.Wait()
	gw = startClipGateway(t, dir, "OFFSITE_CLIPS_POST_ROLL=5m")
	waitOnline(gw)
	time.Sleep(7 * time.Second)
	killed, _ := postEvent(gw)
	deadline := time.Now().Add(60 * time.Second)
	for {
		parts, _ := filepath.Glob(filepath.Join(dir, "clips", "*.mp4.part"))
		if len(parts) > 0 {
			if st, err := os.Stat(parts[0]); err == nil && st.Size() > 400_000 {
				break
			}
		}
		require.True(t, time.Now().Before(deadline), "no clip being written:\n%s", gw.out.String())
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(t, gw.cmd.Process.Signal(syscall.SIGKILL))
	_, _ = gw.cmd.Process.Wait()

	gw = startClipGateway(t, dir)
	ev = evidenceFor(t, gw.base, admin, killed, 60*time.Second)
	clip = ev.Evidence[0]
	require.NotNil(t, clip.Complete)
	require.False(t, *clip.Complete)
	require.Contains(t, clip.Note, "gateway stopped")
	require.Contains(t, ev.Message, "录像不完整")
	p = download(t, gw.base, admin, files, clip)
	_, dur, key = probe(t, ffprobe, p)
	require.True(t, key)
	require.Greater(t, dur, 4.0, "kept as far as it got")
	// every clip any event names has the hash that event says
	all := evidenceEvents(t, gw.base, admin)
	require.Len(t, all, 2, "one evidence.added per clip, none twice after the restart")
	for _, e := range all {
		download(t, gw.base, admin, files, e.Evidence[0])
	}
	left, _ := filepath.Glob(filepath.Join(dir, "clips", "*.mp4.part"))
	require.Empty(t, left, "the recovered clip left the work directory")

	// 3. a manual recording (取证录像), cut short by a stop: kept as far as it got
	waitOnline(gw)
	time.Sleep(3 * time.Second) // a keyframe in the pre-roll: the recording starts at the last one
	rec := gw.base + "/api/v1/cameras/cam-cold/recordings"
	code, body = post(t, rec, admin, `{"minutes": 0, "reason": "现场检查"}`)
	require.Equal(t, 400, code)
	require.Contains(t, string(body), "minutes_out_of_range")
	code, body = post(t, rec, admin, `{"minutes": 1, "reason": "  "}`)
	require.Equal(t, 400, code)
	require.Contains(t, string(body), "reason_required")
	code, body = post(t, gw.base+"/api/v1/cameras/no-such-cam/recordings", admin, `{"minutes": 1, "reason": "现场检查"}`)
	require.Equal(t, 404, code, string(body))
	code, body = post(t, rec, admin, `{"minutes": 1, "reason": "现场检查：冷库门口"}`)
	require.Equal(t, 202, code, string(body))
	var started struct {
		ID      string `json:"id"`
		EventID string `json:"event_id"`
		Until   string `json:"until"`
	}
	require.NoError(t, json.Unmarshal(body, &started))
	require.NotEmpty(t, started.EventID)
	code, body = get(t, rec, admin)
	require.Equal(t, 200, code)
	require.Contains(t, string(body), `"state":"recording"`)
	require.Contains(t, string(body), started.EventID)
	code, body = get(t, gw.base+"/api/v1/events?type=evidence.manual", admin)
	require.Equal(t, 200, code)
	require.Contains(t, string(body), "取证录像：现场检查：冷库门口")
	require.Contains(t, string(body), "admin")
	time.Sleep(3 * time.Second)
	require.NoError(t, gw.cmd.Process.Signal(syscall.SIGINT))
	_, _ = gw.cmd.Process.Wait()
	require.Contains(t, gw.out.String(), "clip stored", "the stopping gateway stored the clip it was writing")
	gw = startClipGateway(t, dir)
	ev = evidenceFor(t, gw.base, admin, started.EventID, 30*time.Second)
	clip = ev.Evidence[0]
	require.False(t, *clip.Complete)
	require.Contains(t, clip.Note, "gateway stopped")
	p = download(t, gw.base, admin, files, clip)
	_, dur, key = probe(t, ffprobe, p)
	require.True(t, key)
	require.Greater(t, dur, 2.0, "%+v", clip)
}

// waitDemoNodesGone waits (up to 30 s) until the node processes of a killed demo have stopped:
// they stop gracefully on their parent's death (storing the clips they were writing), and the
// test's temporary directory can only be removed after.
func waitDemoNodesGone(dataDir string) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		found := false
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			b, err := os.ReadFile(p)
			if err == nil && strings.Contains(string(b), "demo\x00node\x00") && strings.Contains(string(b), abs) {
				found = true
				break
			}
		}
		if !found {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
