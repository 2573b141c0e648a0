package streams

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/offsite-gw/offsite/internal/errs"
)

// Viewer is who asked for a WebRTC session.
type Viewer struct {
	User       string
	RemoteAddr string
}

// SessionEvent reports the start and the end of a viewing session, for the audit log.
type SessionEvent struct {
	Kind       string // "start" or "end"
	ID         string
	User       string
	Camera     string
	RemoteAddr string
	Start      time.Time
	End        time.Time // zero for "start"
	Reason     string    // why it ended
	// EndedBy and EndedByAddr name who ended the session with DELETE (the viewer or an
	// administrator); empty when it ended otherwise (viewer gone, camera removed, shutdown).
	EndedBy        string
	EndedByAddr    string
	PacketsSent    uint64
	PacketsDropped uint64
}

// WHEP serves WebRTC viewers (RFC 9725 WHEP) from the cameras' hubs with pion. All peers share
// one UDP port and one ICE-TCP port.
type WHEP struct {
	Manager *Manager
	// UDPListen is the one UDP address for all peers (default ":8189").
	UDPListen string
	// TCPListen is the ICE-TCP fallback address (default ":8189"; "off" disables it).
	TCPListen string
	// PublicIPs replace the host candidates' addresses (1:1 NAT), e.g. ["203.0.113.7"].
	PublicIPs []string
	// DisconnectTimeout: a viewer silent this long (no STUN consent checks, no RTCP) is
	// disconnected, and its session ends when it stays silent as long again (ICE failed);
	// default 5 s, so a vanished viewer is gone within 10 s. Browsers send something every
	// second or so; keep this above 3 s.
	DisconnectTimeout time.Duration
	// ConnectTimeout ends a session that never connects (default 20 s).
	ConnectTimeout time.Duration
	// DisableBatching sends every datagram with its own system call instead of grouping a
	// frame's packets per viewer with UDP GSO (Linux).
	DisableBatching bool
	// MaxLag: a viewer whose packets would leave later than this after they came from the
	// camera skips ahead to the next keyframe (default 1 s), so a slow viewer lags by at most
	// about MaxLag plus one keyframe interval.
	MaxLag time.Duration
	// MaxSessions caps concurrent sessions (default 1000).
	MaxSessions int
	// MaxSessionsPerUser and MaxSessionsPerCamera cap the concurrent sessions of one viewer
	// (Viewer.User) and of one camera, offers being answered included (0: no cap). An offer
	// beyond either is refused with errs.KindLocked (HTTP 429).
	MaxSessionsPerUser   int
	MaxSessionsPerCamera int
	// DisableDirectSRTP sends media through pion's track and SRTP session instead of each
	// session encrypting its packets and writing them to the UDP port itself (see
	// srtpdirect.go); the direct path costs about a fifth less CPU per packet.
	DisableDirectSRTP bool
	// DisableFanout keeps every session on its own goroutine instead of handing caught-up
	// direct-path sessions to per-camera fan-out groups (fanout.go).
	DisableFanout bool
	// OnSession receives start and end of every session (audit log).
	OnSession func(SessionEvent)
	Logger    *slog.Logger
	// Registerer, if set, receives the WebRTC egress's Prometheus metrics
	// (offsite_streams_whep_*).
	Registerer prometheus.Registerer

	// FirstKeyframe is the time in seconds from a viewer's connection (ICE and DTLS done) to its
	// first keyframe handed to the socket (offsite_streams_whep_first_keyframe_seconds); set by
	// Initialize.
	FirstKeyframe prometheus.Histogram

	me       *webrtc.MediaEngine
	ir       *interceptor.Registry
	se       webrtc.SettingEngine // copied per session, which adds its DTLS hooks
	udpConn  net.PacketConn
	tcpLn    net.Listener
	udpMux   ice.UDPMux
	tcpMux   ice.TCPMux
	mu       sync.Mutex
	sessions map[string]*whepSession
	// perUser and perCamera count sessions and offers in progress, for the caps
	perUser   map[string]int
	perCamera map[string]int
	fanouts   map[*Hub][]*fanout
	quit      chan struct{} // closed by Close
	metrics   *whepMetrics
	closed    bool
	// counters of ended sessions
	endedSent, endedDropped uint64
	wg                      sync.WaitGroup
}

