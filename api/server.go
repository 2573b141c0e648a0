// Package api is the gateway's one room for HTTP: it serves /healthz, /metrics and everything
// under /api/v1 on fiber — login and tokens, users, sites, devices, profiles, the audit log and,
// when their components are set, events (with a live SSE stream), alerts, evidence, uplinks,
// telemetry (readings, presence, quarantine), cameras (list, WHEP, snapshots) and the video
// analytics leases and settings — with request ids, structured access logs, panic recovery,
// Prometheus metrics, bearer-token authentication and role checks, described by one OpenAPI
// document. Business rules live in the domain packages (devices/, events/, ingest/, streams/,
// analytics/, firmware-profiles/) and api/auth; this package only translates between HTTP and
// them, through small interfaces declared where they are used.
package api

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/centre"
	"github.com/offsite-gw/offsite/events/uplink"
	profiles "github.com/offsite-gw/offsite/firmware-profiles"
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/store"
)

// ProfileCatalog is what the API reads of the firmware-profile registry.
type ProfileCatalog interface {
	List() []profiles.Profile
	Get(id string) (profiles.Profile, bool)
}

// FirmwareChecker says whether a device's firmware is one its profile supports.
type FirmwareChecker interface {
	CheckFirmware(profileID, version string) profiles.FirmwareCheck
}

// Defaults for zero Server fields.
const (
	DefaultListen      = ":8080"
	DefaultBodyLimit   = 8 << 20
	DefaultReadTimeout = 30 * time.Second
	DefaultIdleTimeout = 120 * time.Second
	// DefaultImportMaxRows bounds one device CSV import.
	DefaultImportMaxRows = 50000
)

