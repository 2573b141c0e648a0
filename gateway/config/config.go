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
	profiles "github.com/offsite-gw/offsite/firmware-profiles"
	"github.com/offsite-gw/offsite/gateway/events"
	"github.com/offsite-gw/offsite/gateway/uplink"
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
	Profiles  Profiles `yaml:"profiles"`
	Shutdown  Shutdown `yaml:"shutdown"`

	Rules    rules.Config    `yaml:"rules"`
	Events   events.Config   `yaml:"events"`
	Uplinks  []uplink.Config `yaml:"uplinks"`
	Webhooks []uplink.Config `yaml:"webhooks"`
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
		HTTP:      HTTP{Listen: ":8080", ReadTimeout: 30 * time.Second, BodyLimitMB: 16, TrustedProxies: []string{}},
		Secrets:   Secrets{KeyFile: ""},
		Auth:      Auth{TokenTTL: 12 * time.Hour, LockoutAfter: 5, LockoutFor: 15 * time.Minute},
		Profiles:  Profiles{Embedded: true},
		Shutdown:  Shutdown{Timeout: 20 * time.Second},
		Rules:     rules.Config{Schedules: map[string]rules.Schedule{}, Holidays: rules.Holidays{Off: []string{}, Workdays: []string{}}, Overrides: []rules.Override{}, Cooldown: profiles.Duration(rules.DefaultCooldown)},
		Events:    defaultEvents(),
		Uplinks:   []uplink.Config{},
		Webhooks:  []uplink.Config{},
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
	if err := c.Rules.Validate(); err != nil {
		bad("rules", "%v", err)
	}
	if err := c.Events.Validate(); err != nil {
		bad("events", "%v", err)
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
