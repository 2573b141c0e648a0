package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/offsite-gw/offsite/api"
	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/api/dashboard"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/centre"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/events/uplink"
	profiles "github.com/offsite-gw/offsite/firmware-profiles"
	"github.com/offsite-gw/offsite/gateway/config"
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/lease"
	"github.com/offsite-gw/offsite/internal/store"
)

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML); see deploy/offsite.yml")
	check := fs.Bool("check", false, "validate the configuration and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return usageError{"serve needs --config FILE (see deploy/offsite.yml for every key)"}
	}
	cfg, err := config.Load(*path, os.Environ())
	if err != nil {
		return err
	}
	if *check {
		fmt.Fprintf(stdout, "%s: configuration is valid\n", *path)
		return nil
	}
	logger := newLogger(cfg.Log, stderr)
	g, err := openGateway(ctx, cfg, logger, stdout)
	if err != nil {
		return err
	}
	if err := g.start(); err != nil {
		g.stop()
		return err
	}
	logger.Info("offsite serving", "version", version, "gateway_id", cfg.GatewayID, "http", g.api.Addr(), "store", g.db.Location)
	<-ctx.Done()
	logger.Info("stopping: signal received")
	return g.stop()
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// gateway is the running process: its components in start order. stop closes them in reverse.
type gateway struct {
	cfg      config.Config
	log      *slog.Logger
	reg      *prometheus.Registry
	db       *store.DB
	audit    *audit.Log
	profiles *profiles.Registry
	devices  *devices.SQLStore
	auth     *auth.Service
	events   *events.Log
	alerts   *events.Alerts
	feed     *events.Feed
	evidence *events.EvidenceStore
	uplinks  *uplink.Set
	gateways *devices.GatewayStore
	receiver *centre.Receiver
	video    *video
	clips    *clipper
	sensors  *sensors
	api      *api.Server

	// evidenceFetch brings a child's evidence file to this centre when first opened.
	evidenceFetch *centre.EvidenceFetcher

	// started is set once every listener is open.
	started atomic.Bool

	// raised holds events from callbacks that must not block (camera states, presence,
	// telemetry drops); one goroutine logs them in order.
	raised chan event.Event

	// bg is cancelled at stop; background loops (escalation, retention) run under it.
	bg       context.Context
	cancelBg context.CancelFunc
	bgWG     sync.WaitGroup
	closers  []closer

	// leases give background jobs and uplinks to one instance at a time when several centre
	// instances share PostgreSQL; nil on SQLite (one instance runs everything).
	leases *lease.Keeper
}