// Initialize opens the ICE ports and prepares the shared pion API.
func (w *WHEP) Initialize() error {
	if w.Manager == nil {
		return errors.New("whep: no manager")
	}
	if w.UDPListen == "" {
		w.UDPListen = ":8189"
	}
	if w.TCPListen == "" {
		w.TCPListen = ":8189"
	}
	if w.DisconnectTimeout <= 0 {
		w.DisconnectTimeout = 5 * time.Second
	}
	if w.ConnectTimeout <= 0 {
		w.ConnectTimeout = 20 * time.Second
	}
	if w.MaxLag <= 0 {
		w.MaxLag = time.Second
	}
	if w.MaxSessions <= 0 {
		w.MaxSessions = 1000
	}
	if w.Logger == nil {
		w.Logger = slog.Default()
	}
	w.sessions = make(map[string]*whepSession)
	w.perUser, w.perCamera = make(map[string]int), make(map[string]int)
	w.fanouts = make(map[*Hub][]*fanout)
	w.quit = make(chan struct{})
	w.FirstKeyframe = newLatencyHistogram("offsite_streams_whep_first_keyframe_seconds", "A viewer's connection (ICE and DTLS up) to its first keyframe sent.")

	me := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}
	for i, profile := range []string{"42e01f", "42001f", "4d001f", "640c1f", "640032"} {
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
				SDPFmtpLine:  "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + profile,
				RTCPFeedback: fb,
			},
			PayloadType: webrtc.PayloadType(102 + i),
		}, webrtc.RTPCodecTypeVideo); err != nil {
			return err
		}
	}
	for _, c := range []struct {
		mime string
		pt   webrtc.PayloadType
	}{{webrtc.MimeTypePCMU, 0}, {webrtc.MimeTypePCMA, 8}} {
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: c.mime, ClockRate: 8000, Channels: 1},
			PayloadType:        c.pt,
		}, webrtc.RTPCodecTypeAudio); err != nil {
			return err
		}
	}
	// No interceptors: no NACK buffers (a copy of every packet per viewer would cost about
	// 1 MB each), no congestion control — the relay does not transcode, so it cannot adapt —
	// and sender reports come from each session's own counters once a second (see
	// senderReports) instead of bookkeeping on every packet.
	w.me, w.ir = me, &interceptor.Registry{}

	var err error
	w.udpConn, err = net.ListenPacket("udp", w.UDPListen)
	if err != nil {
		return fmt.Errorf("whep: ICE UDP port: %w", err)
	}
	if uc, ok := w.udpConn.(*net.UDPConn); ok {
		_ = uc.SetWriteBuffer(4 << 20)
		_ = uc.SetReadBuffer(1 << 20)
		if !w.DisableBatching {
			if bc, err := newBatchConn(uc); err == nil {
				w.udpConn = bc
			}
		}
	}
	lf := pionLog{l: w.Logger}
	se := webrtc.SettingEngine{LoggerFactory: lf}
	// The relay answers as the DTLS server (browsers offer "actpass"), so the ServerHello that
	// the direct SRTP path needs is its own.
	if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer); err != nil {
		_ = w.udpConn.Close()
		return err
	}
	// As the DTLS server the relay picks the SRTP profile: AES-128-GCM (RFC 7714) first, the
	// cheapest to encrypt per packet and viewer (pion's default order puts AES-256-GCM first),
	// then AES-256-GCM and the AES-CM/HMAC-SHA1 profile every WebRTC endpoint has.
	se.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AEAD_AES_256_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80)
	w.udpMux = ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: w.udpConn, Logger: lf.NewLogger("ice")})
	se.SetICEUDPMux(w.udpMux)
	nets := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if !strings.EqualFold(w.TCPListen, "off") {
		w.tcpLn, err = net.Listen("tcp", w.TCPListen)
		if err != nil {
			_ = w.udpConn.Close()
			return fmt.Errorf("whep: ICE TCP port: %w", err)
		}
		w.tcpMux = ice.NewTCPMuxDefault(ice.TCPMuxParams{
			Listener: w.tcpLn, Logger: lf.NewLogger("ice"), ReadBufferSize: 8, WriteBufferSize: 1 << 20,
		})
		se.SetICETCPMux(w.tcpMux)
		nets = append(nets, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	se.SetNetworkTypes(nets)
	if host, _, _ := net.SplitHostPort(w.UDPListen); host != "" {
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			se.SetIncludeLoopbackCandidate(true)
		}
	}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(w.DisconnectTimeout, 2*w.DisconnectTimeout, time.Second)
	if len(w.PublicIPs) > 0 {
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External: w.PublicIPs, AsCandidateType: webrtc.ICECandidateTypeHost,
		}); err != nil {
			w.closePorts()
			return fmt.Errorf("whep: public IPs: %w", err)
		}
	}
	w.se = se
	if w.Registerer != nil {
		w.metrics = &whepMetrics{w: w}
		if err := w.Registerer.Register(w.metrics); err != nil {
			w.closePorts()
			return fmt.Errorf("whep metrics: %w", err)
		}
	}
	return nil
}

