package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/offsite-gw/offsite/internal/connguard"
)

// Reserve re-serves the cameras over RTSP (gortsplib server) at rtsp://host:port/{camera-id}
// with its own credentials, so analytics workers and recorders read from the gateway and never
// add a session on a camera. A camera is pulled (on demand) while someone plays it.
type Reserve struct {
	Manager *Manager
	// Listen is the RTSP address (default ":8554"). RTP goes interleaved over TCP unless
	// UDPRTPListen/UDPRTCPListen are set (e.g. ":8000" and ":8001").
	Listen        string
	UDPRTPListen  string
	UDPRTCPListen string
	// Username and Password are one static login (the configured one: consumer Username).
	// Credentials are further logins (a *ConsumerStore, …), asked after it in order. Readers
	// log in with Digest (MD5, realm RTSPRealm) only: Basic is neither offered nor accepted.
	// No login at all (no Username, no Credentials): no authentication, logged as a warning.
	Username    string
	Password    string
	Credentials []CredentialSource
	// AuthFailLimit failed logins from one address within AuthFailWindow refuse that address,
	// without checking, until the window has passed (defaults 5 and 1m; <0: no limit).
	AuthFailLimit  int
	AuthFailWindow time.Duration
	// HandshakeTimeout closes a connection that sends no request within it (default 10s;
	// <0: never); MaxConnsPerAddr bounds open connections per remote IP (default 32; <0: none).
	HandshakeTimeout time.Duration
	MaxConnsPerAddr  int
	// OnPull, if set, receives the start (PLAY) and end of every reader's session (audit log).
	OnPull func(PullEvent)
	// VerifyPull, if set, checks a PLAY before it starts and says whom it is for (PullEvent's
	// Origin and OnBehalfOf); an error refuses it with 403 (offsite_rtsp_refused_total
	// {reason="bad_claim"}). A site checks its centre's on-behalf statement here (cascade).
	VerifyPull func(PullRequest) (PullClaim, error)
	Registerer prometheus.Registerer
	Logger     *slog.Logger

	pullLog pullLog
	stats   cascadeStats

	server  *gortsplib.Server
	ln      net.Listener
	guard   *connguard.Listener
	refused *prometheus.CounterVec
	sources []CredentialSource
	mu      sync.Mutex
	streams map[string]*reserveStream                   // by camera
	bySess  map[*gortsplib.ServerSession]*reserveStream // playing sessions
	conns   map[*gortsplib.ServerConn]*reserveConn
	fails   map[string]*authFails // by remote IP
}

// reserveConn is one RTSP connection's login state.
type reserveConn struct {
	nonce    string
	consumer string
}

type authFails struct {
	n     int
	since time.Time
}

type reserveStream struct {
	cam      *Camera
	sig      string
	stream   *gortsplib.ServerStream
	video    *description.Media
	audio    *description.Media
	sessions map[*gortsplib.ServerSession]struct{}
	reader   *Reader
	stop     chan struct{}
}