func (g *gateway) stopBackground(ctx context.Context) error {
	g.cancelBg()
	done := make(chan struct{})
	go func() { g.bgWG.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// openAlertEvidence tells the evidence sweep which files alerts still open, or closed as 立案,
// refer to, clips included; they are kept up to events.evidence.keep_for whatever their age.
// The set is read at most once a minute; if it cannot be read, everything is kept.
func (g *gateway) openAlertEvidence() func(sha256 string) bool {
	var (
		mu   sync.Mutex
		set  map[string]bool
		read time.Time
		err  error
	)
	return func(sum string) bool {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(read) > time.Minute {
			set, err = g.alerts.KeptEvidence(g.bg)
			read = time.Now()
			if err != nil {
				g.log.Warn("evidence retention keeps every file: open alerts unknown", "err", err)
			}
		}
		return err != nil || set[sum]
	}
}

// raise hands an event to the log without blocking the caller (a camera source, presence, a
// telemetry store). A full queue means the store has been unavailable for thousands of events;
// that is logged as an error rather than stalling video or MQTT.
func (g *gateway) raise(e event.Event) {
	select {
	case g.raised <- e:
	default:
		g.log.Error("event queue full; event not logged", "type", e.Type, "alarm_key", e.AlarmKey)
	}
}

// appendRaised logs raised events in order, enriched with site and device facts, retrying
// while the store is unavailable.
func (g *gateway) appendRaised(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-g.raised:
			if e.OccurredAt.IsZero() {
				e.OccurredAt = time.Now()
			}
			e.ID = events.NewID(e.OccurredAt)
			g.enrich(ctx, &e)
			for attempt := 0; ; attempt++ {
				_, err := g.events.Append(ctx, e)
				if err == nil || ctx.Err() != nil {
					break
				}
				if attempt%10 == 0 {
					g.log.Warn("event not logged yet; retrying", "type", e.Type, "event_id", e.ID, "err", err)
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
			}
		}
	}
}

// enrich fills an event's site, department and device facts from the registry. An event whose
// device is gone is still logged, without them, and the failure is logged.
func (g *gateway) enrich(ctx context.Context, e *event.Event) {
	if err := events.Enrich(ctx, g.devices, e); err != nil {
		g.log.Warn("event logged without site facts", "type", e.Type, "event_id", e.ID, "err", err)
	}
}

// goBackground runs fn until stop cancels its context; stop waits for it.
func (g *gateway) goBackground(fn func(ctx context.Context)) {
	g.bgWG.Add(1)
	go func() {
		defer g.bgWG.Done()
		fn(g.bg)
	}()
}

type closer struct {
	name string
	fn   func(ctx context.Context) error
}

func (g *gateway) onStop(name string, fn func(ctx context.Context) error) {
	g.closers = append(g.closers, closer{name, fn})
}

// openGateway opens the stores and builds every component without listening yet. The admin
// password created on a first start is printed once to out.
func openGateway(ctx context.Context, cfg config.Config, logger *slog.Logger, out io.Writer) (g *gateway, err error) {
	g = &gateway{cfg: cfg, log: logger, reg: prometheus.NewRegistry()}
	g.bg, g.cancelBg = context.WithCancel(context.WithoutCancel(ctx))
	g.raised = make(chan event.Event, 4096)
	defer func() {
		if err != nil {
			g.stop()
		}
	}()
	g.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return g, fmt.Errorf("data_dir: %w", err)
	}
	g.db, err = store.Open(ctx, cfg.Store.DSN, cfg.DataDir, schema...)
	if err != nil {
		return g, err
	}
	g.onStop("store", func(context.Context) error { return g.db.Close() })
	g.openLeases()
	g.audit = &audit.Log{DB: g.db, Logger: logger}
	g.goBackground(func(ctx context.Context) { g.audit.RunRetention(ctx, cfg.Audit.Retention) })

	g.profiles, err = profiles.NewRegistry(cfg.Profiles.Embedded, cfg.Profiles.Dir)
	if err != nil {
		return g, fmt.Errorf("profiles: %w", err)
	}

	key, err := loadSecretKey(cfg, logger)
	if err != nil {
		return g, err
	}
	sealer, err := devices.NewSealer(key)
	if err != nil {
		return g, fmt.Errorf("secrets: %w", err)
	}
	g.devices = &devices.SQLStore{DB: g.db, Sealer: sealer, Profiles: g.profiles}
	g.warnFlaggedFirmware(ctx)

	g.auth = &auth.Service{DB: g.db, Audit: g.audit, TokenTTL: cfg.Auth.TokenTTL,
		LockoutAfter: cfg.Auth.LockoutAfter, LockoutFor: cfg.Auth.LockoutFor}
	pw, created, err := g.auth.EnsureAdmin(ctx)
	if err != nil {
		return g, fmt.Errorf("auth: %w", err)
	}
	if created && out != nil {
		fmt.Fprintf(out, "\nFirst start: created user \"admin\" with password\n\n    %s\n\nIt is shown only this once. Log in and change it.\n\n", pw)
	}

	// Events: the log, alarms and alerts derived from it in the same transaction, the live
	// feed, evidence files, and the uplinks each with its own cursor.
	g.events = &events.Log{DB: g.db, GatewayID: cfg.GatewayID, Logger: logger}
	if err := g.events.Initialize(); err != nil {
		return g, err
	}
	g.alerts = cfg.Events.Alerts.Alerts(g.events)
	if hasCentre(cfg) && !cfg.Events.Alerts.Local {
		// Officers work at the centre, which opens the alerts for this site's events.
		g.alerts.Disabled = true
		logger.Info("alerts are opened at the centre, not here (events.alerts.local: false)")
	}
	if err := g.alerts.Initialize(); err != nil {
		return g, fmt.Errorf("alerts: %w", err)
	}
	g.goBackground(func(ctx context.Context) { g.leases.Run(ctx, leaseEscalation, g.alerts.Run) })
	// Other centre instances' appends reach this one's live readers (PostgreSQL only).
	g.goBackground(func(ctx context.Context) { g.events.Follow(ctx, 0) })
	g.feed = &events.Feed{Log: g.events}
	g.goBackground(g.appendRaised)
	g.evidence = cfg.Events.Evidence.EvidenceStore(cfg.DataDir)
	g.evidence.Keep = g.openAlertEvidence()
	g.goBackground(func(ctx context.Context) {
		g.leases.Run(ctx, leaseRetention, func(ctx context.Context) { g.evidence.Run(ctx, cfg.Events.Evidence.SweepEvery, logger) })
	})
	g.openCentre(sealer)

	if err := g.openSensors(ctx); err != nil {
		return g, fmt.Errorf("sensors: %w", err)
	}
	g.newClipper()
	if err := g.openVideo(ctx); err != nil {
		return g, fmt.Errorf("video: %w", err)
	}
	if err := g.openClips(); err != nil {
		return g, fmt.Errorf("clips: %w", err)
	}
	// Uplinks start after the components the inventory for a centre reads.
	g.uplinks = &uplink.Set{Configs: append(append([]uplink.Config{}, cfg.Uplinks...), cfg.Webhooks...),
		GatewayID: cfg.GatewayID, Log: g.events, Logger: logger, Version: version, Inventory: g.inventory, Lease: g.leases}
	if err := g.uplinks.Initialize(); err != nil {
		return g, fmt.Errorf("uplinks: %w", err)
	}
	g.onStop("uplinks", func(context.Context) error { g.uplinks.Close(); return nil })
	g.reg.MustRegister(g.uplinks.Collector())

	g.api = &api.Server{
		Listen: cfg.HTTP.Listen, ReadTimeout: cfg.HTTP.ReadTimeout, BodyLimit: cfg.HTTP.BodyLimitMB << 20,
		TrustedProxies: cfg.HTTP.TrustedProxies, TLSCert: cfg.HTTP.TLSCert, TLSKey: cfg.HTTP.TLSKey,
		MetricsListen: cfg.HTTP.MetricsListen, MetricsToken: cfg.HTTP.MetricsToken, ImportMaxRows: cfg.HTTP.ImportMaxRows,
		DB: g.db, Auth: g.auth, Devices: g.devices, Profiles: g.profiles, Firmware: g.profiles,
		Audit: g.audit, Registry: g.reg, Logger: logger, Version: version,
		UI:     dashboard.Handler(),
		Events: g.events, Alerts: g.alerts, Feed: g.feed, Evidence: g.evidence, Uplinks: g.uplinks,
		Telemetry: g.sensors.telemetry, Presence: g.sensors.presence, Quarantine: g.sensors.quarantine,
		Cameras: g.video.manager, Video: g.video.handler, Leases: g.video.leases,
		Gateways: g.gateways, Receiver: g.receiver,
		RTSPConsumers: g.video.consumers, RateLimits: g.sensors, Recorder: g.clips,
		EvidenceGate: g.evidenceGate(), EvidenceFetch: g.evidenceFetch,
		RecordingGate: g.recordingGate(), RecordingForward: g.recordingForwarder(), GatewayID: cfg.GatewayID,
	}
	if err := g.api.Initialize(); err != nil {
		return g, fmt.Errorf("api: %w", err)
	}
	// Background loops (rules ticks, escalation, event appenders) stop right after the inputs
	// close and before the components they use drain and the stores close.
	g.onStop("background", g.stopBackground)
	return g, nil
}

