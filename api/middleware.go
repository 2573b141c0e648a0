package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/errs"
)

type ctxKey int

const requestIDKey ctxKey = iota

// Locals keys.
const (
	localUser   = "offsite.user"
	localToken  = "offsite.token"
	localLogger = "offsite.logger"
	// localErrCode is the code of the error answer written (for the audit of refusals).
	localErrCode   = "offsite.errcode"
	localErrDetail = "offsite.errdetail"
)

// HeaderRequestID carries the request id in both directions.
const HeaderRequestID = "X-Request-ID"

// RequestID returns the request id stored in ctx by the API (c.UserContext()), or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// Logger returns the request's logger: the server's logger with request_id and, once
// authenticated, user.
func Logger(c *fiber.Ctx) *slog.Logger {
	if l, ok := c.Locals(localLogger).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// UserOf returns the authenticated caller. It is false only on routes outside /api/v1 and on
// login.
func UserOf(c *fiber.Ctx) (auth.User, bool) {
	u, ok := c.Locals(localUser).(auth.User)
	return u, ok
}

// validRequestID accepts a caller's id if it is short and plain, so it cannot inject into logs.
func validRequestID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "offsite_http_requests_total",
			Help: "HTTP requests served, by route pattern, method and status code.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "offsite_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route pattern and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
	}
	var err error
	if m.requests, err = register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	return m, nil
}

// register adds c to reg, or returns the collector already there (two servers sharing one
// registry count into the same series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("api: register metric: %w", err)
	}
	return c, nil
}

// observe is the outermost middleware: it assigns the request id, turns a handler's error into
// its response (so the status is known here), and then logs and counts the request.
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	id := c.Get(HeaderRequestID)
	if !validRequestID(id) {
		id = newRequestID()
	}
	c.Set(HeaderRequestID, id)
	c.SetUserContext(context.WithValue(c.UserContext(), requestIDKey, id))
	log := s.Logger.With("request_id", id)
	c.Locals(localLogger, log)

	if err := c.Next(); err != nil {
		if herr := s.handleError(c, err); herr != nil {
			c.Status(fiber.StatusInternalServerError)
		}
	}

	status := c.Response().StatusCode()
	if status == fiber.StatusForbidden {
		// Every refused attempt is audited (等级保护), reads included, whoever refused it:
		// a role check, a scope check, or a component behind the API (the video relay).
		code, _ := c.Locals(localErrCode).(string)
		if d, _ := c.Locals(localErrDetail).(string); d != "" {
			code = strings.TrimSpace(code + " " + d)
		}
		s.record(c, audit.Entry{Action: "access.denied", Target: c.Method() + " " + c.Path(), Result: "denied", Detail: code})
	}
	route := c.Route().Path // the pattern, never the raw path: bounded label values
	method := c.Method()
	elapsed := time.Since(start)
	s.metrics.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	s.metrics.duration.WithLabelValues(route, method).Observe(elapsed.Seconds())

	size := 0
	if !c.Response().IsBodyStream() { // Body() would drain a stream (SSE) into memory first
		size = len(c.Response().Body())
	}
	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelError
	case status < 400 && (method == fiber.MethodGet || method == fiber.MethodHead || routine(route)):
		// Reads and machine heartbeats succeed all day long (a wall polls, workers renew
		// leases every few seconds): at debug, so the log shows changes and failures.
		level = slog.LevelDebug
	}
	attrs := []any{"method", method, "path", c.Path(), "route", route, "status", status,
		"duration_ms", float64(elapsed.Microseconds()) / 1000, "ip", c.IP(), "bytes", size}
	if u, ok := UserOf(c); ok {
		attrs = append(attrs, "user", u.Username)
	}
	Logger(c).Log(c.UserContext(), level, "http request", attrs...) // path only: ?token= must not reach logs
	return nil
}

// routine reports machine-to-machine calls that repeat every few seconds, or many times a
// second (site gateways posting event batches to their centre).
func routine(route string) bool {
	return strings.HasPrefix(route, "/api/v1/analytics/leases") || strings.HasPrefix(route, "/offsite/v1/")
}