func (w *WHEP) closePorts() {
	if w.udpMux != nil {
		_ = w.udpMux.Close()
	}
	if w.tcpMux != nil {
		_ = w.tcpMux.Close()
	}
	if w.udpConn != nil {
		_ = w.udpConn.Close()
	}
	if w.tcpLn != nil {
		_ = w.tcpLn.Close()
	}
}

// UDPAddr returns the ICE UDP address actually bound.
func (w *WHEP) UDPAddr() net.Addr { return w.udpConn.LocalAddr() }

// Close ends every session and closes the ports.
func (w *WHEP) Close() {
	w.mu.Lock()
	if !w.closed {
		close(w.quit)
	}
	w.closed = true
	ss := make([]*whepSession, 0, len(w.sessions))
	for _, s := range w.sessions {
		ss = append(ss, s)
	}
	w.mu.Unlock()
	for _, s := range ss {
		s.close("gateway shutting down")
	}
	w.wg.Wait()
	w.closePorts()
	if w.metrics != nil {
		w.Registerer.Unregister(w.metrics)
	}
}

// SendDropped counts datagrams the kernel refused to send on the WebRTC UDP port.
func (w *WHEP) SendDropped() uint64 {
	if bc, ok := w.udpConn.(interface{ Dropped() uint64 }); ok {
		return bc.Dropped()
	}
	return 0
}

// WHEPStats are the WebRTC egress counters.
type WHEPStats struct {
	Sessions       int
	PacketsSent    uint64 // RTP packets written to viewers
	PacketsDropped uint64 // packets viewers missed by falling behind (queue full or lag)
	// DirectSessions: live sessions whose media go out on the direct SRTP path
	// (srtpdirect.go) rather than through pion.
	DirectSessions int
	// FanoutSessions: live sessions served by a camera's fan-out groups (fanout.go).
	FanoutSessions int
}

// Stats returns the counters over all sessions, live and ended.
func (w *WHEP) Stats() WHEPStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := WHEPStats{Sessions: len(w.sessions), PacketsSent: w.endedSent, PacketsDropped: w.endedDropped}
	for _, s := range w.sessions {
		st.PacketsSent += s.sent.Load()
		st.PacketsDropped += s.droppedPackets()
		if s.onDirect.Load() {
			st.DirectSessions++
		}
		if s.inGroup.Load() {
			st.FanoutSessions++
		}
	}
	return st
}

// Sessions returns the number of live sessions.
func (w *WHEP) Sessions() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.sessions)
}

