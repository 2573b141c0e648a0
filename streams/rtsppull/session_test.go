package rtsppull_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"
	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/streams/rtsppull"
	"github.com/offsite-gw/offsite/streams/simcam"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startCams serves the demo's hall camera (H.264, SPS/PPS only in the SDP), its service window
// (with G.711 audio) and an H.265-only camera, behind a password if user is set.
func startCams(t *testing.T, user, pass string) *simcam.Server {
	t.Helper()
	demo := simcam.DemoCameras()
	s := &simcam.Server{
		Username: user, Password: pass, Logger: quiet(),
		Cameras: []simcam.Camera{demo[0], demo[1], {Path: "hevc", Codec: "H265"}},
	}
	require.NoError(t, s.Initialize())
	t.Cleanup(s.Close)
	return s
}

func types(au [][]byte) []h264.NALUType {
	out := make([]h264.NALUType, len(au))
	for i, n := range au {
		out[i] = h264.NALUType(n[0] & 0x1f)
	}
	return out
}

func TestSessionDeliversPacketsAndAccessUnits(t *testing.T) {
	cams := startCams(t, "", "")
	var (
		mu      sync.Mutex
		tracks  *rtsppull.Tracks
		packets int
		aus     [][]h264.NALUType
		lastPTS int64
	)
	gotIDR := make(chan struct{})
	var once sync.Once
	s := &rtsppull.Session{
		URL:    cams.URL(simcam.DemoCameras()[0].Path),
		Logger: quiet(),
		OnTracks: func(tr rtsppull.Tracks) {
			mu.Lock()
			defer mu.Unlock()
			require.Zero(t, packets, "tracks come before the first packet")
			tracks = &tr
		},
		OnVideoRTP: func(pkt *rtp.Packet, _ int64, _ bool, _ time.Time) {
			mu.Lock()
			packets++
			mu.Unlock()
		},
		OnAccessUnit: func(au [][]byte, pts int64, _ time.Time) {
			mu.Lock()
			defer mu.Unlock()
			if len(aus) > 0 {
				require.Greater(t, pts, lastPTS, "PTS grows")
			}
			lastPTS = pts
			aus = append(aus, types(au))
			if h264.IsRandomAccess(au) {
				once.Do(func() { close(gotIDR) })
			}
		},
	}
	require.NoError(t, s.Initialize(context.Background()))
	defer s.Close()
	select {
	case <-gotIDR:
	case <-time.After(10 * time.Second):
		t.Fatal("no keyframe within 10 s")
	}
	mu.Lock()
	defer mu.Unlock()
	require.NotNil(t, tracks)
	require.NotEmpty(t, tracks.SPS)
	require.NotEmpty(t, tracks.PPS)
	require.Positive(t, tracks.Width)
	require.Positive(t, tracks.Height)
	require.Nil(t, tracks.Audio, "audio was not asked for")
	require.Positive(t, packets)
	require.EqualValues(t, packets, s.VideoPackets())
	require.False(t, s.LastPacket().IsZero())

	// The camera sends SPS/PPS only in the SDP; the first IDR unit must carry them in front.
	for _, au := range aus {
		idr := -1
		for i, typ := range au {
			if typ == h264.NALUTypeIDR {
				idr = i
				break
			}
		}
		if idr < 0 {
			continue
		}
		require.GreaterOrEqual(t, idr, 2)
		require.Equal(t, []h264.NALUType{h264.NALUTypeSPS, h264.NALUTypePPS}, au[:2], "SPS/PPS before the IDR: %v", au)
		break
	}
}

func TestSessionAudio(t *testing.T) {
	cams := startCams(t, "", "")
	got := make(chan int64, 100)
	var tracks rtsppull.Tracks
	s := &rtsppull.Session{
		URL:      cams.URL(simcam.DemoCameras()[1].Path),
		Audio:    true,
		Logger:   quiet(),
		OnTracks: func(tr rtsppull.Tracks) { tracks = tr },
		OnAudioRTP: func(_ *rtp.Packet, pts int64, _ time.Time) {
			select {
			case got <- pts:
			default:
			}
		},
	}
	require.NoError(t, s.Initialize(context.Background()))
	defer s.Close()
	require.NotNil(t, tracks.Audio)
	require.Equal(t, 8000, tracks.Audio.SampleRate)
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no audio within 10 s")
	}
}

func TestSessionH265IsUnsupported(t *testing.T) {
	cams := startCams(t, "", "")
	s := &rtsppull.Session{URL: cams.URL("hevc"), Logger: quiet()}
	err := s.Initialize(context.Background())
	require.ErrorIs(t, err, rtsppull.ErrUnsupportedCodec)
	var ce *rtsppull.CodecError
	require.True(t, errors.As(err, &ce))
	require.Equal(t, "H265", ce.Codec)
	require.Contains(t, err.Error(), "H.265")
}

func TestSessionAuth(t *testing.T) {
	cams := startCams(t, "admin", "right")
	url := cams.URL(simcam.DemoCameras()[0].Path)

	s := &rtsppull.Session{URL: url, Username: "admin", Password: "wrong", Logger: quiet()}
	err := s.Initialize(context.Background())
	require.ErrorIs(t, err, rtsppull.ErrAuth)
	require.Contains(t, err.Error(), "401", "the gateway tells auth failures by the status code")

	s = &rtsppull.Session{URL: url, Username: "admin", Password: "right", Logger: quiet()}
	require.NoError(t, s.Initialize(context.Background()))
	s.Close()
}

func TestSessionEndsWithContext(t *testing.T) {
	cams := startCams(t, "", "")
	ctx, cancel := context.WithCancel(context.Background())
	s := &rtsppull.Session{URL: cams.URL(simcam.DemoCameras()[0].Path), Logger: quiet()}
	require.NoError(t, s.Initialize(ctx))
	defer s.Close()
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	cancel()
	select {
	case err := <-done:
		require.Error(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after the context ended")
	}
}

func TestValidate(t *testing.T) {
	require.NoError(t, rtsppull.Validate("rtsp://cam.local:554/main", ""))
	require.NoError(t, rtsppull.Validate("rtsps://cam.local/main", "UDP"))
	require.Error(t, rtsppull.Validate("http://cam.local/main", ""))
	require.Error(t, rtsppull.Validate("rtsp://cam.local/main", "sctp"))
	require.Error(t, rtsppull.Validate("::", ""))
}