// Server is the HTTP API. Fill the fields, call Initialize, then Start; Shutdown stops it.
type Server struct {
	Listen string // host:port; default ":8080"
	// UI, when set, serves every path no API route matches (the dashboard).
	UI       http.Handler
	DB       *store.DB
	Auth     *auth.Service
	Devices  devices.Store
	Profiles ProfileCatalog
	// Firmware, when set, adds firmware_check to every device and enables ?firmware=flagged.
	Firmware FirmwareChecker
	// Audit receives every change made through the API; nil means &audit.Log{DB: DB}.
	Audit *audit.Log
	// Registry receives the HTTP metrics and is served at /metrics. Nil means a fresh
	// registry with the Go and process collectors.
	Registry *prometheus.Registry
	Logger   *slog.Logger
	Version  string
	// TrustedProxies are the addresses or CIDRs of reverse proxies whose ProxyHeader
	// (default X-Forwarded-For) names the client IP. Without them the peer address is used.
	TrustedProxies []string
	ProxyHeader    string
	// BodyLimit bounds request bodies (default 8 MiB, enough for a CSV of many devices).
	BodyLimit int
	// ImportMaxRows bounds the rows of one device CSV import; a larger sheet is answered 413
	// before any work (default DefaultImportMaxRows).
	ImportMaxRows int
	// TLSCert and TLSKey (PEM files), when both are set, make Start serve HTTPS (TLS 1.2 or
	// newer); a reverse proxy in front of plain HTTP stays possible.
	TLSCert string
	TLSKey  string
	// MetricsListen, when set, serves /metrics on this address only (plain HTTP), not on
	// Listen. MetricsToken, when set, requires "Authorization: Bearer MetricsToken" for
	// /metrics wherever it is served. With neither, /metrics is public on Listen (a warning
	// is logged): it names cameras and devices.
	MetricsListen string
	MetricsToken  string
	// ReadTimeout bounds reading one request; IdleTimeout bounds keep-alive connections. There
	// is no write timeout: Server-Sent Events and video signalling stay open.
	ReadTimeout time.Duration
	IdleTimeout time.Duration

	// Events, when set, serves GET|POST /events; with Feed also /events/stream (SSE).
	Events *events.Log
	// Alerts, when set, serves /alerts and the alert lifecycle.
	Alerts *events.Alerts
	Feed   *events.Feed
	// Evidence, when set, serves POST /evidence and the stored files.
	Evidence *events.EvidenceStore
	// EvidenceGate, when set (with Evidence and Events), serves GET /offsite/v1/evidence/{sha256}
	// to the receivers of this node's uplinks, signed with the uplink's secret.
	EvidenceGate *uplink.EvidenceGate
	// RecordingGate, when set (with Recorder), serves the signed
	// /offsite/v1/cameras/{id}/recordings to this site's centre: its peers are the uplinks of
	// kind centre.
	RecordingGate *uplink.EvidenceGate
	// RecordingForward, when set (a centre), forwards the recordings of a site gateway's camera
	// to that gateway instead of answering 409 record_at_site.
	RecordingForward RecordingForwarder
	// GatewayID is this node's id (offsite.yml gateway_id): it names who records a camera.
	GatewayID string
	// EvidenceFetch, when set (a centre), fetches a file not stored here from the site
	// gateway whose event carries it, the first time it is opened.
	EvidenceFetch EvidenceFetcher
	// Uplinks, when set, serves /uplinks and their dead letters.
	Uplinks *uplink.Set
	// Telemetry, when set, serves the readings of a device (latest, series, /telemetry).
	Telemetry TelemetryReader
	// Presence, when set, serves GET /devices/{id}/presence.
	Presence PresenceReader
	// Quarantine, when set, serves GET /ingest/quarantine.
	Quarantine QuarantineReader
	// MaxSeriesPoints bounds the steps of one series (default ingest.DefaultMaxPoints).
	MaxSeriesPoints int
	// Cameras, when set, serves GET /cameras and /cameras/{id} with the relay's status.
	Cameras CameraRelay
	// Video, when set, serves WHEP (/cameras/{id}/whep…) and /cameras/{id}/snapshot.jpg to
	// callers who may watch the camera: a streams.Handler whose Authorize is VideoViewer.
	Video http.Handler
	// Gateways, when set, serves /gateways (enrolment and health of site gateways below this
	// centre), and with Receiver the signed /offsite/v1/events:batch and /offsite/v1/inventory.
	Gateways *devices.GatewayStore
	Receiver *centre.Receiver
	// Leases, when set, serves the analytics workers' leases and the cameras' analytics settings.
	Leases LeaseService
	// RTSPConsumers, when set, serves /rtsp-consumers (admin only): the RTSP re-serve's logins.
	RTSPConsumers RTSPConsumerService
	// RateLimits, when set, serves GET /ingest/rate-limited: devices whose MQTT messages the
	// embedded broker dropped for their rate.
	RateLimits RateLimitReader
	// Recorder, when set, serves POST/GET /cameras/{id}/recordings (manual recordings, 取证录像).
	Recorder CameraRecorder
	// EvidenceLimit bounds one evidence upload (default 16 MiB).
	EvidenceLimit int
	// Heartbeat is the interval of SSE keep-alive comments (default 15 s); a client that went
	// away is noticed at the latest one or two heartbeats later, when a write fails.
	Heartbeat time.Duration

	app       *fiber.App
	uiMounted bool
	metrics   *httpMetrics

	lnMu       sync.Mutex
	ln         net.Listener
	done       chan struct{}
	metricsSrv *http.Server
	metricsLn  net.Listener

	eventMetrics *eventMetrics
	// peerRecordingRefused counts refused signed recording requests, by code.
	peerRecordingRefused *prometheus.CounterVec
	// streams is the parent of every open SSE stream and long request (imports); Shutdown
	// cancels it so they end at once instead of holding the shutdown until its deadline.
	streams     context.Context
	stopStreams context.CancelFunc
	streamWG    sync.WaitGroup
	streamMu    sync.Mutex
	closing     bool
}

