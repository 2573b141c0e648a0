package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/offsite-gw/offsite/devices"
	profiles "github.com/offsite-gw/offsite/firmware-profiles"
	"github.com/offsite-gw/offsite/ingest/decode"
)

// DeviceSource lists devices; devices.Store satisfies it.
type DeviceSource interface {
	ListDevices(ctx context.Context, f devices.DeviceFilter) ([]devices.Device, error)
}

// ProfileSource looks profiles up by id; *profiles.Registry satisfies it.
type ProfileSource interface {
	Get(id string) (profiles.Profile, bool)
}

// TopicKind says what a device topic carries.
type TopicKind int

const (
	TopicUp     TopicKind = iota + 1 // readings
	TopicStatus                      // "online" / "offline", retained, also the will
)

// HJ212Topic is the topic the pipeline routes an HJ 212 station's uploads by: stations do not
// speak MQTT, the HJ 212 listener submits each upload's data segment under it.
const HJ212Topic = "hj212/{site}/{device}"

// Sensor is a device ingest knows how to read: a sensor whose profile has MQTT topics, or an
// HJ 212 station (profile decoder kind hj212).
type Sensor struct {
	ID        string
	Site      string
	Profile   profiles.Profile
	Username  string
	MN        string // HJ 212 stations: the MN of the device
	Heartbeat time.Duration
	Up        string // expanded topics
	Status    string
	// Decoder is nil when the profile's decoder cannot be built; DecoderErr says why.
	Decoder    decode.Decoder
	DecoderErr error
}

// Route is what a topic leads to.
type Route struct {
	Kind   TopicKind
	Sensor *Sensor
}

// Directory maps topics and MQTT usernames to sensors, from the device store and the
// profiles. It reloads every RefreshInterval and on Refresh, so devices imported in bulk are
// routed, authorised and watched without a restart. Lookups are safe for concurrent use.
type Directory struct {
	Devices  DeviceSource
	Profiles ProfileSource
	// RefreshInterval is how often the device list is reloaded (default 30s; <0 disables).
	RefreshInterval time.Duration
	// MaxPayload is passed to the decoders (default decode.DefaultMaxSize).
	MaxPayload int
	Logger     *slog.Logger

	mu       sync.RWMutex
	byTopic  map[string]Route
	byID     map[string]*Sensor
	byUser   map[string]*Sensor
	byMN     map[string]*Sensor
	version  uint64
	decoders map[string]decoderEntry // by profile id, rebuilt only when a profile changes

	refreshMu sync.Mutex
	cancel    context.CancelFunc
	done      chan struct{}
}

type decoderEntry struct {
	p   profiles.Profile
	dec decode.Decoder
	err error
}

// Initialize loads the devices once and starts the periodic reload.
func (d *Directory) Initialize() error {
	if d.Devices == nil || d.Profiles == nil {
		return errors.New("ingest: Directory needs Devices and Profiles")
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.RefreshInterval == 0 {
		d.RefreshInterval = 30 * time.Second
	}
	if d.MaxPayload == 0 {
		d.MaxPayload = decode.DefaultMaxSize
	}
	if err := d.Refresh(context.Background()); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel, d.done = cancel, make(chan struct{})
	go d.run(ctx)
	return nil
}

// Close stops the periodic reload.
func (d *Directory) Close() {
	if d.cancel != nil {
		d.cancel()
		<-d.done
	}
}

func (d *Directory) run(ctx context.Context) {
	defer close(d.done)
	if d.RefreshInterval < 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(d.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := d.Refresh(ctx); err != nil && ctx.Err() == nil {
				d.Logger.Warn("ingest: reload devices", "err", err)
			}
		}
	}
}

