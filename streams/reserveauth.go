package streams

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net"
	"regexp"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Refusal reasons of offsite_rtsp_refused_total{reason} (besides connguard's conn_limit and
// handshake_idle).
const (
	RTSPRefusedCredentials = "bad_credentials" // a login that failed (wrong user, secret, revoked, Basic)
	RTSPRefusedThrottled   = "throttled"       // the address failed AuthFailLimit times within AuthFailWindow
)

// errAuthFailed makes gortsplib close the connection after the 401.
var errAuthFailed = errors.New("rtsp re-serve: authentication failed")

// authorize checks a request's Digest login. It returns nil when the request may proceed, or
// the response to send (and an error when the connection must close after it).
func (s *Reserve) authorize(sc *gortsplib.ServerConn, req *base.Request) (*base.Response, error) {
	if len(s.sources) == 0 {
		return nil, nil
	}
	remote := sc.NetConn().RemoteAddr().String()
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	if s.throttled(host) {
		s.refuse(RTSPRefusedThrottled, remote, "")
		return &base.Response{StatusCode: base.StatusUnauthorized}, errAuthFailed
	}
	rc := s.connState(sc)
	if len(req.Header["Authorization"]) == 0 {
		md5alg := headers.AuthAlgorithmMD5
		return &base.Response{StatusCode: base.StatusUnauthorized, Header: base.Header{
			"WWW-Authenticate": headers.Authenticate{Method: headers.AuthMethodDigest, Realm: RTSPRealm, Nonce: rc.nonce, Algorithm: &md5alg}.Marshal(),
		}}, nil
	}
	consumer, ok := s.verifyDigest(req, rc.nonce)
	if !ok {
		s.failed(host)
		s.refuse(RTSPRefusedCredentials, remote, consumer)
		return &base.Response{StatusCode: base.StatusUnauthorized}, errAuthFailed
	}
	s.mu.Lock()
	rc.consumer = consumer
	s.mu.Unlock()
	return nil, nil
}

var reControl = regexp.MustCompile("^(.+/)trackID=[0-9]+$")

// verifyDigest checks an Authorization header (RFC 2617 Digest, MD5, no qop — what the
// challenge offers) against the credential sources. It returns the consumer, or the user
// name tried when the login fails.
func (s *Reserve) verifyDigest(req *base.Request, nonce string) (string, bool) {
	var a headers.Authorization
	if err := a.Unmarshal(req.Header["Authorization"]); err != nil || a.Method != headers.AuthMethodDigest {
		return "", false // Basic is not accepted: it would carry the secret in clear
	}
	if a.Algorithm != nil && *a.Algorithm != headers.AuthAlgorithmMD5 {
		return a.Username, false
	}
	if a.Nonce != nonce || a.Realm != RTSPRealm {
		return a.Username, false
	}
	// The digest covers the URI the client names; it must be this request's (in SETUP, VLC
	// names the stream's base URL instead of the track's).
	if u := req.URL.String(); a.URI != u {
		m := reControl.FindStringSubmatch(u)
		if req.Method != base.Setup || m == nil || a.URI != m[1] {
			return a.Username, false
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, src := range s.sources {
		cred, ok, err := src.RTSPCredential(ctx, a.Username)
		if err != nil {
			s.Logger.Warn("RTSP re-serve: credential lookup failed", "username", a.Username, "err", err)
			return a.Username, false
		}
		if !ok {
			continue
		}
		ha2 := md5.Sum([]byte(string(req.Method) + ":" + a.URI))
		want := md5.Sum([]byte(cred.HA1 + ":" + nonce + ":" + hex.EncodeToString(ha2[:])))
		if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(want[:])), []byte(a.Response)) == 1 {
			return cred.Consumer, true
		}
		return a.Username, false
	}
	return a.Username, false
}

func (s *Reserve) connState(sc *gortsplib.ServerConn) *reserveConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	rc := s.conns[sc]
	if rc == nil {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		rc = &reserveConn{nonce: hex.EncodeToString(b)}
		s.conns[sc] = rc
	}
	return rc
}

// throttled says whether host has used up its failed logins for the current window.
func (s *Reserve) throttled(host string) bool {
	if s.AuthFailLimit < 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fails[host]
	if f == nil {
		return false
	}
	if time.Since(f.since) >= s.AuthFailWindow {
		delete(s.fails, host)
		return false
	}
	return f.n >= s.AuthFailLimit
}

func (s *Reserve) failed(host string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fails[host]
	if f == nil || time.Since(f.since) >= s.AuthFailWindow {
		if len(s.fails) > 100000 {
			clear(s.fails)
		}
		f = &authFails{since: time.Now()}
		s.fails[host] = f
	}
	f.n++
}

func (s *Reserve) refuse(reason, remote, username string) {
	s.refused.WithLabelValues(reason).Inc()
	s.Logger.Warn("RTSP re-serve refused", "reason", reason, "remote", remote, "username", username)
}

// Refused returns the refusals counted for reason (for tests).
func (s *Reserve) Refused(reason string) float64 {
	return counterValue(s.refused.WithLabelValues(reason))
}

// OnRequest implements gortsplib.ServerHandlerOnRequest: the connection has spoken RTSP.
func (s *Reserve) OnRequest(sc *gortsplib.ServerConn, _ *base.Request) {
	if s.guard != nil {
		s.guard.Started(sc.NetConn().RemoteAddr().String())
	}
}

// OnConnClose implements gortsplib.ServerHandlerOnConnClose.
func (s *Reserve) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	s.mu.Lock()
	delete(s.conns, ctx.Conn)
	s.mu.Unlock()
}

// OnPacketsLost, OnDecodeError and OnStreamWriteError implement gortsplib's handlers, so
// that what a reader sends or loses is logged in the structured log (at debug: a reader's
// own trouble) and not through the standard logger, which gortsplib uses otherwise.
func (s *Reserve) OnPacketsLost(ctx *gortsplib.ServerHandlerOnPacketsLostCtx) {
	s.Logger.Debug("RTSP reader lost packets", "lost", ctx.Lost)
}

// OnDecodeError implements gortsplib.ServerHandlerOnDecodeError.
func (s *Reserve) OnDecodeError(ctx *gortsplib.ServerHandlerOnDecodeErrorCtx) {
	s.Logger.Debug("RTSP reader sent a packet that does not decode", "err", ctx.Error.Error())
}

// OnStreamWriteError implements gortsplib.ServerHandlerOnStreamWriteError.
func (s *Reserve) OnStreamWriteError(ctx *gortsplib.ServerHandlerOnStreamWriteErrorCtx) {
	s.Logger.Debug("RTSP reader too slow", "err", ctx.Error.Error())
}

// Disconnect closes every connection logged in as consumer (after its revocation).
func (s *Reserve) Disconnect(consumer string) int {
	s.mu.Lock()
	var conns []*gortsplib.ServerConn
	for sc, rc := range s.conns {
		if rc.consumer == consumer {
			conns = append(conns, sc)
		}
	}
	s.mu.Unlock()
	for _, sc := range conns {
		sc.Close()
	}
	return len(conns)
}

func registerCounterVec(reg prometheus.Registerer, c *prometheus.CounterVec) *prometheus.CounterVec {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing
			}
		}
	}
	return c
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil || m.Counter == nil {
		return 0
	}
	return m.Counter.GetValue()
}
