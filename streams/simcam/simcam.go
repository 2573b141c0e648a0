// Package simcam simulates RTSP cameras for the demo and the tests: a gortsplib server that
// plays H.264 Annex-B clips in a loop at their frame rate, with SPS/PPS only in the SDP (as many
// real cameras do), optional G.711 audio, optional authentication, and outages on demand or on
// a schedule.
package simcam

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/auth"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"

	"github.com/offsite-gw/offsite/streams/h264file"
)

// Camera is one simulated camera.
type Camera struct {
	Path string // URL path, e.g. "hall-entrance"
	// Clip is an H.264 (or, with Codec "H265", H.265) Annex-B elementary stream, played in a
	// loop. Nil with Codec "H265" describes an H.265 stream that sends nothing.
	Clip  []byte
	FPS   int    // default 25
	Codec string // "H264" (default) or "H265"
	Audio bool   // add a G.711 µ-law track (a quiet tone)
	// OutageEvery / OutageFor: the camera "reboots" (drops its sessions and refuses new ones)
	// for OutageFor every OutageEvery. Zero: never.
	OutageEvery time.Duration
	OutageFor   time.Duration
}

// Server serves simulated cameras.
type Server struct {
	Listen   string // default "127.0.0.1:0"
	Username string // empty: no authentication
	Password string
	// AuthMethods restricts the accepted methods ("basic", "digest"); default both.
	AuthMethods []string
	// UDPRTPListen / UDPRTCPListen enable the UDP transport (an even port and the next one).
	UDPRTPListen  string
	UDPRTCPListen string
	Cameras       []Camera
	Logger        *slog.Logger

	server *gortsplib.Server
	ln     net.Listener
	mu     sync.Mutex
	cams   map[string]*cam
	done   chan struct{}
	wg     sync.WaitGroup
}

type cam struct {
	cfg    Camera
	aus    [][][]byte
	vps    []byte // H.265
	sps    []byte
	pps    []byte
	desc   *description.Session
	stream *gortsplib.ServerStream
	down   bool
	paused bool
}

// Initialize parses the clips and starts the server and the players.
func (s *Server) Initialize() error {
	if s.Listen == "" {
		s.Listen = "127.0.0.1:0"
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	s.cams = make(map[string]*cam)
	s.done = make(chan struct{})
	for _, c := range s.Cameras {
		if c.FPS <= 0 {
			c.FPS = 25
		}
		if c.Codec == "" {
			c.Codec = "H264"
		}
		k := &cam{cfg: c}
		switch c.Codec {
		case "H264":
			if err := k.parse(); err != nil {
				return fmt.Errorf("simcam %s: %w", c.Path, err)
			}
			k.desc = &description.Session{Medias: []*description.Media{{
				Type:    description.MediaTypeVideo,
				Formats: []format.Format{&format.H264{PayloadTyp: 96, SPS: k.sps, PPS: k.pps, PacketizationMode: 1}},
			}}}
			if c.Audio {
				k.desc.Medias = append(k.desc.Medias, &description.Media{
					Type:    description.MediaTypeAudio,
					Formats: []format.Format{&format.G711{PayloadTyp: 0, MULaw: true, SampleRate: 8000, ChannelCount: 1}},
				})
			}
		case "H265":
			if c.Clip != nil {
				if err := k.parseH265(); err != nil {
					return fmt.Errorf("simcam %s: %w", c.Path, err)
				}
			}
			k.desc = &description.Session{Medias: []*description.Media{{
				Type:    description.MediaTypeVideo,
				Formats: []format.Format{&format.H265{PayloadTyp: 96, VPS: k.vps, SPS: k.sps, PPS: k.pps}},
			}}}
		default:
			return fmt.Errorf("simcam %s: codec %q", c.Path, c.Codec)
		}
		s.cams[strings.Trim(c.Path, "/")] = k
	}
	var methods []auth.VerifyMethod
	for _, m := range s.AuthMethods {
		switch m {
		case "basic":
			methods = append(methods, auth.VerifyMethodBasic)
		case "digest":
			methods = append(methods, auth.VerifyMethodDigestMD5)
		}
	}
	s.server = &gortsplib.Server{
		Handler:     s,
		RTSPAddress: s.Listen,
		AuthMethods: methods,
		Listen: func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, address)
			s.ln = ln
			return ln, err
		},
	}
	if s.UDPRTPListen != "" {
		s.server.UDPRTPAddress, s.server.UDPRTCPAddress = s.UDPRTPListen, s.UDPRTCPListen
	}
	if err := s.server.Start(); err != nil {
		return err
	}
	for _, k := range s.cams {
		if err := s.openStream(k); err != nil {
			s.server.Close()
			return err
		}
		s.wg.Add(1)
		go s.play(k)
	}
	return nil
}

