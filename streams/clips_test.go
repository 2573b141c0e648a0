package streams_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/streams"
	"github.com/offsite-gw/offsite/streams/simcam"
)

// clipSink keeps every clip OnClip gets, with a copy of its file (the recorder removes its own).
type clipSink struct {
	mu    sync.Mutex
	dir   string
	clips []streams.ClipResult
	fail  bool
}

func (s *clipSink) on(r streams.ClipResult) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return os.ErrPermission
	}
	b, err := os.ReadFile(r.Path)
	if err != nil {
		return err
	}
	r.Path = filepath.Join(s.dir, r.ID+".mp4")
	if err := os.WriteFile(r.Path, b, 0o600); err != nil {
		return err
	}
	s.clips = append(s.clips, r)
	return nil
}

func (s *clipSink) all() []streams.ClipResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]streams.ClipResult(nil), s.clips...)
}

func (s *clipSink) wait(t *testing.T, n int) []streams.ClipResult {
	t.Helper()
	waitFor(t, 60*time.Second, strconv.Itoa(n)+" clips", func() bool { return len(s.all()) >= n })
	return s.all()
}

type probed struct {
	codec    string
	duration float64
	firstKey bool
	frames   int
}

// probeClip reads a clip with ffprobe: its codec, duration and whether the first frame is a
// keyframe. ffprobe failing to read it fails the test.
func probeClip(t *testing.T, path string) probed {
	t.Helper()
	bin := need(t, "ffprobe")
	out, err := exec.Command(bin, "-v", "error", "-select_streams", "v:0", "-count_packets",
		"-show_entries", "stream=codec_name,nb_read_packets:format=duration", "-of", "json", path).Output()
	require.NoError(t, err, "ffprobe %s", path)
	var info struct {
		Streams []struct {
			Codec   string `json:"codec_name"`
			Packets string `json:"nb_read_packets"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	require.NoError(t, json.Unmarshal(out, &info))
	require.Len(t, info.Streams, 1, "one video stream in %s", path)
	p := probed{codec: info.Streams[0].Codec}
	p.duration, _ = strconv.ParseFloat(info.Format.Duration, 64)
	p.frames, _ = strconv.Atoi(info.Streams[0].Packets)
	out, err = exec.Command(bin, "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=key_frame,pict_type",
		"-read_intervals", "%+#1", "-of", "csv=p=0", path).Output()
	require.NoError(t, err, "ffprobe frames %s", path)
	first := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	p.firstKey = strings.HasPrefix(first, "1,I")
	return p
}

type clipRig struct {
	sim   *simcam.Server
	relay *relay
	clips *streams.Clips
	sink  *clipSink
}

func newClipRig(t *testing.T, cams []simcam.Camera, pre, post time.Duration) *clipRig {
	t.Helper()
	need(t, "ffprobe")
	rig := &clipRig{sink: &clipSink{dir: t.TempDir()}}
	rig.sim = startSim(t, &simcam.Server{Cameras: cams})
	rig.relay = newRelay(t, nil)
	for _, c := range cams {
		require.NoError(t, rig.relay.m.AddCamera(streams.CameraConfig{ID: c.Path, URL: rig.sim.URL(c.Path), AlwaysOn: true}))
	}
	rig.clips = &streams.Clips{Manager: rig.relay.m, Dir: t.TempDir(), PreRoll: pre, PostRoll: post,
		LostAfter: 2 * time.Second, OnClip: rig.sink.on, Logger: quietLogger()}
	require.NoError(t, rig.clips.Initialize())
	t.Cleanup(rig.clips.Close)
	for _, c := range cams {
		require.NoError(t, rig.clips.Enable(c.Path, true))
	}
	return rig
}

func (rig *clipRig) waitPreRoll(t *testing.T, camera string, d time.Duration) {
	t.Helper()
	waitFor(t, 60*time.Second, "pre-roll of "+camera, func() bool { return rig.clips.Stats().PreRollPerCam[camera] >= d })
}

// A clip of an event starts at a keyframe at least the pre-roll before the event, lasts pre +
// post within one GOP, and ffprobe reads it as the camera's H.264 without re-encoding.
func TestClipAroundEvent(t *testing.T) {
	const gop = 2 * time.Second // hall-entrance: a keyframe every 2 s
	pre, post := 4*time.Second, 3*time.Second
	rig := newClipRig(t, []simcam.Camera{{Path: "hall-entrance", Clip: demoClip(t, "hall-entrance"), FPS: 25}}, pre, post)
	rig.waitPreRoll(t, "hall-entrance", pre+gop)

	at := time.Now()
	id, until, err := rig.clips.Record("hall-entrance", streams.ClipRequest{Ref: "ev-1", At: at})
	require.NoError(t, err)
	require.Equal(t, at.Add(post), until)
	clips := rig.sink.wait(t, 1)
	c := clips[0]
	require.Equal(t, id, c.ID)
	require.True(t, c.Complete, c.Note)
	require.Equal(t, "h264", c.Codec)
	require.Equal(t, []streams.ClipRef{{Ref: "ev-1", At: at}}, c.Refs)
	require.False(t, c.Start.After(at.Add(-pre)), "clip starts %s before the event, want at least %s", at.Sub(c.Start), pre)
	require.Less(t, at.Sub(c.Start), pre+gop+200*time.Millisecond, "clip starts at the last keyframe before the pre-roll")
	require.False(t, c.End.Before(at.Add(post)), "clip ends %s after the event, want at least %s", c.End.Sub(at), post)

	p := probeClip(t, c.Path)
	require.Equal(t, "h264", p.codec)
	require.True(t, p.firstKey, "first frame is a keyframe")
	want := (pre + post).Seconds()
	require.GreaterOrEqual(t, p.duration, want-0.05, "duration %.2f s", p.duration)
	require.Less(t, p.duration, want+gop.Seconds()+0.2, "duration %.2f s", p.duration)
	require.InDelta(t, c.End.Sub(c.Start).Seconds(), p.duration, 0.1, "the recorded start/end match the file")
	require.InDelta(t, p.duration*25, float64(p.frames), 3, "every frame of the span is in the clip")
	require.Equal(t, c.Bytes, fileSize(t, c.Path))
}

// Overlapping events on one camera share one clip that runs to the last one's post-roll.
func TestClipOverlappingEventsShareOneClip(t *testing.T) {
	pre, post := 2*time.Second, 3*time.Second
	rig := newClipRig(t, []simcam.Camera{{Path: "hall-entrance", Clip: demoClip(t, "hall-entrance"), FPS: 25}}, pre, post)
	rig.waitPreRoll(t, "hall-entrance", pre+2*time.Second)

	at1 := time.Now()
	id1, _, err := rig.clips.Record("hall-entrance", streams.ClipRequest{Ref: "ev-1", At: at1})
	require.NoError(t, err)
	time.Sleep(1500 * time.Millisecond) // the second event comes while the first clip is written
	at2 := time.Now()
	id2, until, err := rig.clips.Record("hall-entrance", streams.ClipRequest{Ref: "ev-2", At: at2})
	require.NoError(t, err)
	require.Equal(t, id1, id2)
	require.Equal(t, at2.Add(post), until)

	c := rig.sink.wait(t, 1)[0]
	require.Len(t, c.Refs, 2)
	require.False(t, c.End.Before(at2.Add(post)))
	p := probeClip(t, c.Path)
	require.True(t, p.firstKey)
	require.GreaterOrEqual(t, p.duration, at2.Add(post).Sub(at1.Add(-pre)).Seconds()-0.05)
	time.Sleep(500 * time.Millisecond)
	require.Len(t, rig.sink.all(), 1, "one clip for both events")
}

// A camera lost mid-clip gives a clip kept as far as it got, saying so; so does a recorder
// closed mid-clip (the gateway stopping).
func TestClipCutShort(t *testing.T) {
	pre, post := 2*time.Second, 30*time.Second
	cams := []simcam.Camera{
		{Path: "hall-entrance", Clip: demoClip(t, "hall-entrance"), FPS: 25},
		{Path: "waiting-area", Clip: demoClip(t, "waiting-area"), FPS: 25},
	}
	rig := newClipRig(t, cams, pre, post)
	rig.waitPreRoll(t, "hall-entrance", pre+2*time.Second)
	rig.waitPreRoll(t, "waiting-area", pre+4*time.Second)

	_, _, err := rig.clips.Record("hall-entrance", streams.ClipRequest{Ref: "ev-lost"})
	require.NoError(t, err)
	time.Sleep(2 * time.Second)
	rig.sim.SetPaused("hall-entrance", true) // frozen encoder: no more packets
	c := rig.sink.wait(t, 1)[0]
	require.False(t, c.Complete)
	require.Contains(t, c.Note, "camera lost")
	p := probeClip(t, c.Path)
	require.True(t, p.firstKey)
	require.Greater(t, p.duration, pre.Seconds())

	_, _, err = rig.clips.Record("waiting-area", streams.ClipRequest{Ref: "ev-stop"})
	require.NoError(t, err)
	time.Sleep(2 * time.Second)
	rig.clips.Close()
	clips := rig.sink.wait(t, 2)
	c = clips[1]
	require.Equal(t, "waiting-area", c.Camera)
	require.False(t, c.Complete)
	require.Contains(t, c.Note, "gateway stopped")
	p = probeClip(t, c.Path)
	require.True(t, p.firstKey)
	require.Greater(t, p.duration, pre.Seconds())
}

// A clip left half-written (its process killed) is cut back to its last complete fragment at
// the next start and handed on as incomplete; a clip OnClip could not store is offered again;
// a stray file goes to quarantine.
func TestClipRecoveredAfterRestart(t *testing.T) {
	pre, post := 2*time.Second, 20*time.Second
	rig := newClipRig(t, []simcam.Camera{{Path: "hall-entrance", Clip: demoClip(t, "hall-entrance"), FPS: 25}}, pre, post)
	rig.waitPreRoll(t, "hall-entrance", pre+2*time.Second)
	_, _, err := rig.clips.Record("hall-entrance", streams.ClipRequest{Ref: "ev-kill"})
	require.NoError(t, err)
	// copy the clip while it is being written, as a kill -9 would leave it, cut mid-fragment
	var part, journal string
	waitFor(t, 30*time.Second, "a clip file with fragments", func() bool {
		m, _ := filepath.Glob(filepath.Join(rig.clips.Dir, "*.mp4.part"))
		if len(m) == 0 {
			return false
		}
		part = m[0]
		journal = strings.TrimSuffix(part, ".mp4.part") + ".json"
		return fileSize(t, part) > 300_000
	})
	b, err := os.ReadFile(part)
	require.NoError(t, err)
	j, err := os.ReadFile(journal)
	require.NoError(t, err)

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.Base(part)), b[:len(b)-1234], 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.Base(journal)), j, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "stray.mp4.part"), []byte("not a clip"), 0o600))

	sink := &clipSink{dir: t.TempDir(), fail: true}
	restarted := &streams.Clips{Manager: rig.relay.m, Dir: dir, OnClip: sink.on, Logger: quietLogger()}
	require.NoError(t, restarted.Initialize())
	require.Empty(t, sink.all(), "storing failed: nothing handed on")
	require.FileExists(t, filepath.Join(dir, filepath.Base(part)), "kept for the next start")
	require.FileExists(t, filepath.Join(dir, "quarantine", "stray.mp4.part"))

	sink.fail = false
	restarted.Recover()
	c := sink.wait(t, 1)[0]
	require.False(t, c.Complete)
	require.Contains(t, c.Note, "gateway stopped")
	require.Equal(t, []streams.ClipRef{{Ref: "ev-kill", At: c.Refs[0].At}}, c.Refs)
	p := probeClip(t, c.Path)
	require.True(t, p.firstKey)
	require.InDelta(t, c.End.Sub(c.Start).Seconds(), p.duration, 0.1)
	require.NoFileExists(t, filepath.Join(dir, filepath.Base(part)), "removed once stored")
	restarted.Close()
}

// The pre-roll of a camera stays within its byte bound, starting at a keyframe.
func TestPreRollBounded(t *testing.T) {
	rig := newClipRig(t, []simcam.Camera{{Path: "hall-entrance", Clip: demoClip(t, "hall-entrance"), FPS: 25}}, 10*time.Second, time.Second)
	rig.waitPreRoll(t, "hall-entrance", 12*time.Second)
	st := rig.clips.Stats()
	// 200 kbit/s for 10 s plus the margin: well under the 4 MiB default
	require.Less(t, st.PreRollBytes, int64(1<<20))
	require.Greater(t, st.PreRollBytes, int64(100_000))
	require.LessOrEqual(t, st.PreRollPerCam["hall-entrance"], 10*time.Second+5*time.Second+2*time.Second)

	// 256 KiB hold about 10 s of this 200 kbit/s camera, less than the 15 s it would keep
	small := &streams.Clips{Manager: rig.relay.m, Dir: t.TempDir(), MaxCameraBytes: 256 << 10, MaxTotalBytes: 300 << 10, Logger: quietLogger()}
	require.NoError(t, small.Initialize())
	t.Cleanup(small.Close)
	require.NoError(t, small.Enable("hall-entrance", true))
	time.Sleep(16 * time.Second)
	st = small.Stats()
	require.Equal(t, int64(256<<10), st.ArenaBytes)
	require.LessOrEqual(t, st.PreRollBytes, int64(256<<10))
	require.Less(t, st.PreRollPerCam["hall-entrance"], 13*time.Second, "fewer seconds kept under a tight bound")
	require.Greater(t, st.PreRollPerCam["hall-entrance"], 5*time.Second)
	// the total bound: nothing is left for a second camera
	require.NoError(t, rig.relay.m.AddCamera(streams.CameraConfig{ID: "hall-2", URL: rig.sim.URL("hall-entrance")}))
	err := small.Enable("hall-2", true)
	require.Equal(t, "preroll_memory_full", errs.CodeOf(err), "%v", err)
}

func fileSize(t *testing.T, p string) int64 {
	st, err := os.Stat(p)
	require.NoError(t, err)
	return st.Size()
}

// genH265 makes (once) an H.265 Annex-B clip with ffmpeg's libx265: 10 s, 25 fps, a keyframe
// every 2 s, no B-frames (as IP cameras send it).
func genH265(t *testing.T) []byte {
	t.Helper()
	bin := need(t, "ffmpeg")
	if out, _ := exec.Command(bin, "-hide_banner", "-encoders").Output(); !strings.Contains(string(out), "libx265") {
		if os.Getenv("CI") == "true" {
			t.Fatal("ffmpeg without libx265")
		}
		t.Skip("ffmpeg without libx265")
	}
	p := filepath.Join(cacheDir(t), "testsrc2-360p-h265.hevc")
	if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
		return b
	}
	tmp := p + ".tmp.hevc"
	out, err := exec.Command(bin, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
		"-t", "10", "-c:v", "libx265", "-preset", "ultrafast", "-b:v", "300k",
		"-x265-params", "keyint=50:min-keyint=50:scenecut=0:bframes=0:log-level=error", "-f", "hevc", tmp).CombinedOutput()
	require.NoError(t, err, string(out))
	require.NoError(t, os.Rename(tmp, p))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return b
}

// An H.265 camera (which browsers cannot play) is pulled for its clips: the clip is the
// camera's H.265 remuxed, read by ffprobe, starting at a keyframe the pre-roll before.
func TestClipH265(t *testing.T) {
	clip := genH265(t)
	need(t, "ffprobe")
	pre, post := 3*time.Second, 3*time.Second
	rig := &clipRig{sink: &clipSink{dir: t.TempDir()}}
	rig.sim = startSim(t, &simcam.Server{Cameras: []simcam.Camera{{Path: "hevc", Codec: "H265", Clip: clip, FPS: 25}}})
	rig.relay = newRelay(t, nil)
	require.NoError(t, rig.relay.m.AddCamera(streams.CameraConfig{ID: "hevc", URL: rig.sim.URL("hevc"), AlwaysOn: true, H265: true}))
	rig.clips = &streams.Clips{Manager: rig.relay.m, Dir: t.TempDir(), PreRoll: pre, PostRoll: post, OnClip: rig.sink.on, Logger: quietLogger()}
	require.NoError(t, rig.clips.Initialize())
	t.Cleanup(rig.clips.Close)
	require.NoError(t, rig.clips.Enable("hevc", true))
	rig.waitPreRoll(t, "hevc", pre+2*time.Second)

	st := rig.relay.m.Cameras()[0]
	require.Equal(t, "H265", st.Codec)
	require.NotNil(t, st.Problem, "still not playable in a browser")

	at := time.Now()
	_, _, err := rig.clips.Record("hevc", streams.ClipRequest{Ref: "ev-h265", At: at})
	require.NoError(t, err)
	c := rig.sink.wait(t, 1)[0]
	require.True(t, c.Complete, c.Note)
	require.Equal(t, "h265", c.Codec)
	require.False(t, c.Start.After(at.Add(-pre)))
	p := probeClip(t, c.Path)
	t.Logf("start %s before, end %s after, duration %.2f s, frames %d", at.Sub(c.Start), c.End.Sub(at), p.duration, p.frames)
	require.Equal(t, "hevc", p.codec)
	require.True(t, p.firstKey, "first frame is a keyframe")
	require.GreaterOrEqual(t, p.duration, (pre+post).Seconds()-0.05)
	require.Less(t, p.duration, (pre+post).Seconds()+2.2)
	// every frame decodes: ffmpeg reads the whole clip without an error
	out, err := exec.Command(need(t, "ffmpeg"), "-v", "error", "-i", c.Path, "-f", "null", "-").CombinedOutput()
	require.NoError(t, err)
	require.Empty(t, strings.TrimSpace(string(out)), "decoding the clip reports no error")
}
