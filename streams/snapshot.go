package streams

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/offsite-gw/offsite/internal/errs"
)

// Snapshot produces a camera's current picture as JPEG without cgo and without transcoding in
// the gateway: it hands the hub's cached GOP (last keyframe with SPS/PPS in-band, then the
// frames after it) as an Annex-B stream to an ffmpeg process on stdin, which decodes it and
// writes the last frame as one JPEG to stdout. Pictures are cached per camera for CacheFor, so
// a wall of tiles refreshing at once runs ffmpeg once per camera. Without ffmpeg, snapshots
// fail with a clear 503.
type Snapshot struct {
	Manager *Manager
	// FFmpegPath is the ffmpeg binary (default: "ffmpeg" from PATH).
	FFmpegPath string
	// CacheFor is how long a picture is reused (default 1 s).
	CacheFor time.Duration
	// Timeout bounds waiting for the camera and running ffmpeg (default 8 s).
	Timeout time.Duration
	// MaxFrames bounds how many frames of the GOP are decoded (default 250, 10 s at 25 fps).
	MaxFrames int

	mu    sync.Mutex
	cache map[string]*snapEntry
}

type snapEntry struct {
	mu   sync.Mutex
	jpeg []byte
	at   time.Time
}

// Initialize prepares the snapshotter; a missing ffmpeg is reported per request, not here.
func (s *Snapshot) Initialize() error {
	if s.Manager == nil {
		return errors.New("snapshot: no manager")
	}
	if s.FFmpegPath == "" {
		s.FFmpegPath = "ffmpeg"
	}
	if s.CacheFor <= 0 {
		s.CacheFor = time.Second
	}
	if s.Timeout <= 0 {
		s.Timeout = 8 * time.Second
	}
	if s.MaxFrames <= 0 {
		s.MaxFrames = 250
	}
	s.cache = make(map[string]*snapEntry)
	return nil
}

// Close does nothing; it exists for symmetry.
func (s *Snapshot) Close() {}

// JPEG returns the camera's current picture and when it was taken.
func (s *Snapshot) JPEG(ctx context.Context, cameraID string) ([]byte, time.Time, error) {
	cam, err := s.Manager.lookup(cameraID)
	if err != nil {
		return nil, time.Time{}, err
	}
	bin, err := exec.LookPath(s.FFmpegPath)
	if err != nil {
		return nil, time.Time{}, errs.Wrap(errs.KindUnavailable, "snapshot_unavailable", err,
			"snapshots need ffmpeg on the gateway host (apt-get install ffmpeg, or set streams.snapshot.ffmpeg)")
	}
	s.mu.Lock()
	e := s.cache[cameraID]
	if e == nil {
		e = &snapEntry{}
		s.cache[cameraID] = e
	}
	s.mu.Unlock()

	e.mu.Lock() // one ffmpeg per camera at a time; others wait and share its picture
	defer e.mu.Unlock()
	if e.jpeg != nil && time.Since(e.at) < s.CacheFor {
		return e.jpeg, e.at, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()

	if _, err := cam.WaitFormat(ctx); err != nil && errors.Is(err, ErrCodec) && !errors.Is(err, ErrBFrames) {
		return nil, time.Time{}, codecError(err)
	}
	var gop []*Unit
	for {
		gop = cam.Hub().GOP()
		if len(gop) > 0 {
			break
		}
		select {
		case <-ctx.Done():
			st := cam.Status()
			return nil, time.Time{}, errs.E(errs.KindUnavailable, "camera_offline",
				"no picture from camera %s (state %s%s)", cameraID, st.State, reasonSuffix(st.Reason))
		case <-time.After(100 * time.Millisecond):
		}
	}
	if len(gop) > s.MaxFrames {
		gop = gop[:s.MaxFrames]
	}
	var in []byte
	for _, u := range gop {
		b, err := h264.AnnexB(u.NALUs).Marshal()
		if err != nil {
			return nil, time.Time{}, errs.Wrap(errs.KindUnavailable, "snapshot_failed", err, "camera %s's picture cannot be written", cameraID)
		}
		in = append(in, b...)
	}
	last := len(gop) - 1
	cmd := exec.CommandContext(ctx, bin, "-hide_banner", "-loglevel", "error", "-nostdin",
		"-f", "h264", "-i", "pipe:0",
		"-vf", "select=gte(n\\,"+strconv.Itoa(last)+")", "-frames:v", "1",
		"-c:v", "mjpeg", "-q:v", "4", "-f", "image2pipe", "pipe:1")
	cmd.Stdin = bytes.NewReader(in)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil || out.Len() == 0 {
		return nil, time.Time{}, errs.Wrap(errs.KindUnavailable, "snapshot_failed", fmt.Errorf("%v: %s", err, bytes.TrimSpace(stderr.Bytes())),
			"ffmpeg could not decode camera %s's picture", cameraID)
	}
	e.jpeg, e.at = out.Bytes(), gop[last].Received
	return e.jpeg, e.at, nil
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}
