// Package rtsppull is one RTSP pull of a camera's H.264 video (and, if asked, its G.711
// audio), shared by the relay (package streams) and the analytics worker: connect, describe,
// set up, play, depacketize, and hand RTP packets and access units with their timestamps to
// callbacks. It owns no reconnecting, no state machine and no fan-out; its callers do.
//
// It imports only gortsplib, mediacommon, pion/rtp and the standard library, because the
// analytics worker links it and must stay free of WebRTC and databases.
package rtsppull

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"
)

// ErrUnsupportedCodec is wrapped by a *CodecError: the camera's video is not H.264.
var ErrUnsupportedCodec = errors.New("unsupported codec")

// ErrAuth is wrapped by errors of a camera that refused the credentials (RTSP 401).
var ErrAuth = errors.New("authentication failed")

// CodecError says which codec the camera sends instead of H.264 ("H265", or "none" for a
// stream without video), so that a caller can show it; it wraps ErrUnsupportedCodec.
type CodecError struct {
	Codec string
}

func (e *CodecError) Error() string {
	switch e.Codec {
	case "none":
		return ErrUnsupportedCodec.Error() + ": the camera offers no video track"
	case "H265":
		return ErrUnsupportedCodec.Error() + ": the camera sends H.265; choose the H.264 sub-stream (or set the camera's encoder to H.264)"
	default:
		return ErrUnsupportedCodec.Error() + ": the camera sends " + e.Codec + "; set the camera's encoder to H.264"
	}
}

func (e *CodecError) Unwrap() error { return ErrUnsupportedCodec }

// Tracks is what the camera sends, known after SETUP and before the first packet.
type Tracks struct {
	// Codec is "H264", or "H265" for a camera sending H.265 to a session that accepts it.
	Codec         string
	VPS           []byte // H.265 only
	SPS, PPS      []byte // from the SDP; nil if the camera sends them only in-band
	Width, Height int    // from the SPS; 0 if unknown
	// Audio is the set-up G.711 track (8 kHz mono only, what WebRTC carries), or nil.
	Audio *format.G711
}

// Session is one RTSP session. Set the fields, call Initialize, then Wait; Close ends it.
// The callbacks run on gortsplib's reading goroutine, one at a time per track, and must not
// block: a slow callback holds up the camera's TCP connection.
type Session struct {
	URL       string // rtsp:// or rtsps://; user info in the URL is used if Username is empty
	Username  string
	Password  string
	Transport string // "tcp" (default) or "udp"
	// ReadTimeout ends the session when no data arrives for this long (default 10 s).
	ReadTimeout  time.Duration
	WriteTimeout time.Duration // default 5 s
	// Audio asks for the camera's G.711 track too, if it has one at 8 kHz mono.
	Audio bool
	// H265 accepts a camera that sends H.265 instead of refusing it: OnTracks says so
	// (Tracks.Codec "H265") and OnAccessUnit gets H.265 access units, VPS/SPS/PPS in front of
	// every IRAP picture. Only the relay's clips use them; browsers cannot play them.
	H265 bool

	// OnTracks is called once, after SETUP and before PLAY: everything the other callbacks
	// get is in this format.
	OnTracks func(Tracks)
	// OnVideoRTP gets every video RTP packet as received, with its PTS (90 kHz) if known.
	OnVideoRTP func(pkt *rtp.Packet, pts int64, ptsOK bool, received time.Time)
	// OnAccessUnit gets every complete H.264 access unit with its PTS (90 kHz). Every IDR
	// unit carries SPS and PPS in front (from the SDP or the last in-band ones), because
	// decoders — Chromium's and libavcodec — need them in-band and many cameras send them
	// only in the SDP. The slices are the depacketizer's: copy what you keep.
	OnAccessUnit func(au [][]byte, pts int64, received time.Time)
	// OnAudioRTP gets every audio RTP packet with its PTS (8 kHz).
	OnAudioRTP func(pkt *rtp.Packet, pts int64, received time.Time)
	// Header, if set, adds these headers to every request of the session (a centre's pull
	// names the user it is opened for; see streams.Manager.PullHeader).
	Header map[string]string
	Logger *slog.Logger

	client     *gortsplib.Client
	stop       func() bool // undoes the close-on-ctx hook
	params     params
	lastPacket atomic.Int64 // unix nanos; 0 before the first packet
	videoIn    atomic.Uint64
}

// Validate checks a camera URL and transport without connecting.
func Validate(rawURL, transport string) error {
	_, err := parseURL(rawURL, "", "")
	if err != nil {
		return err
	}
	if t := strings.ToLower(transport); t != "" && t != "tcp" && t != "udp" {
		return fmt.Errorf("transport %q must be tcp or udp", transport)
	}
	return nil
}