// Initialize starts the RTSP server.
func (s *Reserve) Initialize() error {
	if s.Manager == nil {
		return errors.New("reserve: no manager")
	}
	if s.Listen == "" {
		s.Listen = ":8554"
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.AuthFailLimit == 0 {
		s.AuthFailLimit = 5
	}
	if s.AuthFailWindow <= 0 {
		s.AuthFailWindow = time.Minute
	}
	if s.HandshakeTimeout == 0 {
		s.HandshakeTimeout = 10 * time.Second
	}
	if s.MaxConnsPerAddr == 0 {
		s.MaxConnsPerAddr = 32
	}
	s.sources = nil
	if s.Username != "" {
		s.sources = append(s.sources, StaticCredential{Username: s.Username, Password: s.Password})
	}
	s.sources = append(s.sources, s.Credentials...)
	if len(s.sources) == 0 {
		s.Logger.Warn("RTSP re-serve without credentials: anyone who reaches the port can watch", "listen", s.Listen)
	}
	s.refused = registerCounterVec(s.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "offsite_rtsp_refused_total", Help: "RTSP re-serve connections and requests refused, by reason.",
	}, []string{"reason"}))
	s.registerCascadeMetrics()
	s.streams = make(map[string]*reserveStream)
	s.bySess = make(map[*gortsplib.ServerSession]*reserveStream)
	s.conns = make(map[*gortsplib.ServerConn]*reserveConn)
	s.fails = make(map[string]*authFails)
	s.server = &gortsplib.Server{
		Handler:        s,
		RTSPAddress:    s.Listen,
		UDPRTPAddress:  s.UDPRTPListen,
		UDPRTCPAddress: s.UDPRTCPListen,
		WriteQueueSize: 4096, // a GOP burst for the first reader fits
		ReadTimeout:    10 * time.Second,
		WriteTimeout:   10 * time.Second,
		Listen: func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, address)
			if err != nil {
				return nil, err
			}
			s.ln = ln
			s.guard = &connguard.Listener{Listener: ln, PerAddr: max(s.MaxConnsPerAddr, 0), Handshake: max(s.HandshakeTimeout, 0),
				OnRefuse: func(remote, reason string) {
					s.refused.WithLabelValues(reason).Inc()
					s.Logger.Debug("RTSP connection closed", "reason", reason, "remote", remote)
				}}
			return s.guard, nil
		},
	}
	if err := s.server.Start(); err != nil {
		return fmt.Errorf("reserve: %w", err)
	}
	return nil
}

// Addr returns the RTSP listener's address.
func (s *Reserve) Addr() string { return s.ln.Addr().String() }

// Close stops the server.
func (s *Reserve) Close() {
	s.server.Close()
	s.mu.Lock()
	all := s.streams
	s.streams = map[string]*reserveStream{}
	s.mu.Unlock()
	for _, rs := range all {
		s.stopPump(rs)
		rs.stream.Close()
	}
}

func cameraFromPath(p string) string {
	p = strings.Trim(p, "/")
	id, _, _ := strings.Cut(p, "/")
	return id
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (s *Reserve) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if res, err := s.authorize(ctx.Conn, ctx.Request); res != nil {
		return res, nil, err
	}
	rs, status, err := s.streamFor(cameraFromPath(ctx.Path))
	if err != nil {
		return &base.Response{StatusCode: status}, nil, err
	}
	return &base.Response{StatusCode: base.StatusOK}, rs.stream, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (s *Reserve) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if res, err := s.authorize(ctx.Conn, ctx.Request); res != nil {
		return res, nil, err
	}
	if st := ctx.Session.SetuppedStream(); st != nil {
		return &base.Response{StatusCode: base.StatusOK}, st, nil
	}
	rs, status, err := s.streamFor(cameraFromPath(ctx.Path))
	if err != nil {
		return &base.Response{StatusCode: status}, nil, err
	}
	return &base.Response{StatusCode: base.StatusOK}, rs.stream, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (s *Reserve) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	if res, err := s.authorize(ctx.Conn, ctx.Request); res != nil {
		return res, err
	}
	claim, res, err := s.verifyPull(ctx)
	if res != nil {
		return res, err
	}
	st := ctx.Session.SetuppedStream()
	s.mu.Lock()
	for _, rs := range s.streams {
		if rs.stream == st {
			rs.sessions[ctx.Session] = struct{}{}
			s.bySess[ctx.Session] = rs
			if rs.reader == nil {
				s.startPumpLocked(rs)
			}
			consumer := ""
			if rc := s.conns[ctx.Conn]; rc != nil {
				consumer = rc.consumer
			}
			s.mu.Unlock()
			s.pullStarted(ctx, consumer, claim)
			return &base.Response{StatusCode: base.StatusOK}, nil
		}
	}
	s.mu.Unlock()
	return &base.Response{StatusCode: base.StatusNotFound}, fmt.Errorf("stream gone")
}

