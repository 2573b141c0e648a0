package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/offsite-gw/offsite/internal/store"
)

// PresenceChange is a device going online or offline.
type PresenceChange struct {
	Device   string    `json:"device"`
	Site     string    `json:"site"`
	Online   bool      `json:"online"`
	Reason   string    `json:"reason"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	At       time.Time `json:"at"`
}

// DeviceState is what Presence knows of one sensor.
type DeviceState struct {
	Device   string    `json:"device"`
	Site     string    `json:"site"`
	State    string    `json:"state"` // unknown (watched, no data yet), online, offline
	Since    time.Time `json:"since"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	Reason   string    `json:"reason,omitempty"`
	// ReasonZH is Reason as a Chinese user reads it (ExplainPresence).
	ReasonZH string `json:"reason_zh,omitempty"`
}

const (
	StateUnknown = "unknown"
	StateOnline  = "online"
	StateOffline = "offline"
)

// Presence derives online/offline from data: a sensor is offline when no message came for
// Factor × its profile's heartbeat, or when its status topic says so (the MQTT will); it is
// online again with the next message. Nobody sets the state by hand. Every sensor of the
// Directory is watched from the moment it appears there, so a sensor that was imported but
// never sends goes offline after one heartbeat.
type Presence struct {
	Directory *Directory
	// Factor multiplies the profile heartbeat (default 1: the profile's heartbeat already is
	// the longest normal gap).
	Factor float64
	// DefaultHeartbeat is used for profiles without one (default 5m).
	DefaultHeartbeat time.Duration
	// Tick is how often silence is checked (default 1s).
	Tick time.Duration
	// OnChange receives each transition (the gateway logs device.offline / device.online).
	// Transitions from unknown to online are not reported: they happen at every start.
	// It is called without locks held, from the checker or an ingest worker: do not block.
	OnChange func(PresenceChange)
	// DB, if set, keeps each sensor's state and last data across restarts (table
	// ingest_presence, written every SaveInterval and at Close): a sensor known to be offline
	// stays offline without a second device.offline, and one that was online gets a full
	// heartbeat from the restart before it is declared silent — the gateway's own downtime is
	// not the sensor's fault.
	DB *store.DB
	// SaveInterval is how often changed states are written to DB (default 10s).
	SaveInterval time.Duration
	Now          func() time.Time
	Logger       *slog.Logger

	mu      sync.Mutex
	devs    map[string]*presenceEntry
	removed []string // forgotten sensors whose saved rows are to be deleted
	version uint64
	stop    chan struct{}
	done    chan struct{}
}

type presenceEntry struct {
	site     string
	hb       time.Duration
	state    string
	since    time.Time
	lastSeen time.Time
	reason   string
	grace    time.Time // restored online at this start: silence counts from here at the earliest
	dirty    bool      // changed since the last save
}

// Initialize starts watching every sensor of the Directory.
func (p *Presence) Initialize() error {
	if p.Directory == nil {
		return errors.New("ingest: Presence.Directory is required")
	}
	if p.Factor <= 0 {
		p.Factor = 1
	}
	if p.DefaultHeartbeat <= 0 {
		p.DefaultHeartbeat = 5 * time.Minute
	}
	if p.Tick <= 0 {
		p.Tick = time.Second
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.SaveInterval <= 0 {
		p.SaveInterval = 10 * time.Second
	}
	p.devs = map[string]*presenceEntry{}
	now := p.Now()
	p.sync(now)
	if err := p.restore(now); err != nil {
		return err
	}
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go p.run()
	return nil
}

// Close stops the checker and saves the states.
func (p *Presence) Close() {
	if p.stop != nil {
		close(p.stop)
		<-p.done
		p.stop = nil
		if err := p.Save(context.Background()); err != nil {
			p.Logger.Warn("ingest: presence not saved at stop", "err", err)
		}
	}
}

func (p *Presence) run() {
	defer close(p.done)
	t := time.NewTicker(p.Tick)
	defer t.Stop()
	lastSave := time.Now()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.Check()
			if time.Since(lastSave) >= p.SaveInterval {
				lastSave = time.Now()
				if err := p.Save(context.Background()); err != nil {
					p.Logger.Warn("ingest: presence not saved; retrying", "err", err)
				}
			}
		}
	}
}