// Addr is the server's address (host:port).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL returns the camera's rtsp:// URL (without credentials).
func (s *Server) URL(path string) string { return "rtsp://" + s.Addr() + "/" + strings.Trim(path, "/") }

// Close stops everything.
func (s *Server) Close() {
	close(s.done)
	s.wg.Wait()
	s.server.Close()
	s.mu.Lock()
	for _, k := range s.cams {
		if k.stream != nil {
			k.stream.Close()
		}
	}
	s.mu.Unlock()
}

// SetDown takes a camera down (as in a reboot: sessions dropped, new ones refused) or back up.
func (s *Server) SetDown(path string, down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.cams[strings.Trim(path, "/")]
	if k == nil || k.down == down {
		return
	}
	k.down = down
	if down {
		k.stream.Close()
		k.stream = nil
	} else {
		_ = s.openStreamLocked(k)
	}
}

// SetPaused stops (or resumes) a camera's packets while keeping its sessions: a frozen encoder.
func (s *Server) SetPaused(path string, paused bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.cams[strings.Trim(path, "/")]; k != nil {
		k.paused = paused
	}
}

func (s *Server) openStream(k *cam) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.openStreamLocked(k)
}

func (s *Server) openStreamLocked(k *cam) error {
	k.stream = &gortsplib.ServerStream{Server: s.server, Desc: k.desc}
	return k.stream.Initialize()
}

// parse splits the clip into access units and moves SPS/PPS out of band.
func (k *cam) parse() error {
	aus, err := h264file.AccessUnits(k.cfg.Clip)
	if err != nil {
		return err
	}
	for _, au := range aus {
		var keep [][]byte
		for _, n := range au {
			switch h264.NALUType(n[0] & 0x1f) {
			case h264.NALUTypeSPS:
				if k.sps == nil {
					k.sps = n
				}
			case h264.NALUTypePPS:
				if k.pps == nil {
					k.pps = n
				}
			case h264.NALUTypeAccessUnitDelimiter:
			default:
				keep = append(keep, n)
			}
		}
		if len(keep) > 0 {
			k.aus = append(k.aus, keep)
		}
	}
	if len(k.aus) == 0 || k.sps == nil || k.pps == nil {
		return errors.New("clip has no access units or no SPS/PPS")
	}
	for len(k.aus) > 0 && !h264.IsRandomAccess(k.aus[0]) {
		k.aus = k.aus[1:]
	}
	if len(k.aus) == 0 {
		return errors.New("clip has no IDR frame")
	}
	return nil
}