// Offer answers a WHEP offer for a camera: it returns the SDP answer and the new session's ID
// (the resource is /api/v1/cameras/{camera}/whep/{id}). The answer carries all ICE candidates
// (no trickle). Errors carry errs kinds: not found, invalid (codec problems, bad offer),
// unavailable (too many sessions).
func (w *WHEP) Offer(ctx context.Context, cameraID, offer string, v Viewer) (answer, sessionID string, err error) {
	cam, err := w.Manager.lookup(cameraID)
	if err != nil {
		return "", "", err
	}
	oi, err := inspectOffer(offer)
	if err != nil {
		return "", "", errs.Wrap(errs.KindInvalid, "bad_offer", err, "the WHEP offer is not usable")
	}
	if !oi.H264 {
		return "", "", errs.E(errs.KindInvalid, "codec_unsupported", "the offer has no H.264 video; this browser cannot play the gateway's cameras")
	}
	w.mu.Lock()
	full := len(w.sessions) >= w.MaxSessions
	closed := w.closed
	userFull := w.MaxSessionsPerUser > 0 && w.perUser[v.User] >= w.MaxSessionsPerUser
	camFull := w.MaxSessionsPerCamera > 0 && w.perCamera[cameraID] >= w.MaxSessionsPerCamera
	if !closed && !full && !userFull && !camFull {
		w.perUser[v.User]++
		w.perCamera[cameraID]++
	}
	w.mu.Unlock()
	switch {
	case closed || full:
		return "", "", errs.E(errs.KindUnavailable, "too_many_viewers", "the video relay has no room for another viewer (%d sessions)", w.MaxSessions)
	case userFull:
		return "", "", errs.E(errs.KindLocked, "too_many_sessions_user", "you already have %d viewing sessions open; close one first", w.MaxSessionsPerUser)
	case camFull:
		return "", "", errs.E(errs.KindLocked, "too_many_sessions_camera", "camera %s already has %d viewers; try again later", cameraID, w.MaxSessionsPerCamera)
	}
	// The counts taken above are the session's from now on; an offer that fails gives them back.
	defer func() {
		if err != nil {
			w.release(v.User, cameraID)
		}
	}()

	// Learn the camera's codec (starting an on-demand pull). An offline camera is not an
	// error: the viewer gets the picture when the camera comes back.
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	f, ferr := cam.WaitFormat(wctx)
	cancel()
	if ferr != nil && errors.Is(ferr, ErrCodec) {
		return "", "", codecError(ferr)
	}
	if ferr != nil && ctx.Err() != nil {
		return "", "", ctx.Err()
	}

	se := w.se
	var secrets *dtlsSecrets
	if !w.DisableDirectSRTP {
		secrets = &dtlsSecrets{}
		se.SetDTLSKeyLogWriter(secrets)
		se.SetDTLSServerHelloMessageHook(secrets.serverHello)
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(w.me), webrtc.WithInterceptorRegistry(w.ir), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return "", "", fmt.Errorf("whep: new peer: %w", err)
	}
	s := &whepSession{w: w, cam: cam, pc: pc, id: newSessionID(), viewer: v, start: time.Now(), done: make(chan struct{}), connected: make(chan struct{}), secrets: secrets}
	fail := func(e error) (string, string, error) {
		_ = pc.Close()
		return "", "", e
	}
	s.video, err = newBoundTrack(webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
	}, "video", "offsite-"+cameraID)
	if err != nil {
		return fail(err)
	}
	senders := []*webrtc.RTPSender{}
	vs, err := pc.AddTrack(s.video)
	if err != nil {
		return fail(err)
	}
	senders = append(senders, vs)
	s.videoSR.ssrc, s.videoSR.clock = senderSSRC(vs), 90000
	if f != nil && f.Audio != nil && oi.Audio[audioMime(f.Audio)] {
		s.audio, err = newBoundTrack(webrtc.RTPCodecCapability{
			MimeType: audioMime(f.Audio), ClockRate: 8000, Channels: 1,
		}, "audio", "offsite-"+cameraID)
		if err != nil {
			return fail(err)
		}
		as, err := pc.AddTrack(s.audio)
		if err != nil {
			return fail(err)
		}
		senders = append(senders, as)
		s.audioSR.ssrc, s.audioSR.clock = senderSSRC(as), 8000
	}
	pc.OnConnectionStateChange(s.onState)
	if secrets != nil {
		if c, ok := w.udpConn.(addrPortWriter); ok {
			s.direct = &directWriter{conn: c}
			s.ice = vs.Transport().ICETransport()
			s.ice.OnSelectedCandidatePairChange(s.pairChanged)
		}
	}

	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return fail(errs.Wrap(errs.KindInvalid, "bad_offer", err, "the WHEP offer was refused"))
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(errs.Wrap(errs.KindInvalid, "bad_offer", err, "no answer to this offer"))
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		return fail(err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return fail(ctx.Err())
	}

	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return fail(errs.E(errs.KindUnavailable, "closed", "the video relay is shutting down"))
	}
	w.sessions[s.id] = s
	w.wg.Add(1)
	w.mu.Unlock()

	for _, snd := range senders {
		go drainRTCP(snd)
	}
	go s.watch()
	w.Logger.Info("whep session start", "session", s.id, "camera", cameraID, "user", v.User, "remote", v.RemoteAddr)
	if w.OnSession != nil {
		w.OnSession(SessionEvent{Kind: "start", ID: s.id, User: v.User, Camera: cameraID, RemoteAddr: v.RemoteAddr, Start: s.start})
	}
	return pc.LocalDescription().SDP, s.id, nil
}

