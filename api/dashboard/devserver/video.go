package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// video plays an ffmpeg-generated H.264 test pattern to every camera's WHEP viewers. A camera
// marked down keeps its sessions but sends no frames, as the real relay does.
type video struct {
	st       *state
	api      *webrtc.API
	mu       sync.Mutex
	tracks   map[string]*webrtc.TrackLocalStaticSample
	sessions map[string]*webrtc.PeerConnection
	log      *slog.Logger
}

func newVideo(ctx context.Context, st *state, log *slog.Logger) (*video, error) {
	v := &video{st: st, tracks: map[string]*webrtc.TrackLocalStaticSample{}, sessions: map[string]*webrtc.PeerConnection{}, log: log}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4})
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return v, err
	}
	v.api = webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me))
	aus, err := testPattern(ctx)
	if err != nil {
		return v, err
	}
	for i, d := range st.devices {
		if d.Kind != "camera" {
			continue
		}
		tr, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, "video", d.ID)
		if err != nil {
			return v, err
		}
		v.tracks[d.ID] = tr
		go v.pump(ctx, d.ID, tr, aus, (i*7)%len(aus))
	}
	return v, nil
}

// pump writes the access units at 15 fps, from an IDR so a late viewer starts cleanly.
func (v *video) pump(ctx context.Context, id string, tr *webrtc.TrackLocalStaticSample, aus [][]byte, start int) {
	t := time.NewTicker(time.Second / 15)
	defer t.Stop()
	i := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		v.st.mu.Lock()
		down := v.st.camDown[id]
		v.st.mu.Unlock()
		if down {
			i = 0 // restart at the IDR when the camera comes back
			continue
		}
		_ = tr.WriteSample(media.Sample{Data: aus[i%len(aus)], Duration: time.Second / 15})
		i++
	}
}

func (v *video) serveWHEP(w http.ResponseWriter, r *http.Request) {
	if v == nil || v.api == nil || len(v.tracks) == 0 {
		writeErr(w, 503, "video_unavailable", "the devserver has no video (ffmpeg with libx264 is needed)")
		return
	}
	tr := v.tracks[r.PathValue("id")]
	if tr == nil {
		writeErr(w, 404, "camera_not_found", "没有这个摄像机")
		return
	}
	offer, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if !bytes.Contains(offer, []byte("H264")) {
		writeErr(w, 400, "codec_unsupported", "the offer has no H.264 video; this browser cannot play the gateway's cameras")
		return
	}
	pc, err := v.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		writeErr(w, 500, "internal", err.Error())
		return
	}
	if _, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		_ = pc.Close()
		writeErr(w, 500, "internal", err.Error())
		return
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		_ = pc.Close()
		writeErr(w, 400, "bad_offer", err.Error())
		return
	}
	ans, err := pc.CreateAnswer(nil)
	if err == nil {
		gathered := webrtc.GatheringCompletePromise(pc)
		err = pc.SetLocalDescription(ans)
		<-gathered
	}
	if err != nil {
		_ = pc.Close()
		writeErr(w, 400, "bad_offer", err.Error())
		return
	}
	sid := newID()
	v.mu.Lock()
	v.sessions[sid] = pc
	v.mu.Unlock()
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed {
			v.closeSession(sid)
		}
	})
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", "/api/v1/whep/sessions/"+sid)
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, pc.LocalDescription().SDP)
}

func (v *video) closeSession(sid string) {
	v.mu.Lock()
	pc := v.sessions[sid]
	delete(v.sessions, sid)
	v.mu.Unlock()
	if pc != nil {
		_ = pc.Close()
	}
}

// testPattern makes 4 s of 640×360 H.264 (baseline, an IDR every second) with ffmpeg and
// splits it into access units at the access unit delimiters.
func testPattern(ctx context.Context) ([][]byte, error) {
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		return nil, errors.New("ffmpeg not found")
	}
	dir, err := os.MkdirTemp("", "devserver-video")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "p.h264")
	cmd := exec.CommandContext(ctx, ff, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=15", "-t", "4",
		"-c:v", "libx264", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", "15", "-bf", "0", "-tune", "zerolatency",
		"-x264-params", "aud=1:repeat-headers=1", "-f", "h264", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ffmpeg: %w: %s", err, b)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	var aus [][]byte
	startAU := -1
	for i := 0; i+4 < len(raw); i++ {
		if raw[i] == 0 && raw[i+1] == 0 && raw[i+2] == 1 && raw[i+3]&0x1f == 9 {
			s := i
			if s > 0 && raw[s-1] == 0 {
				s--
			}
			if startAU >= 0 {
				aus = append(aus, raw[startAU:s])
			}
			startAU = s
		}
	}
	if startAU >= 0 {
		aus = append(aus, raw[startAU:])
	}
	if len(aus) == 0 {
		return nil, errors.New("no access units in the test pattern")
	}
	return aus, nil
}
