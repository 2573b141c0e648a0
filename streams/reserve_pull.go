package streams

import (
	"encoding/base64"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

// PullEvent reports a reader's session on the RTSP re-serve — from PLAY until the session
// closes — for the audit log (等级保护: who pulled which camera's video, when, from where).
type PullEvent struct {
	Kind       string // "start" or "end"
	Camera     string
	User       string // the consumer (or RTSP username) the reader authenticated as ("" without credentials)
	RemoteAddr string
	Start      time.Time
	End        time.Time // zero for "start"
	BytesSent  uint64    // "end" only
	// Origin and OnBehalfOf: whom the reader pulls for, as VerifyPull checked it (a centre's
	// id and its user whose viewing opened the pull); "" when nothing was claimed.
	Origin     string
	OnBehalfOf string
}

// pullLog keeps the playing sessions for their end events.
type pullLog struct {
	mu    sync.Mutex
	pulls map[*gortsplib.ServerSession]*PullEvent
}

// pullStarted records a PLAY and reports it to OnPull.
func (s *Reserve) pullStarted(ctx *gortsplib.ServerHandlerOnPlayCtx, consumer string, claim PullClaim) {
	if s.OnPull == nil {
		return
	}
	if consumer == "" {
		consumer = rtspUser(ctx.Request)
	}
	ev := PullEvent{Kind: "start", Camera: cameraFromPath(ctx.Path), User: consumer, Start: time.Now(), Origin: claim.Origin, OnBehalfOf: claim.User}
	if ctx.Conn != nil && ctx.Conn.NetConn() != nil {
		ev.RemoteAddr = ctx.Conn.NetConn().RemoteAddr().String()
	}
	s.pullLog.mu.Lock()
	if s.pullLog.pulls == nil {
		s.pullLog.pulls = map[*gortsplib.ServerSession]*PullEvent{}
	}
	if _, again := s.pullLog.pulls[ctx.Session]; again { // PLAY after PAUSE: one pull
		s.pullLog.mu.Unlock()
		return
	}
	s.pullLog.pulls[ctx.Session] = &ev
	s.pullLog.mu.Unlock()
	s.OnPull(ev)
}

// pullEnded reports the end of a session that played.
func (s *Reserve) pullEnded(ss *gortsplib.ServerSession) {
	s.pullLog.mu.Lock()
	ev := s.pullLog.pulls[ss]
	delete(s.pullLog.pulls, ss)
	s.pullLog.mu.Unlock()
	if ev == nil || s.OnPull == nil {
		return
	}
	end := *ev
	end.Kind, end.End = "end", time.Now()
	if st := ss.Stats(); st != nil {
		end.BytesSent = st.BytesSent
	}
	s.OnPull(end)
}

// rtspUser is the username of a request's Authorization header (Digest or Basic), or "".
func rtspUser(req *base.Request) string {
	if req == nil {
		return ""
	}
	vals := req.Header["Authorization"]
	if len(vals) == 0 {
		return ""
	}
	scheme, rest, _ := strings.Cut(vals[0], " ")
	switch strings.ToLower(scheme) {
	case "basic":
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
		if err != nil {
			return ""
		}
		u, _, _ := strings.Cut(string(b), ":")
		return u
	case "digest":
		for _, part := range strings.Split(rest, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok && strings.EqualFold(k, "username") {
				return strings.Trim(v, `"`)
			}
		}
	}
	return ""
}
