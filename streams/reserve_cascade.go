package streams

import (
	"net"
	"sync/atomic"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/prometheus/client_golang/prometheus"
)

// RTSPRefusedClaim is the offsite_rtsp_refused_total reason of a PLAY refused by VerifyPull
// (a centre's on-behalf statement that does not verify).
const RTSPRefusedClaim = "bad_claim"

// PullRequest is a logged-in reader asking to play a camera: the consumer it authenticated
// as, from where, and the headers of its PLAY request (a centre names there the user it pulls
// for; cascade).
type PullRequest struct {
	Camera     string
	Consumer   string
	RemoteAddr string
	Header     map[string][]string
}

// PullClaim is whom a reader pulls for, once VerifyPull has checked it: the node it pulls for
// (a centre's id) and that node's user. Zero: nothing claimed.
type PullClaim struct {
	Origin string
	User   string
}

// cascadeStats are the re-serve's session and upstream figures.
type cascadeStats struct {
	sentClosed atomic.Uint64 // bytes sent by sessions that have closed
}

// verifyPull asks VerifyPull about a PLAY; a refusal is answered 403 and counted.
func (s *Reserve) verifyPull(ctx *gortsplib.ServerHandlerOnPlayCtx) (PullClaim, *base.Response, error) {
	if s.VerifyPull == nil {
		return PullClaim{}, nil, nil
	}
	s.mu.Lock()
	consumer := ""
	if rc := s.conns[ctx.Conn]; rc != nil {
		consumer = rc.consumer
	}
	s.mu.Unlock()
	req := PullRequest{Camera: cameraFromPath(ctx.Path), Consumer: consumer, Header: map[string][]string{}}
	if ctx.Conn != nil && ctx.Conn.NetConn() != nil {
		req.RemoteAddr = ctx.Conn.NetConn().RemoteAddr().String()
		if h, _, err := net.SplitHostPort(req.RemoteAddr); err == nil {
			req.RemoteAddr = h
		}
	}
	for k, v := range ctx.Request.Header {
		req.Header[k] = v
	}
	claim, err := s.VerifyPull(req)
	if err != nil {
		s.refuse(RTSPRefusedClaim, req.RemoteAddr, consumer)
		return PullClaim{}, &base.Response{StatusCode: base.StatusForbidden}, err
	}
	return claim, nil, nil
}

// PlayingSessions is the number of re-serve sessions playing a camera now (a centre pulling a
// camera counts once, however many watch it there).
func (s *Reserve) PlayingSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bySess)
}

// sentBytes is what the re-serve has sent its readers: closed sessions and playing ones.
func (s *Reserve) sentBytes() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.stats.sentClosed.Load()
	for ss := range s.bySess {
		n += sessionBytes(ss)
	}
	return n
}

// sessionClosedLocked counts a closing session's bytes (s.mu held, before it leaves bySess).
func (s *Reserve) sessionClosedLocked(ss *gortsplib.ServerSession) {
	if _, ok := s.bySess[ss]; ok {
		s.stats.sentClosed.Add(sessionBytes(ss))
	}
}

func sessionBytes(ss *gortsplib.ServerSession) uint64 {
	if st := ss.Stats(); st != nil {
		return st.BytesSent
	}
	return 0
}

// registerCascadeMetrics exports offsite_rtsp_reserve_sessions and
// offsite_rtsp_reserve_sent_bytes_total.
func (s *Reserve) registerCascadeMetrics() {
	if s.Registerer == nil {
		return
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "offsite_rtsp_reserve_sessions",
			Help: "RTSP re-serve sessions playing a camera now (a centre pulling a camera counts once)."},
			func() float64 { return float64(s.PlayingSessions()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "offsite_rtsp_reserve_sent_bytes_total",
			Help: "Bytes the RTSP re-serve sent its readers (a site's upstream towards its centre)."},
			func() float64 { return float64(s.sentBytes()) }),
	} {
		if err := s.Registerer.Register(c); err != nil {
			s.Logger.Warn("RTSP re-serve metric not registered", "err", err)
		}
	}
}