// restore applies the saved states of the sensors being watched.
func (p *Presence) restore(now time.Time) error {
	if p.DB == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := p.DB.Query(ctx, `SELECT device_id, state, since, last_seen, reason FROM ingest_presence`)
	if err != nil {
		return fmt.Errorf("ingest: load presence: %w", err)
	}
	defer rows.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for rows.Next() {
		var id, state, reason string
		var since, seen int64
		if err := rows.Scan(&id, &state, &since, &seen, &reason); err != nil {
			return fmt.Errorf("ingest: load presence: %w", err)
		}
		e, ok := p.devs[id]
		if !ok {
			p.removed = append(p.removed, id)
			continue
		}
		if seen > 0 {
			e.lastSeen = time.UnixMilli(seen)
		}
		switch state {
		case StateOnline:
			e.state, e.since, e.reason, e.grace = StateOnline, time.UnixMilli(since), reason, now
		case StateOffline:
			e.state, e.since, e.reason = StateOffline, time.UnixMilli(since), reason
		default:
			continue
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("ingest: load presence: %w", err)
	}
	p.Logger.Info("ingest: presence restored", "sensors", n)
	return nil
}

// Save writes the states changed since the last save (the checker calls it every
// SaveInterval, Close at the end).
func (p *Presence) Save(ctx context.Context) error {
	if p.DB == nil {
		return nil
	}
	type row struct {
		id, state, reason string
		since, seen       int64
	}
	p.mu.Lock()
	var rows []row
	for id, e := range p.devs {
		if e.dirty && e.state != StateUnknown {
			rows = append(rows, row{id, e.state, e.reason, e.since.UnixMilli(), msOrZero(e.lastSeen)})
			e.dirty = false
		}
	}
	removed := p.removed
	p.removed = nil
	p.mu.Unlock()
	if len(rows) == 0 && len(removed) == 0 {
		return nil
	}
	err := p.DB.InTx(ctx, func(tx *store.Tx) error {
		for _, r := range rows {
			if _, err := tx.Exec(ctx, `INSERT INTO ingest_presence (device_id, state, since, last_seen, reason) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (device_id) DO UPDATE SET state = excluded.state, since = excluded.since,
				last_seen = excluded.last_seen, reason = excluded.reason`, r.id, r.state, r.since, r.seen, r.reason); err != nil {
				return err
			}
		}
		for _, id := range removed {
			if _, err := tx.Exec(ctx, `DELETE FROM ingest_presence WHERE device_id = ?`, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// keep them for the next attempt
		p.mu.Lock()
		for _, r := range rows {
			if e, ok := p.devs[r.id]; ok {
				e.dirty = true
			}
		}
		p.removed = append(p.removed, removed...)
		p.mu.Unlock()
		return fmt.Errorf("ingest: save presence: %w", err)
	}
	return nil
}

func msOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// sync adds sensors new in the Directory and forgets removed ones.
func (p *Presence) sync(now time.Time) {
	sensors, v := p.Directory.Sensors()
	p.mu.Lock()
	defer p.mu.Unlock()
	if v == p.version && len(p.devs) > 0 {
		return
	}
	p.version = v
	keep := make(map[string]bool, len(sensors))
	for _, s := range sensors {
		keep[s.ID] = true
		hb := s.Heartbeat
		if hb <= 0 {
			hb = p.DefaultHeartbeat
		}
		hb = time.Duration(float64(hb) * p.Factor)
		if e, ok := p.devs[s.ID]; ok {
			e.site, e.hb = s.Site, hb
			continue
		}
		p.devs[s.ID] = &presenceEntry{site: s.Site, hb: hb, state: StateUnknown, since: now}
	}
	for id := range p.devs {
		if !keep[id] {
			delete(p.devs, id)
			p.removed = append(p.removed, id)
		}
	}
}

// Check looks for silent sensors now (the checker calls it every Tick).
func (p *Presence) Check() {
	now := p.Now()
	p.sync(now)
	var changes []PresenceChange
	p.mu.Lock()
	for id, e := range p.devs {
		if e.state == StateOffline {
			continue
		}
		ref := e.lastSeen
		if ref.IsZero() || ref.Before(e.since) && e.state == StateUnknown {
			ref = e.since
		}
		if ref.Before(e.grace) {
			ref = e.grace
		}
		if gap := now.Sub(ref); gap > e.hb {
			reason := fmt.Sprintf("no data for %s (heartbeat %s)", gap.Round(time.Second), e.hb)
			if e.lastSeen.IsZero() {
				reason = fmt.Sprintf("no data since watching started %s ago (heartbeat %s)", gap.Round(time.Second), e.hb)
			}
			e.state, e.since, e.reason, e.dirty = StateOffline, now, reason, true
			changes = append(changes, PresenceChange{Device: id, Site: e.site, Online: false, Reason: reason, LastSeen: e.lastSeen, At: now})
		}
	}
	p.mu.Unlock()
	p.emit(changes)
}

// Seen records data from device at t.
func (p *Presence) Seen(device string, t time.Time) {
	p.mu.Lock()
	e, ok := p.devs[device]
	if !ok {
		p.mu.Unlock()
		return
	}
	if t.After(e.lastSeen) {
		e.lastSeen = t
		e.dirty = true
	}
	if e.state == StateOnline {
		p.mu.Unlock()
		return
	}
	was := e.state
	e.state, e.since, e.reason, e.dirty = StateOnline, t, "data received", true
	ch := PresenceChange{Device: device, Site: e.site, Online: true, Reason: "data received", LastSeen: t, At: t}
	p.mu.Unlock()
	if was == StateOffline {
		p.emit([]PresenceChange{ch})
	}
}

// Report applies what the device's status topic said.
func (p *Presence) Report(device string, online bool, reason string) {
	now := p.Now()
	p.mu.Lock()
	e, ok := p.devs[device]
	if !ok {
		p.mu.Unlock()
		return
	}
	target := StateOffline
	if online {
		target = StateOnline
		e.lastSeen = now
		e.dirty = true
	}
	if e.state == target {
		p.mu.Unlock()
		return
	}
	was := e.state
	e.state, e.since, e.reason, e.dirty = target, now, reason, true
	ch := PresenceChange{Device: device, Site: e.site, Online: online, Reason: reason, LastSeen: e.lastSeen, At: now}
	p.mu.Unlock()
	if online && was == StateUnknown {
		return
	}
	p.emit([]PresenceChange{ch})
}

func (p *Presence) emit(changes []PresenceChange) {
	for _, c := range changes {
		p.Logger.Info("ingest: device presence changed", "device", c.Device, "site", c.Site, "online", c.Online, "reason", c.Reason)
		if p.OnChange != nil {
			p.OnChange(c)
		}
	}
}

// State returns what is known of device.
func (p *Presence) State(device string) (DeviceState, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.devs[device]
	if !ok {
		return DeviceState{}, false
	}
	return DeviceState{Device: device, Site: e.site, State: e.state, Since: e.since, LastSeen: e.lastSeen, Reason: e.reason,
		ReasonZH: ExplainPresence(e.reason)}, true
}

// States returns every watched sensor, by device id.
func (p *Presence) States() []DeviceState {
	p.mu.Lock()
	out := make([]DeviceState, 0, len(p.devs))
	for id, e := range p.devs {
		out = append(out, DeviceState{Device: id, Site: e.site, State: e.state, Since: e.since, LastSeen: e.lastSeen, Reason: e.reason,
			ReasonZH: ExplainPresence(e.reason)})
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out
}