// Refresh reloads the sensors now. Call it after devices were created, changed or imported.
func (d *Directory) Refresh(ctx context.Context) error {
	d.refreshMu.Lock()
	defer d.refreshMu.Unlock()
	devs, err := d.Devices.ListDevices(ctx, devices.DeviceFilter{Kind: devices.KindSensor})
	if err != nil {
		return fmt.Errorf("ingest: list sensors: %w", err)
	}
	d.mu.RLock()
	oldDec := d.decoders
	d.mu.RUnlock()
	decs := map[string]decoderEntry{}
	byTopic := make(map[string]Route, 2*len(devs))
	byID := make(map[string]*Sensor, len(devs))
	byUser := make(map[string]*Sensor, len(devs))
	byMN := map[string]*Sensor{}
	for _, dv := range devs {
		p, ok := d.Profiles.Get(dv.Profile)
		if !ok {
			continue
		}
		up := ""
		switch {
		case p.Decoder != nil && p.Decoder.Kind == "hj212":
			up = HJ212Topic
		case p.MQTT != nil:
			up = p.MQTT.Up
		}
		if up == "" {
			continue
		}
		de, ok := decs[p.ID]
		if !ok {
			if old, had := oldDec[p.ID]; had && sameProfile(old.p, p) {
				de = old
			} else {
				de = decoderEntry{p: p}
				de.dec, de.err = decode.New(p, decode.WithMaxSize(d.MaxPayload))
				if de.err != nil {
					d.Logger.Error("ingest: profile decoder unusable; its messages are quarantined", "profile", p.ID, "err", de.err)
				}
			}
			decs[p.ID] = de
		}
		s := &Sensor{ID: dv.ID, Site: dv.SiteID, Profile: de.p, Heartbeat: time.Duration(p.Heartbeat),
			Up: ExpandTopic(up, dv.SiteID, dv.ID), Decoder: de.dec, DecoderErr: de.err}
		if up == HJ212Topic && dv.HJ212 != nil && dv.HJ212.MN != "" {
			s.MN = dv.HJ212.MN
			byMN[s.MN] = s
		}
		if p.MQTT != nil && p.MQTT.Status != "" {
			s.Status = ExpandTopic(p.MQTT.Status, dv.SiteID, dv.ID)
			byTopic[s.Status] = Route{Kind: TopicStatus, Sensor: s}
		}
		byTopic[s.Up] = Route{Kind: TopicUp, Sensor: s}
		byID[s.ID] = s
		if dv.MQTT != nil && dv.MQTT.Username != "" {
			s.Username = dv.MQTT.Username
			byUser[s.Username] = s
		}
	}
	d.mu.Lock()
	d.byTopic, d.byID, d.byUser, d.byMN, d.decoders = byTopic, byID, byUser, byMN, decs
	d.version++
	d.mu.Unlock()
	return nil
}

// sameProfile reports whether a cached decoder still fits: profiles are immutable values in a
// registry, so id, source and decoder identity are enough.
func sameProfile(a, b profiles.Profile) bool {
	return a.ID == b.ID && a.Source == b.Source && fmt.Sprint(a.Decoder) == fmt.Sprint(b.Decoder) &&
		fmt.Sprint(a.Metrics) == fmt.Sprint(b.Metrics)
}

// Lookup returns where topic leads.
func (d *Directory) Lookup(topic string) (Route, bool) {
	d.mu.RLock()
	r, ok := d.byTopic[topic]
	d.mu.RUnlock()
	return r, ok
}

// ByUsername returns the sensor logging in as username.
func (d *Directory) ByUsername(username string) (*Sensor, bool) {
	d.mu.RLock()
	s, ok := d.byUser[username]
	d.mu.RUnlock()
	return s, ok
}

// ByMN returns the HJ 212 station whose MN is mn.
func (d *Directory) ByMN(mn string) (*Sensor, bool) {
	d.mu.RLock()
	s, ok := d.byMN[mn]
	d.mu.RUnlock()
	return s, ok
}

// Sensor returns the sensor with device id.
func (d *Directory) Sensor(id string) (*Sensor, bool) {
	d.mu.RLock()
	s, ok := d.byID[id]
	d.mu.RUnlock()
	return s, ok
}

// Sensors returns every sensor and the version of the list (it grows on each reload).
func (d *Directory) Sensors() ([]*Sensor, uint64) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]*Sensor, 0, len(d.byID))
	for _, s := range d.byID {
		out = append(out, s)
	}
	return out, d.version
}

// Filters returns the MQTT filters that cover every sensor topic (one per distinct template).
func (d *Directory) Filters() []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	seen := map[string]bool{}
	var out []string
	for _, de := range d.decoders {
		if de.p.MQTT == nil {
			continue // HJ 212 stations come over TCP
		}
		for _, t := range []string{de.p.MQTT.Up, de.p.MQTT.Status} {
			if t == "" {
				continue
			}
			if f := TopicFilter(t); !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	return out
}

// Describe returns the site of device and the unit its profile gives metric ("" if unknown),
// for stores that do not keep them with each reading (InfluxStore.Describe).
func (d *Directory) Describe(device, metric string) (site, unit string) {
	s, ok := d.Sensor(device)
	if !ok {
		return "", ""
	}
	m, _ := s.Profile.Metric(metric)
	return s.Site, m.Unit
}
