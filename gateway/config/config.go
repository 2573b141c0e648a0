// Package config reads the gateway's YAML configuration, applies OFFSITE_* environment
// overrides and validates the result. Every error names where the bad value came from (file
// and line, or environment variable), the key, and what is wrong, so a maintainer can fix it
// without reading code. deploy/offsite.yml is the commented reference; a test loads it.
package config

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/offsite-gw/offsite/analytics/rules"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/uplink"
	profiles "github.com/offsite-gw/offsite/firmware-profiles"
)

// Config is the whole gateway configuration. Keys are the yaml tags; the environment variable
// for a key is OFFSITE_ + the dotted path upper-cased with dots as underscores
// (http.listen → OFFSITE_HTTP_LISTEN).
type Config struct {
	GatewayID string   `yaml:"gateway_id"`
	DataDir   string   `yaml:"data_dir"`
	Log       Log      `yaml:"log"`
	HTTP      HTTP     `yaml:"http"`
	Store     Store    `yaml:"store"`
	Secrets   Secrets  `yaml:"secrets"`
	Auth      Auth     `yaml:"auth"`
	Audit     Audit    `yaml:"audit"`
	Profiles  Profiles `yaml:"profiles"`
	Shutdown  Shutdown `yaml:"shutdown"`

	Ingest   Ingest          `yaml:"ingest"`
	Streams  Streams         `yaml:"streams"`
	Clips    Clips           `yaml:"clips"`
	Rules    rules.Config    `yaml:"rules"`
	Events   events.Config   `yaml:"events"`
	Uplinks  []uplink.Config `yaml:"uplinks"`
	Webhooks []uplink.Config `yaml:"webhooks"`
	Centre   Centre          `yaml:"centre"`
}

