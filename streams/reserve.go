package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/prometheus/client_golang/prometheus"
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
	// Username and Password readers must present (basic or digest). Empty: no authentication.
	Username string
	Password string
	// Credentials, if set, names further readers that may log in: the password of username,
	// or false. A centre pulling this site's cameras logs in this way (cascade).
	Credentials func(username string) (password string, ok bool)
	// OnPull, if set, is called when a reader starts playing a camera; an error refuses the
	// play (403). A site checks and audits its centre's pulls here (cascade).
	OnPull func(ReservePull) error
	// Registerer, if set, receives the re-serve's metrics (offsite_rtsp_reserve_*).
	Registerer prometheus.Registerer
	Logger     *slog.Logger

	metrics reserveMetrics

	server  *gortsplib.Server
	ln      net.Listener
	mu      sync.Mutex
	streams map[string]*reserveStream                   // by camera
	bySess  map[*gortsplib.ServerSession]*reserveStream // playing sessions
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
	readers  atomic.Int64 // playing sessions, for the bytes-sent count
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
	if s.Username == "" {
		s.Logger.Warn("RTSP re-serve without credentials: anyone who reaches the port can watch", "listen", s.Listen)
	}
	s.streams = make(map[string]*reserveStream)
	s.bySess = make(map[*gortsplib.ServerSession]*reserveStream)
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
			s.ln = ln
			return ln, err
		},
	}
	if err := s.server.Start(); err != nil {
		return fmt.Errorf("reserve: %w", err)
	}
	if s.Registerer != nil {
		if err := s.registerMetrics(s.Registerer); err != nil {
			s.server.Close()
			return fmt.Errorf("reserve metrics: %w", err)
		}
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

func (s *Reserve) checkAuth(conn *gortsplib.ServerConn, req *base.Request) bool {
	if s.Username == "" && s.Credentials == nil {
		return true
	}
	user := authUser(req)
	if s.Credentials != nil && user != "" && user != s.Username {
		pw, ok := s.Credentials(user)
		return ok && conn.VerifyCredentials(req, user, pw)
	}
	return s.Username != "" && conn.VerifyCredentials(req, s.Username, s.Password)
}

// authUser is the username a request's Authorization header names ("" without one).
func authUser(req *base.Request) string {
	v, ok := req.Header["Authorization"]
	if !ok {
		return ""
	}
	var h headers.Authorization
	if err := h.Unmarshal(v); err != nil {
		return ""
	}
	return h.Username
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (s *Reserve) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if !s.checkAuth(ctx.Conn, ctx.Request) {
		s.refusedAuth(ctx.Request)
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	rs, status, err := s.streamFor(cameraFromPath(ctx.Path))
	if err != nil {
		return &base.Response{StatusCode: status}, nil, err
	}
	return &base.Response{StatusCode: base.StatusOK}, rs.stream, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (s *Reserve) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if !s.checkAuth(ctx.Conn, ctx.Request) {
		s.refusedAuth(ctx.Request)
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
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
	if err := s.checkPull(ctx); err != nil {
		return &base.Response{StatusCode: base.StatusForbidden}, err
	}
	st := ctx.Session.SetuppedStream()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range s.streams {
		if rs.stream == st {
			rs.sessions[ctx.Session] = struct{}{}
			rs.readers.Store(int64(len(rs.sessions)))
			s.bySess[ctx.Session] = rs
			if rs.reader == nil {
				s.startPumpLocked(rs)
			}
			return &base.Response{StatusCode: base.StatusOK}, nil
		}
	}
	return &base.Response{StatusCode: base.StatusNotFound}, fmt.Errorf("stream gone")
}

// OnSessionClose implements gortsplib.ServerHandlerOnSessionClose.
func (s *Reserve) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	s.mu.Lock()
	rs := s.bySess[ctx.Session]
	delete(s.bySess, ctx.Session)
	var stop *reserveStream
	if rs != nil {
		delete(rs.sessions, ctx.Session)
		rs.readers.Store(int64(len(rs.sessions)))
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
					s.metrics.bytesSent.Add(uint64(cp.MarshalSize()) * uint64(rs.readers.Load()))
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