// play writes the clip in a loop at its frame rate, with continuous timestamps.
func (s *Server) play(k *cam) {
	defer s.wg.Done()
	if k.aus == nil {
		<-s.done
		return
	}
	var enc interface {
		Encode([][]byte) ([]*rtp.Packet, error)
	}
	if k.cfg.Codec == "H265" {
		e := &rtph265.Encoder{PayloadType: 96, PayloadMaxSize: 1400}
		_ = e.Init()
		enc = e
	} else {
		e := &rtph264.Encoder{PayloadType: 96, PayloadMaxSize: 1400, PacketizationMode: 1}
		_ = e.Init()
		enc = e
	}
	frame := time.Second / time.Duration(k.cfg.FPS)
	ts := uint32(0)
	var audioTS uint32
	audioSeq := uint16(0)
	tone := toneFrame()
	start := time.Now()
	nextOutage := time.Time{}
	if k.cfg.OutageEvery > 0 {
		nextOutage = start.Add(k.cfg.OutageEvery)
	}
	var downUntil time.Time
	ticker := time.NewTicker(frame)
	defer ticker.Stop()
	i := 0
	for {
		select {
		case <-s.done:
			return
		case now := <-ticker.C:
			if !nextOutage.IsZero() && now.After(nextOutage) {
				s.Logger.Info("simcam outage", "camera", k.cfg.Path, "for", k.cfg.OutageFor)
				s.SetDown(k.cfg.Path, true)
				downUntil = now.Add(k.cfg.OutageFor)
				nextOutage = now.Add(k.cfg.OutageEvery)
			}
			if !downUntil.IsZero() && now.After(downUntil) {
				s.SetDown(k.cfg.Path, false)
				downUntil = time.Time{}
				i = 0 // a rebooted camera starts with a keyframe
			}
			ts += uint32(90000 / k.cfg.FPS)
			audioTS += uint32(8000 / k.cfg.FPS)
			s.mu.Lock()
			st, paused := k.stream, k.paused
			s.mu.Unlock()
			au := k.aus[i]
			i = (i + 1) % len(k.aus)
			if st == nil || paused {
				continue
			}
			pkts, err := enc.Encode(au)
			if err != nil {
				continue
			}
			for _, p := range pkts {
				p.Timestamp = ts
				_ = st.WritePacketRTP(k.desc.Medias[0], p)
			}
			if k.cfg.Audio {
				audioSeq++
				_ = st.WritePacketRTP(k.desc.Medias[1], &rtp.Packet{
					Header:  rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: audioSeq, Timestamp: audioTS, SSRC: 0x5eed, Marker: false},
					Payload: tone[:8000/k.cfg.FPS],
				})
			}
		}
	}
}

// toneFrame is 1 s of a quiet 440 Hz tone in G.711 µ-law.
func toneFrame() []byte {
	out := make([]byte, 8000)
	for i := range out {
		v := int16(800 * math.Sin(2*math.Pi*440*float64(i)/8000))
		out[i] = linearToMULaw(v)
	}
	return out
}

func linearToMULaw(sample int16) byte {
	const bias, clip = 0x84, 32635
	sign := byte(0)
	s := int(sample)
	if s < 0 {
		s, sign = -s, 0x80
	}
	if s > clip {
		s = clip
	}
	s += bias
	exp := 7
	for mask := 0x4000; s&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (s >> (exp + 3)) & 0x0f
	return ^(sign | byte(exp<<4) | byte(mant))
}

func (s *Server) lookup(path string) (*cam, *gortsplib.ServerStream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := strings.Trim(path, "/")
	k := s.cams[p]
	if k == nil {
		if i := strings.Index(p, "/"); i > 0 {
			k = s.cams[p[:i]]
		}
	}
	if k == nil || k.down {
		return k, nil
	}
	return k, k.stream
}

func (s *Server) checkAuth(conn *gortsplib.ServerConn, req *base.Request) bool {
	return s.Username == "" || conn.VerifyCredentials(req, s.Username, s.Password)
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (s *Server) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if !s.checkAuth(ctx.Conn, ctx.Request) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	k, st := s.lookup(ctx.Path)
	if k == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	if st == nil {
		return &base.Response{StatusCode: base.StatusServiceUnavailable}, nil, errors.New("camera is rebooting")
	}
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (s *Server) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if !s.checkAuth(ctx.Conn, ctx.Request) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	k, st := s.lookup(ctx.Path)
	if k == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	if st == nil {
		return &base.Response{StatusCode: base.StatusServiceUnavailable}, nil, errors.New("camera is rebooting")
	}
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (s *Server) OnPlay(_ *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}