// OnSessionClose implements gortsplib.ServerHandlerOnSessionClose.
func (s *Reserve) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	defer s.pullEnded(ctx.Session)
	s.mu.Lock()
	rs := s.bySess[ctx.Session]
	s.sessionClosedLocked(ctx.Session)
	delete(s.bySess, ctx.Session)
	var stop *reserveStream
	if rs != nil {
		delete(rs.sessions, ctx.Session)
		if len(rs.sessions) == 0 {
			stop = rs
		}
	}
	s.mu.Unlock()
	if stop != nil {
		s.stopPump(stop)
	}
}

// streamFor returns the camera's ServerStream, creating it once the camera's format is known.
func (s *Reserve) streamFor(id string) (*reserveStream, base.StatusCode, error) {
	cam, ok := s.Manager.Camera(id)
	if !ok {
		return nil, base.StatusNotFound, fmt.Errorf("camera %q not found", id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	f, err := cam.WaitFormat(ctx)
	if f == nil || f.Codec != "H264" {
		if err == nil {
			err = errors.New("camera not available")
		}
		return nil, base.StatusServiceUnavailable, fmt.Errorf("camera %s: %w", id, err)
	}
	sig := fmt.Sprintf("%x|%x|%v", f.SPS, f.PPS, f.Audio != nil)
	if f.Audio != nil {
		sig += fmt.Sprint(*f.Audio)
	}

	s.mu.Lock()
	rs := s.streams[id]
	if rs != nil && rs.sig == sig && rs.cam == cam {
		s.mu.Unlock()
		return rs, base.StatusOK, nil
	}
	nrs := &reserveStream{cam: cam, sig: sig, sessions: map[*gortsplib.ServerSession]struct{}{}}
	nrs.video = &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{&format.H264{
		PayloadTyp: VideoPayloadType, SPS: f.SPS, PPS: f.PPS, PacketizationMode: 1,
	}}}
	desc := &description.Session{Medias: []*description.Media{nrs.video}}
	if f.Audio != nil {
		nrs.audio = &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{&format.G711{
			PayloadTyp: f.Audio.PayloadType, MULaw: f.Audio.MULaw, SampleRate: 8000, ChannelCount: 1,
		}}}
		desc.Medias = append(desc.Medias, nrs.audio)
	}
	nrs.stream = &gortsplib.ServerStream{Server: s.server, Desc: desc}
	if err := nrs.stream.Initialize(); err != nil {
		s.mu.Unlock()
		return nil, base.StatusInternalServerError, err
	}
	s.streams[id] = nrs
	s.mu.Unlock()
	if rs != nil { // the camera's parameters changed: its readers reconnect to the new stream
		s.stopPump(rs)
		rs.stream.Close()
	}
	return nrs, base.StatusOK, nil
}

func (s *Reserve) startPumpLocked(rs *reserveStream) {
	r := rs.cam.Hub().AddReader(ReaderOptions{})
	stop := make(chan struct{})
	rs.reader, rs.stop = r, stop
	go func() {
		defer r.Close()
		for {
			select {
			case <-r.Done():
				return
			case <-stop:
				return
			case u := <-r.C():
				medi := rs.video
				if u.Kind == UnitAudio {
					medi = rs.audio
					if medi == nil {
						continue
					}
				}
				for _, p := range u.Packets {
					cp := *p // the server stream rewrites the SSRC; the packet is shared
					if err := rs.stream.WritePacketRTPWithNTP(medi, &cp, u.Received); err != nil {
						return
					}
				}
			}
		}
	}()
}

func (s *Reserve) stopPump(rs *reserveStream) {
	s.mu.Lock()
	stop := rs.stop
	rs.reader, rs.stop = nil, nil
	s.mu.Unlock()
	if stop != nil {
		close(stop)
	}
}