// recover turns a panic in a handler into a 500 answer and a logged stack; the server keeps
// serving.
func (s *Server) recover(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			Logger(c).Error("panic in handler", "panic", fmt.Sprint(r), "path", c.Path(), "stack", string(debug.Stack()))
			err = errs.E(errs.KindInternal, "internal", "panic: %v", r)
		}
	}()
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	return c.Next()
}

// bearerToken returns the token of an Authorization: Bearer header, or "".
func bearerToken(c *fiber.Ctx) string {
	h := c.Get(fiber.HeaderAuthorization)
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// queryTokenAllowed says where ?token= is accepted: requests browsers make without headers
// (<img>, <video>, EventSource — all GET) and WHEP signalling.
func queryTokenAllowed(c *fiber.Ctx) bool {
	m := c.Method()
	return m == fiber.MethodGet || m == fiber.MethodHead || strings.Contains(c.Path(), "/whep")
}

// authenticate guards /api/v1: every request needs a valid token.
func (s *Server) authenticate(c *fiber.Ctx) error {
	tok := bearerToken(c)
	if tok == "" && queryTokenAllowed(c) {
		tok = c.Query("token")
	}
	if tok == "" {
		return errs.E(errs.KindUnauthorized, "unauthenticated", "log in first and send the token as Authorization: Bearer TOKEN")
	}
	u, err := s.Auth.Authenticate(c.UserContext(), tok)
	if err != nil {
		return err
	}
	c.Locals(localUser, u)
	c.Locals(localToken, tok)
	c.Locals(localLogger, Logger(c).With("user", u.Username))
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Next()
}

// Require allows the route to roles that have permission p (see auth.Allowed).
func (s *Server) Require(p auth.Permission) fiber.Handler {
	return func(c *fiber.Ctx) error {
		u, ok := UserOf(c)
		if !ok {
			return errs.E(errs.KindUnauthorized, "unauthenticated", "log in first")
		}
		if !auth.Allowed(u.Role, p) {
			return s.deny(c, u, string(p))
		}
		return c.Next()
	}
}

// RequireRole allows the route to the listed roles only.
func (s *Server) RequireRole(roles ...auth.Role) fiber.Handler {
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = string(r)
	}
	want := strings.Join(names, ", ")
	return func(c *fiber.Ctx) error {
		u, ok := UserOf(c)
		if !ok {
			return errs.E(errs.KindUnauthorized, "unauthenticated", "log in first")
		}
		if !slices.Contains(roles, u.Role) {
			return s.deny(c, u, "role "+want)
		}
		return c.Next()
	}
}

// deny answers 403 (audited by observe, like every 403).
func (s *Server) deny(c *fiber.Ctx, u auth.User, needed string) error {
	c.Locals(localErrDetail, "needs "+needed)
	return errs.E(errs.KindForbidden, "forbidden", "role %s may not do this (needs %s)", u.Role, needed)
}

func (s *Server) record(c *fiber.Ctx, e audit.Entry) {
	if u, ok := UserOf(c); ok {
		e.Actor, e.Role = u.Username, string(u.Role)
	}
	e.IP = c.IP()
	if s.Auth != nil && s.Auth.Now != nil {
		e.At = s.Auth.Now()
	}
	_ = s.Audit.Record(c.UserContext(), e) // Record logs its own failure
}

// Record writes one audit entry for the caller of c: action (e.g. "camera.view"), target (the
// object's id), result "ok" when err is nil, else "denied" or "failed" with the error code in
// the detail.
func (s *Server) Record(c *fiber.Ctx, action, target string, err error, detail string) {
	e := audit.Entry{Action: action, Target: target, Result: "ok", Detail: detail}
	if err != nil {
		e.Result = "failed"
		if k := errs.KindOf(err); k == errs.KindForbidden || k == errs.KindUnauthorized {
			e.Result = "denied"
		}
		e.Detail = strings.TrimSpace(errs.CodeOf(err) + " " + detail)
	}
	s.record(c, e)
}