func parseURL(rawURL, user, pass string) (*base.URL, error) {
	u, err := base.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("bad URL: %w", err)
	}
	if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
		return nil, errors.New("URL must be rtsp:// or rtsps://")
	}
	if user != "" {
		u = u.Clone()
		u.User = url.UserPassword(user, pass)
	}
	return u, nil
}

// Initialize connects, describes, sets up and plays. It returns a *CodecError if the
// camera's video is not H.264, and an error wrapping ErrAuth if it refused the credentials.
// When ctx ends, the session is closed. After a nil error, call Wait and Close.
func (s *Session) Initialize(ctx context.Context) error {
	if err := Validate(s.URL, s.Transport); err != nil {
		return err
	}
	u, err := parseURL(s.URL, s.Username, s.Password)
	if err != nil {
		return err
	}
	if s.ReadTimeout <= 0 {
		s.ReadTimeout = 10 * time.Second
	}
	if s.WriteTimeout <= 0 {
		s.WriteTimeout = 5 * time.Second
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	transport := gortsplib.TransportTCP
	if strings.EqualFold(s.Transport, "udp") {
		transport = gortsplib.TransportUDP
	}
	c := &gortsplib.Client{
		Scheme:       u.Scheme,
		Host:         u.Host,
		Transport:    &transport,
		ReadTimeout:  s.ReadTimeout,
		WriteTimeout: s.WriteTimeout,
		// gortsplib writes these to the standard logger unless told otherwise: they go to
		// the structured log instead, per camera.
		OnTransportSwitch: func(err error) { s.Logger.Info("rtsp transport switched", "reason", err.Error()) },
		OnPacketsLost:     func(lost uint64) { s.Logger.Debug("rtsp packets lost", "lost", lost) },
		OnDecodeError:     func(err error) { s.Logger.Debug("rtsp packet not decoded", "err", err.Error()) },
	}
	if len(s.Header) > 0 {
		c.OnRequest = func(req *base.Request) {
			for k, v := range s.Header {
				req.Header[k] = base.HeaderValue{v}
			}
		}
	}
	if err := c.Start2(); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	s.client = c
	// Closing the client unblocks whatever it is doing: a DESCRIBE to a hung camera as well
	// as Wait.
	s.stop = context.AfterFunc(ctx, c.Close)
	if err := s.start(u); err != nil {
		s.Close()
		if ctx.Err() != nil {
			return fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return err
	}
	return nil
}

func (s *Session) start(u *base.URL) error {
	c := s.client
	desc, _, err := c.Describe(u)
	if err != nil {
		var bad liberrors.ErrClientBadStatusCode
		if errors.As(err, &bad) && bad.Code == base.StatusUnauthorized {
			return fmt.Errorf("describe: %w: %w", ErrAuth, err)
		}
		return fmt.Errorf("describe: %w", err)
	}
	var h264f *format.H264
	videoMedia := desc.FindFormat(&h264f)
	if videoMedia == nil && s.H265 {
		var h265f *format.H265
		if m := desc.FindFormat(&h265f); m != nil {
			return s.startH265(desc, m, h265f)
		}
	}
	if videoMedia == nil {
		return &CodecError{Codec: videoCodec(desc)}
	}
	var g711 *format.G711
	var audioMedia *description.Media
	if s.Audio {
		audioMedia = desc.FindFormat(&g711)
		if audioMedia != nil && (g711.SampleRate != 8000 || g711.ChannelCount != 1) {
			audioMedia = nil // WebRTC carries only 8 kHz mono G.711
		}
	}

	if _, err := c.Setup(desc.BaseURL, videoMedia, 0, 0); err != nil {
		return fmt.Errorf("setup video: %w", err)
	}
	if audioMedia != nil {
		if _, err := c.Setup(desc.BaseURL, audioMedia, 0, 0); err != nil {
			audioMedia = nil
			s.Logger.Warn("camera audio not set up", "err", err)
		}
	}

	sps, pps := h264f.SafeParams()
	s.params = params{sps: sps, pps: pps}
	tr := Tracks{Codec: "H264", SPS: sps, PPS: pps}
	tr.Width, tr.Height = spsSize(sps)
	if audioMedia != nil {
		tr.Audio = g711
	}
	if s.OnTracks != nil {
		s.OnTracks(tr)
	}

	dec, err := h264f.CreateDecoder()
	if err != nil {
		return fmt.Errorf("h264 depacketizer: %w", err)
	}
	s.onVideo(videoMedia, h264f, dec.Decode, func(err error) bool {
		return errors.Is(err, rtph264.ErrMorePacketsNeeded) || errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious)
	}, s.params.inBand)
	if audioMedia != nil {
		c.OnPacketRTP(audioMedia, g711, func(pkt *rtp.Packet) {
			now := time.Now()
			s.lastPacket.Store(now.UnixNano())
			pts, ok := c.PacketPTS2(audioMedia, pkt)
			if !ok || s.OnAudioRTP == nil {
				return
			}
			s.OnAudioRTP(pkt, pts, now)
		})
	}
	if _, err := c.Play(nil); err != nil {
		return fmt.Errorf("play: %w", err)
	}
	return nil
}

// Wait blocks until the session ends and says why ("stream lost: …").
func (s *Session) Wait() error {
	return fmt.Errorf("stream lost: %w", s.client.Wait())
}

// Close ends the session. It may be called more than once.
func (s *Session) Close() {
	if s.stop != nil {
		s.stop()
	}
	if s.client != nil {
		s.client.Close()
	}
}

// LastPacket is when the last RTP packet (video or audio) arrived; zero before the first.
// Callers tell a stalled camera from a live one with it.
func (s *Session) LastPacket() time.Time {
	if n := s.lastPacket.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// VideoPackets counts the video RTP packets received.
func (s *Session) VideoPackets() uint64 { return s.videoIn.Load() }

// params keeps the stream's latest SPS and PPS and puts them in front of IDR units that lack
// them. Only the reading goroutine touches it.
type params struct {
	sps, pps []byte
}

// inBand returns au with SPS and PPS in front if it is an IDR unit without them, and
// remembers parameter sets the camera sends in-band (they override the SDP's). Units that
// need nothing are returned as they are, without allocating.
func (p *params) inBand(au [][]byte) [][]byte {
	// hasSPS/hasPPS count only parameter sets before the first slice, where they are of use
	var idr, slice, hasSPS, hasPPS bool
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch t := h264.NALUType(n[0] & 0x1f); {
		case isSlice(t):
			slice = true
			idr = idr || t == h264.NALUTypeIDR
		case t == h264.NALUTypeSPS:
			hasSPS = hasSPS || !slice
			if string(n) != string(p.sps) {
				p.sps = append([]byte(nil), n...)
			}
		case t == h264.NALUTypePPS:
			hasPPS = hasPPS || !slice
			if string(n) != string(p.pps) {
				p.pps = append([]byte(nil), n...)
			}
		}
	}
	// an empty parameter set (a broken SDP) is treated as none: an empty NAL unit would
	// break the consumers
	addSPS, addPPS := !hasSPS && len(p.sps) > 0, !hasPPS && len(p.pps) > 0
	if !idr || !addSPS && !addPPS {
		return au
	}
	// SPS before the first PPS or slice, PPS before the first slice: an access unit
	// delimiter stays first, and a PPS never comes before the SPS it refers to
	out := make([][]byte, 0, len(au)+2)
	for _, n := range au {
		if len(n) > 0 {
			t := h264.NALUType(n[0] & 0x1f)
			if addSPS && (t == h264.NALUTypePPS || isSlice(t)) {
				out, addSPS = append(out, p.sps), false
			}
			if addPPS && isSlice(t) {
				out, addPPS = append(out, p.pps), false
			}
		}
		out = append(out, n)
	}
	return out
}

func isSlice(t h264.NALUType) bool {
	return t >= h264.NALUTypeNonIDR && t <= h264.NALUTypeIDR
}

func spsSize(sps []byte) (int, int) {
	var p h264.SPS
	if sps == nil || p.Unmarshal(sps) != nil {
		return 0, 0
	}
	return p.Width(), p.Height()
}

// videoCodec names the codec of the first video format in the SDP, or "none".
func videoCodec(desc *description.Session) string {
	for _, m := range desc.Medias {
		if m.Type == description.MediaTypeVideo {
			for _, f := range m.Formats {
				return f.Codec()
			}
		}
	}
	return "none"
}

// onVideo reads the video media's RTP packets: each is counted and handed to OnVideoRTP with
// its timestamp; decode turns them into access units (incomplete says which of its errors only
// mean "not a whole unit yet"), which go to OnAccessUnit with the parameter sets in band.
func (s *Session) onVideo(m *description.Media, f format.Format, decode func(*rtp.Packet) ([][]byte, error),
	incomplete func(error) bool, inBand func([][]byte) [][]byte) {
	c := s.client
	codec := f.Codec()
	c.OnPacketRTP(m, f, func(pkt *rtp.Packet) {
		now := time.Now()
		s.lastPacket.Store(now.UnixNano())
		s.videoIn.Add(1)
		pts, ok := c.PacketPTS2(m, pkt)
		if s.OnVideoRTP != nil {
			s.OnVideoRTP(pkt, pts, ok, now)
		}
		if !ok || s.OnAccessUnit == nil {
			return
		}
		au, err := decode(pkt)
		if err != nil {
			if !incomplete(err) {
				s.Logger.Debug("depacketize", "codec", codec, "err", err)
			}
			return
		}
		s.OnAccessUnit(inBand(au), pts, now)
	})
}