// Initialize builds the fiber app with its middleware and routes.
func (s *Server) Initialize() error {
	if s.app != nil {
		return errors.New("api: Initialize called twice")
	}
	if s.Auth == nil {
		return errors.New("api: Server.Auth is required")
	}
	if s.Devices == nil {
		return errors.New("api: Server.Devices is required")
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.Audit == nil {
		if s.DB == nil {
			return errors.New("api: Server.Audit or Server.DB is required")
		}
		s.Audit = &audit.Log{DB: s.DB, Logger: s.Logger}
	}
	if s.Registry == nil {
		s.Registry = prometheus.NewRegistry()
		s.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m, err := newHTTPMetrics(s.Registry)
	if err != nil {
		return err
	}
	s.metrics = m
	if s.eventMetrics, err = newEventMetrics(s.Registry); err != nil {
		return err
	}
	s.streams, s.stopStreams = context.WithCancel(context.Background())
	if _, err := s.openAPIBase(); err != nil {
		return fmt.Errorf("api: embedded openapi.json: %w", err)
	}

	cfg := fiber.Config{
		AppName:               "offsite",
		DisableStartupMessage: true,
		CaseSensitive:         true,
		Immutable:             true, // strings from requests may outlive the handler (audit, SSE)
		BodyLimit:             orDefault(s.BodyLimit, DefaultBodyLimit),
		ReadTimeout:           orDefault(s.ReadTimeout, DefaultReadTimeout),
		IdleTimeout:           orDefault(s.IdleTimeout, DefaultIdleTimeout),
		ErrorHandler:          s.handleError,
		EnableIPValidation:    true,
	}
	if len(s.TrustedProxies) > 0 {
		cfg.EnableTrustedProxyCheck = true
		cfg.TrustedProxies = s.TrustedProxies
		cfg.ProxyHeader = s.ProxyHeader
		if cfg.ProxyHeader == "" {
			cfg.ProxyHeader = fiber.HeaderXForwardedFor
		}
	}
	app := fiber.New(cfg)
	app.Use(s.observe, s.recover)
	s.app = app
	s.routes()
	return nil
}

// untilShutdown returns a context that ends with parent or when Shutdown begins.
func (s *Server) untilShutdown(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	stop := context.AfterFunc(s.streams, cancel)
	return ctx, func() { stop(); cancel() }
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// App returns the fiber app (for app.Test in tests). Valid after Initialize.
func (s *Server) App() *fiber.App { return s.app }

// Start listens on Listen and serves in the background. A bind error is returned here.
func (s *Server) Start() error {
	if s.app == nil {
		return errors.New("api: Start before Initialize")
	}
	if s.UI != nil && !s.uiMounted {
		// Last, so every API route matches first; the UI answers unknown /api paths with a
		// JSON 404 itself.
		s.app.Use(adaptor.HTTPHandler(s.UI))
		s.uiMounted = true
	}
	addr := orDefault(s.Listen, DefaultListen)
	var tlsCfg *tls.Config
	if s.TLSCert != "" || s.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(s.TLSCert, s.TLSKey)
		if err != nil {
			return fmt.Errorf("api: TLS certificate %s and key %s: %w", s.TLSCert, s.TLSKey, err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if err := s.startMetrics(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.stopMetrics(context.Background())
		return fmt.Errorf("api: listen on %s: %w", addr, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	s.lnMu.Lock()
	s.ln = ln
	s.done = make(chan struct{})
	s.lnMu.Unlock()
	go func() {
		defer close(s.done)
		if err := s.app.Listener(ln); err != nil {
			s.Logger.Error("http server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	s.Logger.Info("http api listening", "addr", ln.Addr().String(), "tls", tlsCfg != nil)
	if s.MetricsListen == "" && s.MetricsToken == "" {
		s.Logger.Warn("/metrics is public on the API address and names cameras and devices; set http.metrics_listen or http.metrics_token", "addr", ln.Addr().String())
	}
	return nil
}

// metricsHandler serves the registry, behind MetricsToken when it is set.
func (s *Server) metricsHandler() http.Handler {
	h := promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{})
	if s.MetricsToken == "" {
		return h
	}
	want := []byte("Bearer " + s.MetricsToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"code":"unauthenticated","message":"/metrics needs Authorization: Bearer with the metrics token (http.metrics_token)"}}`))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// startMetrics serves /metrics on MetricsListen, when set.
func (s *Server) startMetrics() error {
	if s.MetricsListen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.MetricsListen)
	if err != nil {
		return fmt.Errorf("api: metrics listen on %s: %w", s.MetricsListen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metricsHandler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: DefaultIdleTimeout}
	s.lnMu.Lock()
	s.metricsSrv, s.metricsLn = srv, ln
	s.lnMu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.Logger.Error("metrics server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	s.Logger.Info("metrics listening", "addr", ln.Addr().String(), "token", s.MetricsToken != "")
	return nil
}

func (s *Server) stopMetrics(ctx context.Context) {
	s.lnMu.Lock()
	srv := s.metricsSrv
	s.lnMu.Unlock()
	if srv != nil {
		_ = srv.Shutdown(ctx)
	}
}

// MetricsAddr is the address /metrics is served on by itself (MetricsListen), or "".
func (s *Server) MetricsAddr() string {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	if s.metricsLn == nil {
		return ""
	}
	return s.metricsLn.Addr().String()
}

// Addr is the address Start bound (useful with Listen ":0"), or "" before Start.
func (s *Server) Addr() string {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Shutdown stops accepting connections and waits for open requests until ctx is done; then
// it closes what is left and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.app == nil {
		return nil
	}
	s.streamMu.Lock()
	s.closing = true
	s.streamMu.Unlock()
	s.stopStreams() // SSE streams never end by themselves
	s.stopMetrics(ctx)
	err := s.app.ShutdownWithContext(ctx)
	s.lnMu.Lock()
	done := s.done
	s.lnMu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
		}
	}
	streamsDone := make(chan struct{})
	go func() { s.streamWG.Wait(); close(streamsDone) }()
	select {
	case <-streamsDone:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}