// End ends a session on behalf of by (WHEP DELETE): only the session's own viewer may, unless
// anyOwner (an administrator). Another user's session is errs.KindForbidden not_your_session;
// the session's end event names by as EndedBy. cameraID, if not empty, must match the
// session's.
func (w *WHEP) End(cameraID, sessionID string, by Viewer, anyOwner bool) error {
	w.mu.Lock()
	s := w.sessions[sessionID]
	w.mu.Unlock()
	if s == nil || (cameraID != "" && s.cam.ID() != cameraID) {
		return errs.E(errs.KindNotFound, "session_not_found", "no viewing session %q", sessionID)
	}
	if !anyOwner && s.viewer.User != by.User {
		return errs.E(errs.KindForbidden, "not_your_session", "viewing session %s belongs to another user; only its viewer or an administrator may end it", sessionID)
	}
	reason := "viewer ended the session"
	if by.User != "" && by.User != s.viewer.User {
		reason = "ended by " + by.User
	}
	s.endedBy.Store(&by)
	s.close(reason)
	return nil
}

// release gives back the per-user and per-camera counts of a session or a failed offer.
func (w *WHEP) release(user, cameraID string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.perUser[user]--; w.perUser[user] <= 0 {
		delete(w.perUser, user)
	}
	if w.perCamera[cameraID]--; w.perCamera[cameraID] <= 0 {
		delete(w.perCamera, cameraID)
	}
}

func audioMime(a *AudioFormat) string {
	if a.MULaw {
		return webrtc.MimeTypePCMU
	}
	return webrtc.MimeTypePCMA
}

func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func drainRTCP(s *webrtc.RTPSender) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := s.Read(buf); err != nil {
			return
		}
	}
}

type whepSession struct {
	w      *WHEP
	cam    *Camera
	pc     *webrtc.PeerConnection
	id     string
	viewer Viewer
	start  time.Time
	video  *boundTrack
	audio  *boundTrack
	// direct SRTP path (nil: pion's); secrets until the keys are derived
	secrets  *dtlsSecrets
	direct   *directWriter
	ice      *webrtc.ICETransport
	onDirect atomic.Bool // the media go out on the direct path (for good)
	inGroup  atomic.Bool
	// send state, guarded by sendMu: the session's goroutine or its fan-out group writes
	sendMu           sync.Mutex
	group            *fanout
	videoSR, audioSR srState
	vout, aout       outTrack
	dw               *directWriter // the direct path, or nil: pion's, for the session's whole life
	joined           time.Time
	firstKey         bool

	done       chan struct{}
	once       sync.Once
	reason     string
	endedBy    atomic.Pointer[Viewer] // who ended it with DELETE
	connected  chan struct{}
	connOnce   sync.Once
	state      atomic.Int32
	sent       atomic.Uint64
	lagDropped atomic.Uint64
	reader     atomic.Pointer[Reader]
}

// droppedPackets: lost in the hub queue plus skipped for lag.
func (s *whepSession) droppedPackets() uint64 {
	n := s.lagDropped.Load()
	if r := s.reader.Load(); r != nil {
		n += r.Dropped()
	}
	return n
}

func (s *whepSession) onState(st webrtc.PeerConnectionState) {
	s.state.Store(int32(st))
	switch st {
	case webrtc.PeerConnectionStateConnected:
		s.connOnce.Do(func() { close(s.connected) })
	case webrtc.PeerConnectionStateFailed:
		go s.close("viewer gone (ICE failed or disconnected)")
	case webrtc.PeerConnectionStateClosed:
		go s.close("peer connection closed")
	}
}