// start opens the listeners. Input is taken only once everything behind it is ready.
func (g *gateway) start() error {
	if err := g.sensors.startInput(); err != nil {
		return err
	}
	if err := g.video.startReserve(); err != nil {
		return err
	}
	if err := g.api.Start(); err != nil {
		return fmt.Errorf("http: listen on %s: %w", g.cfg.HTTP.Listen, err)
	}
	g.onStop("http", g.api.Shutdown)
	g.started.Store(true)
	return nil
}

// stop closes components in reverse start order: first the inputs (listeners), then whatever
// drains and flushes, last the stores. The whole stop is bounded by shutdown.timeout.
func (g *gateway) stop() error {
	timeout := g.cfg.Shutdown.Timeout
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	for i := len(g.closers) - 1; i >= 0; i-- {
		c := g.closers[i]
		done := make(chan error, 1)
		go func() { done <- c.fn(ctx) }()
		select {
		case err := <-done:
			if err != nil {
				g.log.Error("stop failed", "component", c.name, "err", err)
				errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
			}
		case <-ctx.Done():
			g.log.Error("stop timed out; abandoning the rest", "component", c.name, "timeout", timeout)
			return fmt.Errorf("stop timed out after %s at %s", timeout, c.name)
		}
	}
	g.closers = nil
	if g.cancelBg != nil {
		g.cancelBg()
	}
	g.log.Info("stopped")
	return errors.Join(errs...)
}

func hasCentre(cfg config.Config) bool {
	for _, u := range cfg.Uplinks {
		if u.Kind == uplink.KindCentre {
			return true
		}
	}
	return false
}

func (g *gateway) warnFlaggedFirmware(ctx context.Context) {
	devs, err := g.devices.ListDevices(ctx, devices.DeviceFilter{})
	if err != nil {
		g.log.Warn("cannot list devices for the firmware check", "err", err)
		return
	}
	for _, d := range devs {
		if d.Profile == "" {
			continue
		}
		if fc := g.profiles.CheckFirmware(d.Profile, d.Firmware); fc.Status != "ok" {
			g.log.Warn("device firmware needs a maintainer", "device", d.ID, "site", d.SiteID, "profile", d.Profile,
				"firmware", d.Firmware, "status", fc.Status, "reason", fc.Reason)
		}
	}
}

// loadSecretKey returns the key that seals camera passwords: secrets.key, else the file
// secrets.key_file, else data_dir/secret.key, created with a new SM4 key if missing.
func loadSecretKey(cfg config.Config, logger *slog.Logger) (string, error) {
	if cfg.Secrets.Key != "" {
		return cfg.Secrets.Key, nil
	}
	path := cfg.Secrets.KeyFile
	explicit := path != ""
	if !explicit {
		path = filepath.Join(cfg.DataDir, "secret.key")
	}
	b, err := os.ReadFile(path)
	if err == nil {
		key := strings.TrimSpace(string(b))
		if k, err := hex.DecodeString(key); err != nil || (len(k) != 16 && len(k) != 32) {
			return "", fmt.Errorf("secrets.key_file %s: must hold 32 or 64 hex digits", path)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("secrets.key_file: %w", err)
	}
	key := devices.GenerateSealerKey()
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("create secret key %s: %w", path, err)
	}
	logger.Warn("created a new SM4 key for secrets at rest; back it up apart from the database", "file", path)
	return key, nil
}
