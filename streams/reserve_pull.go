package streams

import (
	"net"
	"sync/atomic"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/prometheus/client_golang/prometheus"
)

// ReservePull is one reader starting to play a camera from the re-serve: who logged in, from
// where, and the headers of its PLAY request (a centre names there the user it pulls for).
type ReservePull struct {
	Camera     string
	User       string // the RTSP username it logged in with ("" without authentication)
	RemoteAddr string
	Header     map[string][]string
}

// reserveMetrics are the re-serve's counters (offsite_rtsp_reserve_*), kept in the Reserve.
type reserveMetrics struct {
	refused   atomic.Uint64 // requests with credentials that did not verify
	denied    atomic.Uint64 // plays refused by OnPull
	pulls     atomic.Uint64 // plays started
	bytesSent atomic.Uint64 // RTP bytes written to readers (each reader counted)
}

// registerMetrics puts the re-serve's metrics into r: playing sessions, plays started,
// refused logins, plays refused by OnPull, and the bytes sent to readers.
func (s *Reserve) registerMetrics(r prometheus.Registerer) error {
	cs := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "offsite_rtsp_reserve_sessions",
			Help: "RTSP re-serve sessions playing a camera now (a centre pulling a camera counts once)."},
			func() float64 { return float64(s.PlayingSessions()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "offsite_rtsp_reserve_pulls_total",
			Help: "RTSP re-serve plays started."}, func() float64 { return float64(s.metrics.pulls.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "offsite_rtsp_reserve_auth_failures_total",
			Help: "RTSP re-serve requests refused because their credentials did not verify (wrong or revoked)."},
			func() float64 { return float64(s.metrics.refused.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "offsite_rtsp_reserve_denied_total",
			Help: "RTSP re-serve plays refused after login (e.g. a centre's on-behalf signature that did not verify)."},
			func() float64 { return float64(s.metrics.denied.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "offsite_rtsp_reserve_sent_bytes_total",
			Help: "RTP bytes the RTSP re-serve wrote to its readers (the upstream of a site towards its centre)."},
			func() float64 { return float64(s.metrics.bytesSent.Load()) }),
	}
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// PlayingSessions is the number of re-serve sessions playing a camera now.
func (s *Reserve) PlayingSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bySess)
}

// refusedAuth counts a request whose credentials did not verify. The first request of a
// client carries none (it learns the challenge from the 401): that one is not counted.
func (s *Reserve) refusedAuth(req *base.Request) {
	if _, ok := req.Header["Authorization"]; ok {
		s.metrics.refused.Add(1)
		s.Logger.Warn("RTSP re-serve login refused", "user", authUser(req), "url", req.URL.String())
	}
}

// checkPull asks OnPull whether a play may start; a refusal is counted.
func (s *Reserve) checkPull(ctx *gortsplib.ServerHandlerOnPlayCtx) error {
	if s.OnPull == nil {
		s.metrics.pulls.Add(1)
		return nil
	}
	p := ReservePull{Camera: cameraFromPath(ctx.Path), User: authUser(ctx.Request), Header: map[string][]string{}}
	if a := ctx.Conn.NetConn().RemoteAddr(); a != nil {
		p.RemoteAddr = a.String()
		if h, _, err := net.SplitHostPort(p.RemoteAddr); err == nil {
			p.RemoteAddr = h
		}
	}
	for k, v := range ctx.Request.Header {
		p.Header[k] = v
	}
	if err := s.OnPull(p); err != nil {
		s.metrics.denied.Add(1)
		s.Logger.Warn("RTSP re-serve play refused", "camera", p.Camera, "user", p.User, "err", err)
		return err
	}
	s.metrics.pulls.Add(1)
	return nil
}