// watch waits for the peer to connect, then pumps the camera's hub into the tracks: from its
// own hub reader while it catches up, then, on the direct path, as a member of a fan-out group
// (fanout.go) until the session ends.
func (s *whepSession) watch() {
	defer s.w.wg.Done()
	select {
	case <-s.connected:
	case <-s.done:
		return
	case <-time.After(s.w.ConnectTimeout):
		s.close("viewer never connected")
		return
	}
	s.sendMu.Lock()
	s.joined = time.Now()
	s.vout.idx, s.aout.idx = uint64(initialSeq()), uint64(initialSeq())
	s.firstKey = true
	s.dw = s.startDirect()
	s.sendMu.Unlock()
	srTick := time.NewTicker(time.Second)
	defer srTick.Stop()
	if g := s.own(srTick); g != nil {
		s.member(g, srTick)
	}
}

// own pumps the session's own hub reader until the session ends (nil) or has handed its place
// over to a fan-out group (returned).
func (s *whepSession) own(srTick *time.Ticker) *fanout {
	// Attach only now, so the first thing the viewer gets is the cached GOP from its keyframe.
	hub := s.cam.Hub()
	r := hub.AddReader(ReaderOptions{})
	defer r.Close()
	s.reader.Store(r)
	pace := pacer{rate: catchUpRate, burst: catchUpBurst, last: time.Now(), tokens: catchUpBurst}
	skipping := false // behind by more than MaxLag: skip to the next fresh keyframe
	for {
		select {
		case <-s.done:
			return nil
		case <-r.Done():
			s.close("camera removed")
			return nil
		case now := <-srTick.C:
			s.senderReports(now)
		case u := <-r.C():
			live := u.Received.After(s.joined)
			if live {
				lag := time.Since(u.Received)
				if !skipping && lag > s.w.MaxLag {
					skipping = true
				}
				if skipping {
					if u.Kind == UnitVideo && u.Keyframe && lag < s.w.MaxLag/2 {
						skipping = false
					} else {
						s.lagDropped.Add(uint64(len(u.Packets)))
						continue
					}
				}
			}
			// The cached GOP goes out faster than real time but paced, so that it does not
			// overflow the viewer's socket buffer and lose the keyframe it was sent for.
			if d := pace.wait(unitBytes(u)); d > 0 {
				select {
				case <-time.After(d):
				case <-s.done:
					return nil
				}
			}
			s.sendMu.Lock()
			err := s.writeUnit(u)
			direct := s.dw != nil && !s.firstKey
			s.sendMu.Unlock()
			if err != nil {
				s.close(writeFailed(err))
				return nil
			}
			// caught up on the direct path: hand the place over to a fan-out group
			if live && direct && !skipping && !s.w.DisableFanout && len(r.C()) == 0 {
				if g := s.w.fanoutFor(hub); g != nil && hub.handover(r, func(next uint64) bool {
					s.sendMu.Lock()
					s.group = g
					s.sendMu.Unlock()
					if g.add(s, next) {
						return true
					}
					s.sendMu.Lock()
					s.group = nil
					s.sendMu.Unlock()
					return false
				}) {
					return g
				} else if g != nil {
					g.stopIfEmpty()
				}
			}
		}
	}
}

// member sends the session's sender reports while its group sends its media, until the
// session ends.
func (s *whepSession) member(g *fanout, srTick *time.Ticker) {
	s.inGroup.Store(true)
	defer s.inGroup.Store(false)
	for {
		select {
		case <-s.done:
			g.remove(s)
			return
		case now := <-srTick.C:
			s.senderReports(now)
		}
	}
}

// writeFailed is the end reason of a session whose write failed.
func writeFailed(err error) string {
	if errors.Is(err, errPathChanged) {
		return err.Error()
	}
	return "write failed: " + err.Error()
}

