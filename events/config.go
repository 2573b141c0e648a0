package events

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/offsite-gw/offsite/events/event"
)

// Config is the events: section of the gateway configuration. Uplinks and webhooks have their
// own sections (uplink.Config lists).
type Config struct {
	Evidence EvidenceConfig `yaml:"evidence"`
	Alerts   AlertsConfig   `yaml:"alerts"`
}

// EvidenceConfig configures the evidence file store and its retention.
type EvidenceConfig struct {
	// Dir holds the files; "" = data_dir/evidence.
	Dir string `yaml:"dir"`
	// MaxAge deletes files older than this (default 2160h = 90 days; 0 keeps forever).
	MaxAge time.Duration `yaml:"max_age"`
	// KeepFor is how long evidence of open alerts and of alerts with outcome 立案 (case
	// filed) is kept, whatever MaxAge says (default 8760h = one year; 0: forever).
	KeepFor time.Duration `yaml:"keep_for"`
	// MaxMB deletes the oldest files while the store is larger (default 0 = no limit).
	MaxMB int64 `yaml:"max_mb"`
	// SweepEvery runs the retention sweep (default 1h).
	SweepEvery time.Duration `yaml:"sweep_every"`
}

// AlertsConfig configures alarm de-duplication, routing and escalation.
type AlertsConfig struct {
	// Local makes a site gateway that reports to a centre open alerts of its own too (for
	// staff on site). Without a centre uplink alerts are always opened locally.
	Local bool `yaml:"local"`
	// Cooldown is accepted for old configurations and has no effect: every re-activation
	// while an alert is not closed is an occurrence of that alert.
	Cooldown time.Duration `yaml:"cooldown"`
	// Types route alerts per event type or prefix ending in "." (maintainers, officers, all)
	// and say whether clearing closes them.
	Types              map[string]TypePolicy `yaml:"types"`
	EscalationInterval time.Duration         `yaml:"escalation_interval"`
	Escalation         []EscalationRule      `yaml:"escalation"`
}

// DefaultConfig returns the defaults documented in README.md.
func DefaultConfig() Config {
	return Config{
		Evidence: EvidenceConfig{MaxAge: 90 * 24 * time.Hour, KeepFor: 365 * 24 * time.Hour, SweepEvery: time.Hour},
		Alerts:   AlertsConfig{EscalationInterval: 5 * time.Second, Types: map[string]TypePolicy{}},
	}
}

// EvidenceStore builds the store from the config.
func (c EvidenceConfig) EvidenceStore(dataDir string) *EvidenceStore {
	dir := c.Dir
	if dir == "" {
		dir = filepath.Join(dataDir, "evidence")
	}
	return &EvidenceStore{Dir: dir, MaxAge: c.MaxAge, KeepFor: c.KeepFor, MaxBytes: c.MaxMB << 20}
}

// Validate reports the first problem with the key it concerns.
func (c Config) Validate() error {
	if c.Evidence.MaxAge < 0 || c.Evidence.MaxMB < 0 || c.Evidence.KeepFor < 0 {
		return fmt.Errorf("events.evidence: max_age, keep_for and max_mb must not be negative")
	}
	if err := validateTypes(c.Alerts.Types); err != nil {
		return err
	}
	for i, r := range c.Alerts.Escalation {
		if r.Severity != "" && event.SeverityRank(r.Severity) < 0 {
			return fmt.Errorf("events.alerts.escalation[%d].severity %q: must be info, minor, major or critical", i, r.Severity)
		}
		if len(r.After) == 0 {
			return fmt.Errorf("events.alerts.escalation[%d].after: give at least one duration", i)
		}
		for j, d := range r.After {
			if d <= 0 || j > 0 && d <= r.After[j-1] {
				return fmt.Errorf("events.alerts.escalation[%d].after: durations must be positive and increasing", i)
			}
		}
	}
	return nil
}

// Alerts builds the alerts component from the config (call Initialize on it).
func (c AlertsConfig) Alerts(l *Log) *Alerts {
	return &Alerts{Log: l, Types: c.Types, Escalation: c.Escalation, EscalationInterval: c.EscalationInterval}
}