// Centre configures this node as a centre for the site gateways enrolled below it
// (docs/contracts.md §7). A node with no enrolled gateway is a site; these keys then do nothing.
type Centre struct {
	// OfflineAfter: a gateway silent this long (while the centre runs) is marked offline and
	// gateway.offline is raised. Sites send a heartbeat every 30 s by default.
	OfflineAfter time.Duration `yaml:"offline_after"`
	// MaxSkew is how far a request's timestamp may be from this clock; older ones are refused.
	MaxSkew time.Duration `yaml:"max_skew"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// HTTP configures the API / dashboard / WHEP listener.
type HTTP struct {
	Listen         string        `yaml:"listen"`
	ReadTimeout    time.Duration `yaml:"read_timeout"`
	BodyLimitMB    int           `yaml:"body_limit_mb"`
	TrustedProxies []string      `yaml:"trusted_proxies"`
	// TLSCert and TLSKey (PEM files), when both are set, make the listener serve HTTPS itself.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// MetricsListen, when set, serves /metrics on this address only (not on listen);
	// MetricsToken, when set, requires "Authorization: Bearer TOKEN" for /metrics.
	MetricsListen string `yaml:"metrics_listen"`
	MetricsToken  string `yaml:"metrics_token"`
	// ImportMaxRows bounds the rows of one device CSV import (413 beyond).
	ImportMaxRows int `yaml:"import_max_rows"`
}

// Audit configures the security audit log.
type Audit struct {
	// Retention: records older than this are removed (0: kept for ever); the hash of the last
	// one removed stays as the chain's anchor, so the chain still verifies.
	Retention time.Duration `yaml:"retention"`
}

// Store selects the metadata database.
type Store struct {
	DSN string `yaml:"dsn"` // "" = SQLite file in data_dir; postgres://… = PostgreSQL
}

// Secrets configures encryption at rest of secrets that must be read back (camera passwords).
type Secrets struct {
	Key     string `yaml:"key"`      // hex: 16 bytes = SM4-GCM, 32 bytes = AES-256-GCM
	KeyFile string `yaml:"key_file"` // file holding the hex key; created (SM4) if missing
}

// Auth configures logins and tokens.
type Auth struct {
	TokenTTL     time.Duration `yaml:"token_ttl"`
	LockoutAfter int           `yaml:"lockout_after"`
	LockoutFor   time.Duration `yaml:"lockout_for"`
}

// Profiles configures where firmware profiles come from.
type Profiles struct {
	Embedded bool   `yaml:"embedded"`
	Dir      string `yaml:"dir"`
}

// Ingest configures sensor data in (ingest/).
type Ingest struct {
	Broker         Broker        `yaml:"broker"`
	External       External      `yaml:"external"`
	QueueSize      int           `yaml:"queue_size"`
	Workers        int           `yaml:"workers"`
	EnqueueTimeout time.Duration `yaml:"enqueue_timeout"`
	MaxFutureSkew  time.Duration `yaml:"max_future_skew"`
	MaxAge         time.Duration `yaml:"max_age"`
	Quarantine     Quarantine    `yaml:"quarantine"`
	Telemetry      Telemetry     `yaml:"telemetry"`
	Presence       Presence      `yaml:"presence"`
	PublishEvents  bool          `yaml:"publish_events"`
	HJ212          HJ212         `yaml:"hj212"`
}

// HJ212 configures the HJ 212-2017 listener for online monitoring stations (docs/contracts.md §8).
type HJ212 struct {
	Listen         string        `yaml:"listen"`          // "" = off; stations usually use :9212
	MaxConnections int           `yaml:"max_connections"` // stations connected at once
	IdleTimeout    time.Duration `yaml:"idle_timeout"`    // close a silent connection
	MaxFailures    int           `yaml:"max_failures"`    // refused frames in a row before the connection is closed
	MaxDataBytes   int           `yaml:"max_data_bytes"`  // longest data segment (the standard's is 1024)
	MaxClockDrift  time.Duration `yaml:"max_clock_drift"` // real-time DataTime further off gets CN 1012
	CalibrateEvery time.Duration `yaml:"calibrate_every"` // at most one CN 1012 per station this often
	ReadBufferKB   int           `yaml:"read_buffer_kb"`  // kernel receive buffer a connection; 0 = the kernel's
}

// Broker configures the embedded MQTT broker.
type Broker struct {
	Listen          string           `yaml:"listen"`
	MaxPacketBytes  int              `yaml:"max_packet_bytes"`
	MaxInflight     int              `yaml:"max_inflight"`
	MaxClients      int              `yaml:"max_clients"`
	ConnectRate     float64          `yaml:"connect_rate"`
	ConnectBurst    int              `yaml:"connect_burst"`
	AuthCache       time.Duration    `yaml:"auth_cache"`
	ServiceAccounts []ServiceAccount `yaml:"service_accounts"`
	// HandshakeTimeout closes a connection without CONNECT; MaxConnsPerAddr bounds open
	// connections per remote IP.
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	MaxConnsPerAddr  int           `yaml:"max_conns_per_addr"`
	RateLimit        RateLimit     `yaml:"rate_limit"`
}

// RateLimit bounds each device's MQTT messages to Multiple × its profile's normal rate.
type RateLimit struct {
	Multiple        float64       `yaml:"multiple"`
	Burst           int           `yaml:"burst"`
	DefaultInterval time.Duration `yaml:"default_interval"`
}

// ServiceAccount is a non-device MQTT login limited to its topic filters.
type ServiceAccount struct {
	Username  string   `yaml:"username"`
	Password  string   `yaml:"password"`
	Publish   []string `yaml:"publish"`
	Subscribe []string `yaml:"subscribe"`
}

// External configures an external broker (Mosquitto, EMQX) instead of the embedded one.
type External struct {
	URL                string   `yaml:"url"`
	ClientID           string   `yaml:"client_id"`
	Username           string   `yaml:"username"`
	Password           string   `yaml:"password"`
	CAFile             string   `yaml:"ca_file"`
	CertFile           string   `yaml:"cert_file"`
	KeyFile            string   `yaml:"key_file"`
	InsecureSkipVerify bool     `yaml:"insecure_skip_verify"`
	SharedGroup        string   `yaml:"shared_group"`
	Topics             []string `yaml:"topics"`
}

// Quarantine bounds what is kept of refused payloads.
type Quarantine struct {
	MaxPayloadBytes int `yaml:"max_payload_bytes"`
	MaxRows         int `yaml:"max_rows"`
}

// Telemetry selects where readings are stored.
type Telemetry struct {
	Backend string          `yaml:"backend"`
	Influx  Influx          `yaml:"influx"`
	SQLite  SQLiteTelemetry `yaml:"sqlite"`
}

// Influx configures InfluxDB (1.8+ v2 API, or 2.x).
type Influx struct {
	URL           string        `yaml:"url"`
	Org           string        `yaml:"org"`
	Bucket        string        `yaml:"bucket"`
	Token         string        `yaml:"token"`
	BatchSize     int           `yaml:"batch_size"`
	FlushInterval time.Duration `yaml:"flush_interval"`
	MaxPending    int           `yaml:"max_pending"`
	SpoolDir      string        `yaml:"spool_dir"`
	SpoolMaxBytes int64         `yaml:"spool_max_bytes"`
	RetryInterval time.Duration `yaml:"retry_interval"`
}

// SQLiteTelemetry configures the embedded telemetry store.
type SQLiteTelemetry struct {
	Path      string        `yaml:"path"`
	Retention time.Duration `yaml:"retention"`
	CacheMB   int           `yaml:"cache_mb"` // the writer's page cache
}

// Presence configures online/offline derivation.
type Presence struct {
	Factor           float64       `yaml:"factor"`
	DefaultHeartbeat time.Duration `yaml:"default_heartbeat"`
}

// Streams configures the video relay (streams/).
type Streams struct {
	StallTimeout   time.Duration `yaml:"stall_timeout"`
	OfflineTimeout time.Duration `yaml:"offline_timeout"`
	BackoffMin     time.Duration `yaml:"backoff_min"`
	BackoffMax     time.Duration `yaml:"backoff_max"`
	IdleTimeout    time.Duration `yaml:"idle_timeout"`
	QueueUnits     int           `yaml:"queue_units"`
	RTSP           StreamsRTSP   `yaml:"rtsp"`
	WebRTC         WebRTC        `yaml:"webrtc"`
	Snapshot       Snapshot      `yaml:"snapshot"`
}

// StreamsRTSP configures the RTSP re-serve for analytics workers and recorders.
type StreamsRTSP struct {
	Listen        string `yaml:"listen"`
	Username      string `yaml:"username"`
	Password      string `yaml:"password"`
	UDPRTPListen  string `yaml:"udp_rtp_listen"`
	UDPRTCPListen string `yaml:"udp_rtcp_listen"`
	// HandshakeTimeout closes a connection that sends no request; MaxConnsPerAddr bounds open
	// connections per remote IP; AuthFailLimit failed logins from one address within
	// AuthFailWindow refuse that address until the window has passed.
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	MaxConnsPerAddr  int           `yaml:"max_conns_per_addr"`
	AuthFailLimit    int           `yaml:"auth_fail_limit"`
	AuthFailWindow   time.Duration `yaml:"auth_fail_window"`
}

// WebRTC configures WHEP egress to browsers.
type WebRTC struct {
	UDPListen         string        `yaml:"udp_listen"`
	TCPListen         string        `yaml:"tcp_listen"`
	PublicIPs         []string      `yaml:"public_ips"`
	DisconnectTimeout time.Duration `yaml:"disconnect_timeout"`
	MaxLag            time.Duration `yaml:"max_lag"`
	MaxSessions       int           `yaml:"max_sessions"`
	// MaxSessionsPerUser and MaxSessionsPerCamera bound concurrent sessions of one user and
	// of one camera; beyond them an offer is answered 429.
	MaxSessionsPerUser   int `yaml:"max_sessions_per_user"`
	MaxSessionsPerCamera int `yaml:"max_sessions_per_camera"`
}

// Snapshot configures JPEG snapshots.
type Snapshot struct {
	FFmpeg string        `yaml:"ffmpeg"`
	Cache  time.Duration `yaml:"cache"`
}

// Shutdown bounds the graceful stop.
type Shutdown struct {
	Timeout time.Duration `yaml:"timeout"`
}

// Default returns the configuration used when a key is not given.
func Default() Config {
	return Config{
		GatewayID: "offsite-gw-01",
		DataDir:   "/var/lib/offsite",
		Log:       Log{Level: "info", Format: "text"},
		HTTP:      HTTP{Listen: ":8080", ReadTimeout: 30 * time.Second, BodyLimitMB: 16, TrustedProxies: []string{}, ImportMaxRows: 50000},
		Secrets:   Secrets{KeyFile: ""},
		Auth:      Auth{TokenTTL: 12 * time.Hour, LockoutAfter: 5, LockoutFor: 15 * time.Minute},
		Audit:     Audit{Retention: 180 * 24 * time.Hour},
		Profiles:  Profiles{Embedded: true},
		Shutdown:  Shutdown{Timeout: 20 * time.Second},
		Ingest: Ingest{
			Broker: Broker{Listen: ":1883", MaxPacketBytes: 263168, MaxInflight: 128, MaxClients: 10000, ConnectRate: 5, ConnectBurst: 20,
				AuthCache: 5 * time.Minute, ServiceAccounts: []ServiceAccount{},
				HandshakeTimeout: 10 * time.Second, MaxConnsPerAddr: 256,
				RateLimit: RateLimit{Multiple: 30, Burst: 200, DefaultInterval: 10 * time.Second}},
			External:       External{ClientID: "offsite-gw-1", Topics: []string{}},
			QueueSize:      65536,
			EnqueueTimeout: 30 * time.Second, MaxFutureSkew: 5 * time.Minute, MaxAge: 168 * time.Hour,
			Quarantine: Quarantine{MaxPayloadBytes: 4096, MaxRows: 100000},
			Telemetry: Telemetry{Backend: "sqlite",
				Influx: Influx{Bucket: "offsite/autogen", BatchSize: 5000, FlushInterval: 250 * time.Millisecond, MaxPending: 200000,
					SpoolMaxBytes: 1 << 30, RetryInterval: 2 * time.Second},
				SQLite: SQLiteTelemetry{Retention: 720 * time.Hour, CacheMB: 64}},
			Presence:      Presence{Factor: 1.0, DefaultHeartbeat: 5 * time.Minute},
			PublishEvents: true,
			HJ212: HJ212{MaxConnections: 10000, IdleTimeout: 15 * time.Minute, MaxFailures: 5, MaxDataBytes: 1024,
				MaxClockDrift: time.Minute, CalibrateEvery: 10 * time.Minute},
		},
		Streams: Streams{StallTimeout: 5 * time.Second, OfflineTimeout: 15 * time.Second, BackoffMin: time.Second,
			BackoffMax: 30 * time.Second, IdleTimeout: 30 * time.Second, QueueUnits: 256,
			RTSP: StreamsRTSP{Listen: ":8554", Username: "offsite", HandshakeTimeout: 10 * time.Second, MaxConnsPerAddr: 32,
				AuthFailLimit: 5, AuthFailWindow: time.Minute},
			WebRTC: WebRTC{UDPListen: ":8189", TCPListen: ":8189", PublicIPs: []string{}, DisconnectTimeout: 5 * time.Second, MaxLag: time.Second, MaxSessions: 1000,
				MaxSessionsPerUser: 8, MaxSessionsPerCamera: 100},
			Snapshot: Snapshot{FFmpeg: "ffmpeg", Cache: time.Second}},
		Clips:    defaultClips(),
		Rules:    rules.Config{Schedules: map[string]rules.Schedule{}, Holidays: rules.Holidays{Off: []string{}, Workdays: []string{}}, Overrides: []rules.Override{}, Cooldown: profiles.Duration(rules.DefaultCooldown)},
		Events:   defaultEvents(),
		Uplinks:  []uplink.Config{},
		Webhooks: []uplink.Config{},
		Centre:   Centre{OfflineAfter: 2 * time.Minute, MaxSkew: 5 * time.Minute},
	}
}

func defaultEvents() events.Config {
	c := events.DefaultConfig()
	c.Alerts.Escalation = []events.EscalationRule{} // empty: events.DefaultEscalation applies
	return c
}

// Problem is one thing wrong with the configuration.
type Problem struct {
	Where  string // "offsite.yml:12" or "env OFFSITE_HTTP_LISTEN" or "default"
	Key    string // dotted path
	Reason string
}

func (p Problem) String() string {
	if p.Where == "" {
		return fmt.Sprintf("%s: %s", p.Key, p.Reason)
	}
	return fmt.Sprintf("%s: %s: %s", p.Where, p.Key, p.Reason)
}

// Error lists every problem found, so one run shows them all.
type Error struct{ Problems []Problem }

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("bad configuration:")
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// validate checks values; where maps a key to where its value came from.
func (c *Config) validate(where func(key string) string) []Problem {
	var ps []Problem
	bad := func(key, format string, args ...any) {
		ps = append(ps, Problem{Where: where(key), Key: key, Reason: fmt.Sprintf(format, args...)})
	}
	if c.GatewayID == "" || len(c.GatewayID) > 64 || strings.ContainsAny(c.GatewayID, " /\t\n") {
		bad("gateway_id", "must be 1–64 characters without spaces or slashes, got %q", c.GatewayID)
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be one of debug, info, warn, error; got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "must be text or json; got %q", c.Log.Format)
	}
	if _, port, err := net.SplitHostPort(c.HTTP.Listen); err != nil || port == "" {
		bad("http.listen", "must be host:port or :port, got %q", c.HTTP.Listen)
	}
	if c.HTTP.ReadTimeout <= 0 {
		bad("http.read_timeout", "must be positive, got %s", c.HTTP.ReadTimeout)
	}
	if c.HTTP.BodyLimitMB < 1 || c.HTTP.BodyLimitMB > 1024 {
		bad("http.body_limit_mb", "must be between 1 and 1024, got %d", c.HTTP.BodyLimitMB)
	}
	for _, p := range c.HTTP.TrustedProxies {
		if net.ParseIP(p) == nil {
			if _, _, err := net.ParseCIDR(p); err != nil {
				bad("http.trusted_proxies", "%q is neither an IP address nor a CIDR range", p)
			}
		}
	}
	if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
		bad("http.tls_cert", "tls_cert and tls_key go together: set both (HTTPS) or neither (plain HTTP)")
	}
	if m := c.HTTP.MetricsListen; m != "" {
		if _, port, err := net.SplitHostPort(m); err != nil || port == "" {
			bad("http.metrics_listen", "must be empty (serve /metrics on http.listen) or host:port, got %q", m)
		} else if m == c.HTTP.Listen {
			bad("http.metrics_listen", "must differ from http.listen (leave it empty to serve /metrics there)")
		}
	}
	if t := c.HTTP.MetricsToken; t != "" && len(t) < 16 {
		bad("http.metrics_token", "must be at least 16 characters, got %d", len(t))
	}
	if c.HTTP.ImportMaxRows < 1 || c.HTTP.ImportMaxRows > 1000000 {
		bad("http.import_max_rows", "must be between 1 and 1000000, got %d", c.HTTP.ImportMaxRows)
	}
	if r := c.Audit.Retention; r != 0 && r < 24*time.Hour {
		bad("audit.retention", "must be 0 (keep for ever) or at least 24h, got %s; the Cybersecurity Law asks for at least 4320h (180 days)", r)
	}
	if d := c.Store.DSN; d != "" && !strings.HasPrefix(d, "postgres://") && !strings.HasPrefix(d, "postgresql://") && !strings.HasPrefix(d, "sqlite:") {
		bad("store.dsn", "must be empty (SQLite in data_dir), sqlite:PATH or postgres://…; got %q", redact(d))
	}
	if k := c.Secrets.Key; k != "" {
		if n := len(k); (n != 32 && n != 64) || strings.Trim(strings.ToLower(k), "0123456789abcdef") != "" {
			bad("secrets.key", "must be 32 hex digits (SM4) or 64 hex digits (AES-256), got %d characters", len(k))
		}
	}
	if c.Auth.TokenTTL < time.Minute || c.Auth.TokenTTL > 30*24*time.Hour {
		bad("auth.token_ttl", "must be between 1m and 720h, got %s", c.Auth.TokenTTL)
	}
	if c.Auth.LockoutAfter < 1 || c.Auth.LockoutAfter > 100 {
		bad("auth.lockout_after", "must be between 1 and 100, got %d", c.Auth.LockoutAfter)
	}
	if c.Auth.LockoutFor < time.Second {
		bad("auth.lockout_for", "must be at least 1s, got %s", c.Auth.LockoutFor)
	}
	if c.Shutdown.Timeout < time.Second || c.Shutdown.Timeout > 10*time.Minute {
		bad("shutdown.timeout", "must be between 1s and 10m, got %s", c.Shutdown.Timeout)
	}
	in := c.Ingest
	if in.External.URL == "" && in.Broker.Listen != "-" {
		if _, port, err := net.SplitHostPort(in.Broker.Listen); err != nil || port == "" {
			bad("ingest.broker.listen", "must be host:port, :port or - (no plain TCP), got %q", in.Broker.Listen)
		}
	}
	if u := in.External.URL; u != "" && !strings.HasPrefix(u, "tcp://") && !strings.HasPrefix(u, "ssl://") && !strings.HasPrefix(u, "tls://") && !strings.HasPrefix(u, "mqtt://") && !strings.HasPrefix(u, "mqtts://") {
		bad("ingest.external.url", "must be tcp://host:1883 or ssl://host:8883, got %q", u)
	}
	if in.Broker.MaxPacketBytes < 1024 || in.Broker.MaxInflight < 1 || in.Broker.MaxInflight > 65535 {
		bad("ingest.broker", "max_packet_bytes must be at least 1024 and max_inflight between 1 and 65535")
	}
	if in.Broker.HandshakeTimeout < 0 || in.Broker.MaxConnsPerAddr < 0 || in.Broker.RateLimit.Multiple < 0 ||
		in.Broker.RateLimit.Burst < 0 || in.Broker.RateLimit.DefaultInterval < 0 {
		bad("ingest.broker", "handshake_timeout, max_conns_per_addr and rate_limit must not be negative (0 turns a bound off)")
	}
	if r := c.Streams.RTSP; r.HandshakeTimeout < 0 || r.MaxConnsPerAddr < 0 || r.AuthFailLimit < 0 || r.AuthFailWindow < 0 {
		bad("streams.rtsp", "handshake_timeout, max_conns_per_addr, auth_fail_limit and auth_fail_window must not be negative (0 turns a bound off)")
	}
	if in.QueueSize < 16 || in.Workers < 0 {
		bad("ingest.queue_size", "must be at least 16 (and workers not negative)")
	}
	switch in.Telemetry.Backend {
	case "sqlite":
	case "influx":
		if !strings.HasPrefix(in.Telemetry.Influx.URL, "http://") && !strings.HasPrefix(in.Telemetry.Influx.URL, "https://") {
			bad("ingest.telemetry.influx.url", "backend influx needs the InfluxDB URL, e.g. http://127.0.0.1:8086; got %q", in.Telemetry.Influx.URL)
		}
		if in.Telemetry.Influx.Bucket == "" {
			bad("ingest.telemetry.influx.bucket", "must not be empty (InfluxDB 1.8: \"database/retention-policy\")")
		}
	default:
		bad("ingest.telemetry.backend", "must be sqlite or influx, got %q", in.Telemetry.Backend)
	}
	if h := in.HJ212; h.Listen != "" {
		if _, port, err := net.SplitHostPort(h.Listen); err != nil || port == "" {
			bad("ingest.hj212.listen", "must be host:port, :port (usually :9212) or empty (off), got %q", h.Listen)
		}
	}
	if h := in.HJ212; h.MaxConnections < 1 || h.MaxFailures < 1 || h.IdleTimeout < time.Second || h.MaxClockDrift < time.Second || h.CalibrateEvery < time.Second {
		bad("ingest.hj212", "max_connections and max_failures must be at least 1, idle_timeout, max_clock_drift and calibrate_every at least 1s")
	}
	if kb := in.HJ212.ReadBufferKB; kb < 0 || kb > 16384 {
		bad("ingest.hj212.read_buffer_kb", "must be between 0 (the kernel's) and 16384, got %d", kb)
	}
	if mb := in.Telemetry.SQLite.CacheMB; mb < 2 || mb > 65536 {
		bad("ingest.telemetry.sqlite.cache_mb", "must be between 2 and 65536, got %d", mb)
	}
	if d := in.HJ212.MaxDataBytes; d < 64 || d > 9999 {
		bad("ingest.hj212.max_data_bytes", "must be between 64 and 9999 (the length field has 4 digits; the standard allows 1024), got %d", d)
	}
	if in.Presence.Factor < 1 {
		bad("ingest.presence.factor", "must be at least 1 (a sensor is offline after factor × its heartbeat of silence), got %v", in.Presence.Factor)
	}
	for _, k := range []struct {
		key  string
		addr string
	}{{"streams.rtsp.listen", c.Streams.RTSP.Listen}, {"streams.webrtc.udp_listen", c.Streams.WebRTC.UDPListen}} {
		if _, port, err := net.SplitHostPort(k.addr); err != nil || port == "" {
			bad(k.key, "must be host:port or :port, got %q", k.addr)
		}
	}
	if t := c.Streams.WebRTC.TCPListen; t != "off" {
		if _, port, err := net.SplitHostPort(t); err != nil || port == "" {
			bad("streams.webrtc.tcp_listen", "must be host:port, :port or off, got %q", t)
		}
	}
	for _, ip := range c.Streams.WebRTC.PublicIPs {
		if net.ParseIP(ip) == nil {
			bad("streams.webrtc.public_ips", "%q is not an IP address", ip)
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"streams.stall_timeout", c.Streams.StallTimeout}, {"streams.offline_timeout", c.Streams.OfflineTimeout},
		{"streams.backoff_min", c.Streams.BackoffMin}, {"streams.backoff_max", c.Streams.BackoffMax},
		{"streams.idle_timeout", c.Streams.IdleTimeout}, {"streams.webrtc.disconnect_timeout", c.Streams.WebRTC.DisconnectTimeout},
		{"streams.webrtc.max_lag", c.Streams.WebRTC.MaxLag}, {"streams.snapshot.cache", c.Streams.Snapshot.Cache}} {
		if d.v <= 0 {
			bad(d.key, "must be positive, got %s", d.v)
		}
	}
	if c.Streams.OfflineTimeout <= c.Streams.StallTimeout {
		bad("streams.offline_timeout", "must be longer than streams.stall_timeout (%s), got %s", c.Streams.StallTimeout, c.Streams.OfflineTimeout)
	}
	if c.Streams.WebRTC.MaxSessionsPerUser < 1 || c.Streams.WebRTC.MaxSessionsPerCamera < 1 {
		bad("streams.webrtc", "max_sessions_per_user and max_sessions_per_camera must be at least 1")
	}
	if c.Streams.QueueUnits < 16 || c.Streams.WebRTC.MaxSessions < 1 {
		bad("streams", "queue_units must be at least 16 and webrtc.max_sessions at least 1")
	}
	c.Clips.validate(bad)
	if err := c.Rules.Validate(); err != nil {
		bad("rules", "%v", err)
	}
	if err := c.Events.Validate(); err != nil {
		bad("events", "%v", err)
	}
	if c.Centre.OfflineAfter < 10*time.Second || c.Centre.MaxSkew < 10*time.Second {
		bad("centre", "offline_after and max_skew must be at least 10s, got %s and %s", c.Centre.OfflineAfter, c.Centre.MaxSkew)
	}
	centres := 0
	for i, u := range c.Uplinks {
		if u.Kind == uplink.KindCentre {
			if centres++; centres > 1 {
				bad(fmt.Sprintf("uplinks[%d].kind", i), "a site reports to one centre; only one uplink may be of kind centre")
			}
		}
	}
	for i, u := range c.Webhooks {
		if u.Kind == uplink.KindCentre {
			bad(fmt.Sprintf("webhooks[%d].kind", i), "a centre is an uplink; put it under uplinks:")
		}
	}
	names := map[string]string{}
	for i, u := range append(append([]uplink.Config{}, c.Uplinks...), c.Webhooks...) {
		key := fmt.Sprintf("uplinks[%d]", i)
		if i >= len(c.Uplinks) {
			key = fmt.Sprintf("webhooks[%d]", i-len(c.Uplinks))
		}
		if err := u.Validate(); err != nil {
			bad(key, "%v", err)
		}
		if prev, dup := names[u.Name]; dup {
			bad(key+".name", "%q is already used by %s; each uplink needs its own name (it names its durable cursor)", u.Name, prev)
		}
		names[u.Name] = key
	}
	return ps
}

func redact(dsn string) string {
	if i := strings.LastIndex(dsn, "@"); i > 0 {
		return "…" + dsn[i:]
	}
	return dsn
}