// writeUnit sends one unit to the viewer; s.sendMu is held.
func (s *whepSession) writeUnit(u *Unit) error {
	track, out, sr := s.video, &s.vout, &s.videoSR
	if u.Kind == UnitAudio {
		track, out, sr = s.audio, &s.aout, &s.audioSR
		if track == nil {
			return nil
		}
	}
	for _, p := range u.Packets {
		// per-viewer sequence numbers: what this viewer skipped while behind is not a loss it
		// should ask for, since it resumes at a keyframe
		idx := out.idx
		if s.dw != nil {
			if err := s.dw.write(p, track.ssrc.Load(), uint8(track.pt.Load()), idx); err != nil {
				return err
			}
		} else {
			cp := *p
			cp.SequenceNumber = uint16(idx)
			if err := track.WriteRTP(&cp); err != nil {
				return err
			}
		}
		out.idx++
		sr.packets++
		sr.octets += uint32(len(p.Payload))
		sr.lastTS = p.Timestamp
	}
	sr.lastWall = u.Received
	s.sent.Add(uint64(len(u.Packets)))
	if s.firstKey && u.Kind == UnitVideo && u.Keyframe {
		s.firstKey = false
		s.w.FirstKeyframe.Observe(time.Since(s.joined).Seconds())
	}
	if lat := s.w.Manager.Latency; u.Kind == UnitVideo && lat != nil && u.Received.After(s.joined) {
		lat.Observe(time.Since(u.Received).Seconds())
	}
	return nil
}

// startDirect chooses the session's SRTP sender once the peer is connected, for the rest of
// the session: the direct path when its keys could be derived and the viewer's selected pair is
// on the relay's UDP port, else pion (nil: direct SRTP off, a handshake the relay cannot
// follow, or ICE-TCP).
func (s *whepSession) startDirect() *directWriter {
	if s.direct == nil {
		return nil
	}
	sealer, err := s.secrets.sealer() // wipes the handshake secrets, whichever path is chosen
	s.secrets = nil
	if err == nil && s.direct.dst.Load() == nil {
		if p, perr := s.ice.GetSelectedCandidatePair(); perr == nil && p != nil {
			s.direct.setPair(p)
		}
		if s.direct.dst.Load() == nil {
			err = errors.New("the viewer's selected ICE pair is not on the relay's UDP port")
		}
	}
	if err == nil && (!s.video.bound.Load() || (s.audio != nil && !s.audio.bound.Load())) {
		err = errors.New("a track is not bound to the peer connection")
	}
	if err != nil {
		s.w.Logger.Info("whep session sends through pion", "session", s.id, "reason", err.Error())
		return nil
	}
	s.direct.sealer = sealer
	s.direct.owns.Store(true)
	s.onDirect.Store(true)
	// a pair change between the check above and owns is caught by the first write
	return s.direct
}

// pairChanged follows the ICE agent's choice of candidate pair. A session whose media the relay
// seals itself ends when the new pair is not on the relay's UDP port (see srtpdirect.go), at
// once rather than at its next packet, which may be long in coming from a frozen camera.
func (s *whepSession) pairChanged(p *webrtc.ICECandidatePair) {
	if !s.direct.setPair(p) && s.direct.owns.Load() {
		go s.close(errPathChanged.Error()) // not on the ICE agent's goroutine: close waits for it
	}
}

// outTrack is the numbering of one track's packets to the viewer.
type outTrack struct {
	idx uint64 // SRTP index of the next packet: rollover counter << 16 | sequence number
}

// initialSeq is a track's first sequence number, random as RFC 3550 §5.1 asks.
var initialSeq = func() uint16 { return uint16(mrand.Uint32()) }

// srState is what a sender report tells about one track.
type srState struct {
	ssrc            uint32
	clock           int64 // RTP clock rate
	packets, octets uint32
	lastTS          uint32    // RTP timestamp of the last packet sent
	lastWall        time.Time // when that packet's frame came from the camera
}

func senderSSRC(s *webrtc.RTPSender) uint32 {
	if p := s.GetParameters(); len(p.Encodings) > 0 {
		return uint32(p.Encodings[0].SSRC)
	}
	return 0
}

// senderReports sends an RTCP sender report per track that has sent something (RFC 3550
// §6.4.1): the wall clock now, the RTP timestamp that corresponds to it on the track's
// timeline, and what was sent. Browsers use it to keep audio and video in sync.
func (s *whepSession) senderReports(now time.Time) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	var pkts []rtcp.Packet
	for _, st := range []*srState{&s.videoSR, &s.audioSR} {
		if st.ssrc == 0 || st.packets == 0 {
			continue
		}
		rtpNow := st.lastTS + uint32(now.Sub(st.lastWall).Nanoseconds()*st.clock/int64(time.Second))
		pkts = append(pkts, &rtcp.SenderReport{SSRC: st.ssrc, NTPTime: ntpTime(now), RTPTime: rtpNow,
			PacketCount: st.packets, OctetCount: st.octets})
	}
	if len(pkts) > 0 {
		_ = s.pc.WriteRTCP(pkts) // best effort, like the packets themselves
	}
}

// ntpTime is t as a 64-bit NTP timestamp (seconds since 1900 in the upper half).
func ntpTime(t time.Time) uint64 {
	const unixToNTP = 2208988800
	secs := uint64(t.Unix()) + unixToNTP
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return secs<<32 | frac
}

// Catch-up pacing of a new viewer's GOP burst: 16 Mbit/s with a 192 KiB burst (the IDR of a
// 1080p camera fits, and so does a default 208 KiB socket buffer), above any camera's live
// rate, so live packets are not delayed.
const (
	catchUpRate  = 2 << 20
	catchUpBurst = 192 << 10
)

type pacer struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

// wait takes n bytes from the bucket and returns how long to wait before sending them.
func (p *pacer) wait(n int) time.Duration {
	now := time.Now()
	p.tokens += now.Sub(p.last).Seconds() * p.rate
	if p.tokens > p.burst {
		p.tokens = p.burst
	}
	p.last = now
	p.tokens -= float64(n)
	if p.tokens >= 0 {
		return 0
	}
	return time.Duration(-p.tokens / p.rate * float64(time.Second))
}

func unitBytes(u *Unit) int {
	n := 0
	for _, p := range u.Packets {
		n += len(p.Payload) + 12
	}
	return n
}

func (s *whepSession) close(reason string) {
	s.once.Do(func() {
		s.reason = reason
		close(s.done)
		_ = s.pc.Close()
		w := s.w
		w.mu.Lock()
		delete(w.sessions, s.id)
		w.endedSent += s.sent.Load()
		w.endedDropped += s.droppedPackets()
		w.mu.Unlock()
		w.release(s.viewer.User, s.cam.ID())
		end := time.Now()
		w.Logger.Info("whep session end", "session", s.id, "camera", s.cam.ID(), "user", s.viewer.User, "reason", reason)
		if w.OnSession != nil {
			ev := SessionEvent{Kind: "end", ID: s.id, User: s.viewer.User, Camera: s.cam.ID(),
				RemoteAddr: s.viewer.RemoteAddr, Start: s.start, End: end, Reason: reason,
				PacketsSent: s.sent.Load(), PacketsDropped: s.droppedPackets()}
			if by := s.endedBy.Load(); by != nil {
				ev.EndedBy, ev.EndedByAddr = by.User, by.RemoteAddr
			}
			w.OnSession(ev)
		}
	})
}

// offerInfo is what the relay needs to know from a WHEP offer before handing it to pion.
type offerInfo struct {
	H264  bool
	Audio map[string]bool // mime types offered in audio sections
}

// inspectOffer reads the m= sections and a=rtpmap lines of an SDP offer.
func inspectOffer(sdp string) (offerInfo, error) {
	oi := offerInfo{Audio: map[string]bool{}}
	if len(sdp) > 64<<10 {
		return oi, errors.New("offer larger than 64 KiB")
	}
	if !strings.HasPrefix(sdp, "v=0") {
		return oi, errors.New("not an SDP offer (must start with v=0)")
	}
	media := ""
	sections := 0
	for _, line := range strings.Split(sdp, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, "m="):
			f := strings.Fields(line[2:])
			media = ""
			if len(f) > 0 {
				media = f[0]
			}
			sections++
		case strings.HasPrefix(line, "a=rtpmap:"):
			f := strings.Fields(line[len("a=rtpmap:"):])
			if len(f) < 2 {
				continue
			}
			codec, _, _ := strings.Cut(f[1], "/")
			switch media {
			case "video":
				if strings.EqualFold(codec, "H264") {
					oi.H264 = true
				}
			case "audio":
				oi.Audio["audio/"+strings.ToUpper(codec)] = true
			}
		}
	}
	if sections == 0 {
		return oi, errors.New("offer has no media section")
	}
	return oi, nil
}
