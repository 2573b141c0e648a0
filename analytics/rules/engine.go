// Package rules evaluates the sensor rules of the firmware profiles — threshold with
// hysteresis, duration, rate of change and silence — on every reading the gateway ingests,
// gated by daily windows and named schedules with the official holiday calendar, layered with
// per-profile, per-site and per-device overrides. Each condition becomes one alarm
// (alarm_key device/rule) with one active and one cleared event, with a cooldown against
// flapping. Evaluation state lives in memory and is written behind to the rule_state table,
// so a restart neither restarts a running duration nor raises an active alarm again. It makes
// events; delivering them is the gateway's (Engine.Emit).
package rules

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/event"
	profiles "github.com/offsite-gw/offsite/firmware-profiles"
	"github.com/offsite-gw/offsite/ingest/decode"
	"github.com/offsite-gw/offsite/internal/store"
)

// ProfileSource finds a device's profile; *profiles.Registry is one.
type ProfileSource interface {
	Get(id string) (profiles.Profile, bool)
}

// DeviceSource finds devices and their sites; devices.Store is one.
type DeviceSource interface {
	GetDevice(ctx context.Context, id string) (devices.Device, error)
	GetSite(ctx context.Context, id string) (devices.Site, error)
}

// Engine evaluates rules. Fill the fields, call Initialize, run Run in a goroutine, and call
// Close after Run has returned.
type Engine struct {
	DB       *store.DB
	Profiles ProfileSource
	Devices  DeviceSource
	// Emit hands events to the event log (events.Log.Append). An event is emitted only after
	// the state that made it is stored, and stays pending — in memory and in rule_state —
	// until Emit succeeds, so it may be emitted again with the same id after a crash; the log
	// is idempotent by id.
	Emit func(ctx context.Context, evs []event.Event) error
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// Location is where windows and schedules are read; default Asia/Shanghai.
	Location *time.Location

	Schedules map[string]Schedule
	Holidays  Holidays
	Overrides []Override
	// Cooldown: after a clear, the same alarm_key does not activate again for this long
	// (default DefaultCooldown; negative = none). Suppressed activations are counted.
	Cooldown time.Duration

	// TickEvery is how often Run evaluates durations, silence and schedules, stores changed
	// state and emits (default 1s).
	TickEvery time.Duration
	// RefreshEvery is how often a device's rules are looked up again, so edits to devices,
	// sites and profiles reach the engine (default 1m).
	RefreshEvery time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer

	loc       *time.Location
	cooldown  time.Duration
	cal       *calendar
	schedules map[string]*schedule
	seed      maphash.Seed
	shards    [shardCount]shard
	wake      chan struct{}
	tickMu    sync.Mutex
	emitAfter time.Time // after an Emit failure, wait until then
	emitWait  time.Duration
	stats     stats
	// startedAt: silence counts only while the gateway runs, so it counts from here at the
	// earliest — the gateway's own downtime is not the device's silence.
	startedAt time.Time
}

const shardCount = 64

type shard struct {
	mu   sync.Mutex
	devs map[string]*deviceState
}

// deviceState is one device's rule states and its compiled rules.
type deviceState struct {
	id       string
	rules    *deviceRules // nil until looked up
	loadedAt time.Time    // engine clock at lookup
	failedAt time.Time    // last failed lookup
	states   map[string]*ruleState
}

type stats struct {
	readings, unknown, late, ignored                 atomic.Uint64
	activated, cleared, suppressed                   atomic.Uint64
	emitted, emitFailures, flushFailures, lookupErrs atomic.Uint64
	pending, devices                                 atomic.Int64
}

// Initialize checks the configuration and loads the stored state.
func (e *Engine) Initialize() error {
	if e.DB == nil || e.Profiles == nil || e.Devices == nil || e.Emit == nil {
		return errors.New("rules: DB, Profiles, Devices and Emit are required")
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	if e.Logger == nil {
		e.Logger = slog.Default()
	}
	e.loc = e.Location
	if e.loc == nil {
		var err error
		if e.loc, err = time.LoadLocation("Asia/Shanghai"); err != nil {
			e.loc = time.FixedZone("CST", 8*3600) // no daylight saving in China
		}
	}
	e.cooldown = e.Cooldown
	if e.cooldown == 0 {
		e.cooldown = DefaultCooldown
	}
	if e.TickEvery <= 0 {
		e.TickEvery = time.Second
	}
	if e.RefreshEvery <= 0 {
		e.RefreshEvery = time.Minute
	}
	cfg := Config{Schedules: e.Schedules, Holidays: e.Holidays, Overrides: e.Overrides}
	if err := cfg.Validate(); err != nil {
		return err
	}
	e.cal, _ = e.Holidays.parse()
	e.schedules = map[string]*schedule{}
	for name, s := range e.Schedules {
		e.schedules[name], _ = s.parse(name, e.cal)
	}
	e.seed = maphash.MakeSeed()
	e.startedAt = e.Now()
	e.wake = make(chan struct{}, 1)
	for i := range e.shards {
		e.shards[i].devs = map[string]*deviceState{}
	}
	if err := e.load(context.Background()); err != nil {
		return err
	}
	if e.Registerer != nil {
		if err := e.Registerer.Register(collector{e}); err != nil {
			return fmt.Errorf("rules: register metrics: %w", err)
		}
	}
	return nil
}

// Run evaluates time-driven rules, stores state and emits events every TickEvery, and sooner
// after a transition, until ctx ends.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(e.TickEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.wake:
		}
		if err := e.Tick(ctx); err != nil && ctx.Err() == nil {
			e.Logger.Warn("rules: tick", "err", err)
		}
	}
}

// Close stores the state and tries once more to emit what is pending. Call it after Run has
// returned.
func (e *Engine) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.tickMu.Lock()
	e.emitAfter = time.Time{}
	e.tickMu.Unlock()
	return e.Tick(ctx)
}

func (e *Engine) shardOf(deviceID string) *shard {
	return &e.shards[maphash.String(e.seed, deviceID)%shardCount]
}

func (e *Engine) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Observe evaluates one batch of a device's readings taken at at (the reading time; zero
// means now). It is called by ingest for every stored batch and does no I/O except the first
// lookup of a device's rules.
func (e *Engine) Observe(ctx context.Context, deviceID string, readings []decode.Reading, at time.Time) {
	if len(readings) == 0 {
		return
	}
	if at.IsZero() {
		at = e.Now()
	}
	e.stats.readings.Add(uint64(len(readings)))
	sh := e.shardOf(deviceID)
	sh.mu.Lock()
	ds := sh.devs[deviceID]
	if ds == nil || ds.rules == nil {
		if ds != nil && !ds.failedAt.IsZero() && e.Now().Sub(ds.failedAt) < e.RefreshEvery {
			sh.mu.Unlock()
			e.stats.unknown.Add(uint64(len(readings)))
			return
		}
		sh.mu.Unlock()
		dr, err := e.lookup(ctx, deviceID)
		sh.mu.Lock()
		ds = sh.device(deviceID)
		if err != nil {
			ds.failedAt = e.Now()
			sh.mu.Unlock()
			e.stats.unknown.Add(uint64(len(readings)))
			e.stats.lookupErrs.Add(1)
			e.Logger.Warn("rules: device lookup", "device", deviceID, "err", err)
			return
		}
		if ds.rules == nil {
			e.install(ds, dr, at)
		}
	}
	defer sh.mu.Unlock()
	dr := ds.rules
	local := at.In(e.loc)
	for _, rd := range readings {
		if !finite(rd.Value) {
			e.stats.ignored.Add(1)
			continue
		}
		for _, r := range dr.byMetric[rd.Metric] {
			e.onReading(ds, r, ds.states[r.id], rd, at, local)
		}
	}
	for _, r := range dr.anyMetric {
		e.onSeen(ds, r, ds.states[r.id], at)
	}
}

func (sh *shard) device(id string) *deviceState {
	ds := sh.devs[id]
	if ds == nil {
		ds = &deviceState{id: id, states: map[string]*ruleState{}}
		sh.devs[id] = ds
	}
	return ds
}

// onReading evaluates a threshold, duration or rate rule, or a silence rule on one metric.
func (e *Engine) onReading(ds *deviceState, r *rule, st *ruleState, rd decode.Reading, at, local time.Time) {
	if r.kind == KindSilence {
		e.onSeen(ds, r, st, at)
		return
	}
	if !st.LastAt.IsZero() && at.Before(st.LastAt) {
		e.stats.late.Add(1)
		return
	}
	prevAt := st.LastAt
	v := rd.Value
	st.LastAt, st.LastValue, st.dirty = at, v, true
	if rd.Unit != "" {
		st.unit = rd.Unit
	}
	if r.kind == KindRate {
		st.Ring.add(at, v, r.per)
	}
	if _, open := r.gate.open(local); !open {
		e.gateClosed(ds, r, st, at)
		return
	}
	switch r.kind {
	case KindThreshold:
		switch {
		case st.Phase == phaseActive:
			if r.releases(v) {
				e.clear(ds, r, st, at, clearValue, v)
			}
		case r.holds(v):
			e.activate(ds, r, st, at, v, 0)
		default:
			st.Suppressed = false
		}
	case KindDuration:
		switch {
		case st.Phase == phaseActive:
			if r.releases(v) {
				e.clear(ds, r, st, at, clearValue, v)
			}
		case !r.holds(v):
			st.Phase, st.Since, st.Suppressed = phaseIdle, time.Time{}, false
		case st.Phase == phaseIdle, !prevAt.IsZero() && at.Sub(prevAt) > r.stale:
			// Starts now; after a gap in the data nobody knows whether it held, so it
			// starts again.
			st.Phase, st.Since = phasePending, at
			if r.forDur <= 0 {
				e.activate(ds, r, st, at, v, 0)
			}
		case at.Sub(st.Since) >= r.forDur:
			e.activate(ds, r, st, at, v, 0)
		}
	case KindRate:
		delta := st.Ring.delta(r.op)
		switch {
		case st.Phase == phaseActive:
			if r.releases(delta) {
				e.clear(ds, r, st, at, clearRate, v)
			}
		case r.holds(delta):
			e.activate(ds, r, st, at, v, delta)
		default:
			st.Suppressed = false
		}
	}
}

// onSeen notes that a silence rule's metric (or any metric) arrived.
func (e *Engine) onSeen(ds *deviceState, r *rule, st *ruleState, at time.Time) {
	if at.Before(st.LastAt) {
		return
	}
	st.LastAt, st.dirty = at, true
	if st.Phase == phaseActive {
		e.clear(ds, r, st, at, clearSilence, 0)
	}
}

// gateClosed: outside its window or schedule a rule raises nothing and keeps nothing pending;
// an active alarm is cleared, saying the window ended.
func (e *Engine) gateClosed(ds *deviceState, r *rule, st *ruleState, at time.Time) {
	switch st.Phase {
	case phasePending:
		st.Phase, st.Since, st.dirty = phaseIdle, time.Time{}, true
	case phaseActive:
		e.clear(ds, r, st, at, clearWindow, st.LastValue)
	}
}

// evalTime evaluates what changes with time alone: a duration reached since the last
// reading, silence, and windows that closed.
func (e *Engine) evalTime(ds *deviceState, r *rule, st *ruleState, now time.Time) {
	openSince, open := r.gate.open(now.In(e.loc))
	if !open {
		if r.kind != KindSilence {
			e.gateClosed(ds, r, st, now)
		} else if st.Phase == phaseActive {
			e.clear(ds, r, st, now, clearWindow, 0)
		}
		return
	}
	switch r.kind {
	case KindDuration:
		if st.Phase != phasePending {
			return
		}
		// The last reading stands until the next one, for as long as the device's data
		// is not stale.
		reached := e.afterCooldown(st, st.Since.Add(r.forDur))
		if !now.Before(reached) && reached.Sub(st.LastAt) <= r.stale {
			e.activate(ds, r, st, reached, st.LastValue, 0)
		}
	case KindSilence:
		if st.Phase != phaseIdle || st.LastAt.IsZero() {
			return
		}
		ref := st.LastAt
		if openSince.After(ref) {
			ref = openSince
		}
		if e.startedAt.After(ref) {
			ref = e.startedAt
		}
		if due := e.afterCooldown(st, ref.Add(r.forDur)); !now.Before(due) {
			e.activate(ds, r, st, due, 0, 0)
		}
	}
}

// afterCooldown moves a time-driven activation to the end of the cooldown, so it is delayed,
// not lost.
func (e *Engine) afterCooldown(st *ruleState, at time.Time) time.Time {
	if e.cooldown > 0 && !st.ClearedAt.IsZero() {
		if end := st.ClearedAt.Add(e.cooldown); at.Before(end) {
			return end
		}
	}
	return at
}

func (e *Engine) activate(ds *deviceState, r *rule, st *ruleState, at time.Time, v, delta float64) {
	if e.cooldown > 0 && !st.ClearedAt.IsZero() && at.Before(st.ClearedAt.Add(e.cooldown)) {
		if !st.Suppressed {
			st.Suppressed, st.dirty = true, true
			e.stats.suppressed.Add(1)
		}
		return
	}
	since := st.Since
	st.Phase, st.Since, st.Suppressed, st.ActiveValue, st.dirty = phaseActive, at, false, v, true
	st.Kind, st.Severity = r.kind, r.severity
	ev := e.event(ds, r, st, event.StateActive, at)
	ev.Message = e.activeMessage(ds.rules, r, st, at, since, v, delta)
	if r.kind != KindSilence {
		ev.Reading = r.reading(st, v, r.kind != KindRate)
	}
	st.Pending = append(st.Pending, ev)
	e.stats.activated.Add(1)
	e.stats.pending.Add(1)
	e.signal()
}

func (e *Engine) clear(ds *deviceState, r *rule, st *ruleState, at time.Time, why clearReason, v float64) {
	st.Phase, st.Since, st.ClearedAt, st.Suppressed, st.dirty = phaseIdle, time.Time{}, at, false, true
	ev := e.event(ds, r, st, event.StateCleared, at)
	ev.Message = e.clearMessage(ds.rules, r, st, why, v)
	if r.kind != KindSilence && why != clearRemoved {
		ev.Reading = r.reading(st, v, r.kind != KindRate)
	}
	st.Pending = append(st.Pending, ev)
	e.stats.cleared.Add(1)
	e.stats.pending.Add(1)
	e.signal()
}

func (e *Engine) event(ds *deviceState, r *rule, st *ruleState, state string, at time.Time) event.Event {
	at = at.UTC().Truncate(time.Millisecond)
	typ := "sensor.threshold"
	if r.kind == KindSilence {
		typ = "sensor.silent"
	}
	ev := event.Event{
		ID: events.NewID(at), Type: typ, Severity: r.severity, State: state, OccurredAt: at,
		AlarmKey: ds.id + "/" + r.id, Rule: r.id, Department: r.department,
		Device: &event.Device{ID: ds.id},
	}
	if dr := ds.rules; dr != nil {
		ev.Device.Kind, ev.Device.Profile, ev.Device.Name = string(dr.dev.Kind), dr.dev.Profile, dr.dev.Name
		if dr.site != nil {
			ev.Site = &event.Site{ID: dr.site.ID, Name: dr.site.Name, USCC: dr.site.USCC, RegionCode: dr.site.RegionCode}
			if ev.Department == "" {
				ev.Department = dr.site.Department
			}
			if len(dr.site.SupervisionItems) > 0 {
				ev.SupervisionItem = dr.site.SupervisionItems[0]
			}
		}
	}
	return ev
}

// Tick evaluates time-driven rules at Now, stores changed state and emits the pending events
// whose state is stored. Run calls it; tests call it directly with an injected clock.
func (e *Engine) Tick(ctx context.Context) error {
	e.tickMu.Lock()
	defer e.tickMu.Unlock()
	now := e.Now()
	e.refresh(ctx, now)
	var (
		urgent  []stateRow // states with events to emit: stored before the events go out
		rows    []stateRow // the rest (last values, timers): stored after
		pending []pendingBatch
		ndev    int64
	)
	for i := range e.shards {
		sh := &e.shards[i]
		sh.mu.Lock()
		for _, ds := range sh.devs {
			ndev++
			if ds.rules != nil {
				for _, r := range ds.rules.rules {
					e.evalTime(ds, r, ds.states[r.id], now)
				}
			}
			for id, st := range ds.states {
				if st.dirty {
					if len(st.Pending) > 0 {
						urgent = append(urgent, st.row(ds.id, id, now))
					} else {
						rows = append(rows, st.row(ds.id, id, now))
					}
					st.dirty = false
				}
				if len(st.Pending) > 0 {
					pending = append(pending, pendingBatch{device: ds.id, rule: id, events: append([]event.Event(nil), st.Pending...)})
				}
			}
		}
		sh.mu.Unlock()
	}
	e.stats.devices.Store(ndev)
	// An alarm must not wait for thousands of unrelated last-value rows: store the states
	// whose events are pending (crash safety needs only those first), emit, then the rest.
	if err := e.store(ctx, urgent); err != nil {
		e.stats.flushFailures.Add(1)
		e.redirty(urgent)
		e.redirty(rows)
		return fmt.Errorf("rules: store state: %w", err)
	}
	var emitErr error
	if len(pending) > 0 && !now.Before(e.emitAfter) {
		emitErr = e.emit(ctx, pending, now)
	}
	if err := e.store(ctx, rows); err != nil {
		e.stats.flushFailures.Add(1)
		e.redirty(rows)
		return errors.Join(emitErr, fmt.Errorf("rules: store state: %w", err))
	}
	return emitErr
}

type pendingBatch struct {
	device, rule string
	events       []event.Event
}

const maxEmitBatch = 500

// emit hands pending events to Emit, all at once when it can, else alarm by alarm so one
// event the log refuses does not hold up the others. Events of one alarm keep their order.
func (e *Engine) emit(ctx context.Context, pending []pendingBatch, now time.Time) error {
	var (
		errs  []error
		batch []event.Event
		group []pendingBatch
	)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err := e.Emit(ctx, batch); err == nil {
			e.delivered(group)
		} else {
			for _, g := range group {
				if err := e.Emit(ctx, g.events); err != nil {
					errs = append(errs, fmt.Errorf("alarm %s/%s: %w", g.device, g.rule, err))
					continue
				}
				e.delivered([]pendingBatch{g})
			}
		}
		batch, group = batch[:0], group[:0]
	}
	for _, p := range pending {
		if len(batch)+len(p.events) > maxEmitBatch {
			flush()
		}
		batch = append(batch, p.events...)
		group = append(group, p)
	}
	flush()
	if len(errs) > 0 {
		e.stats.emitFailures.Add(1)
		if e.emitWait == 0 {
			e.emitWait = time.Second
		} else if e.emitWait < 30*time.Second {
			e.emitWait *= 2
		}
		e.emitAfter = now.Add(e.emitWait)
		return fmt.Errorf("rules: emit (retry in %s): %w", e.emitWait, errors.Join(errs...))
	}
	e.emitWait, e.emitAfter = 0, time.Time{}
	return nil
}

// delivered drops emitted events from their states' pending lists.
func (e *Engine) delivered(group []pendingBatch) {
	for _, g := range group {
		sh := e.shardOf(g.device)
		sh.mu.Lock()
		if ds := sh.devs[g.device]; ds != nil {
			if st := ds.states[g.rule]; st != nil {
				n := 0
				for n < len(st.Pending) && n < len(g.events) && st.Pending[n].ID == g.events[n].ID {
					n++
				}
				st.Pending = append([]event.Event(nil), st.Pending[n:]...)
				st.dirty = true
				e.stats.pending.Add(-int64(n))
				e.stats.emitted.Add(uint64(n))
			}
		}
		sh.mu.Unlock()
	}
}

func (e *Engine) redirty(rows []stateRow) {
	for _, r := range rows {
		sh := e.shardOf(r.device)
		sh.mu.Lock()
		if ds := sh.devs[r.device]; ds != nil {
			if st := ds.states[r.rule]; st != nil {
				st.dirty = true
			}
		}
		sh.mu.Unlock()
	}
}

// refresh looks up devices whose rules were never compiled (state loaded from the database) or
// are older than RefreshEvery, a bounded number per tick.
func (e *Engine) refresh(ctx context.Context, now time.Time) {
	const perTick = 200
	var ids []string
	for i := range e.shards {
		sh := &e.shards[i]
		sh.mu.Lock()
		for id, ds := range sh.devs {
			if len(ids) >= perTick {
				break
			}
			stale := ds.rules == nil || now.Sub(ds.loadedAt) >= e.RefreshEvery
			if stale && (ds.failedAt.IsZero() || now.Sub(ds.failedAt) >= e.RefreshEvery) {
				ids = append(ids, id)
			}
		}
		sh.mu.Unlock()
	}
	for _, id := range ids {
		dr, err := e.lookup(ctx, id)
		sh := e.shardOf(id)
		sh.mu.Lock()
		ds := sh.device(id)
		if err != nil {
			ds.failedAt = now
			e.stats.lookupErrs.Add(1)
			if ds.rules != nil {
				ds.loadedAt = now // keep the old rules, ask again later
			}
		} else {
			e.install(ds, dr, now)
		}
		sh.mu.Unlock()
	}
}

// install puts compiled rules in place: new rules get a state; a state whose rule is gone
// (disabled or removed) has its alarm cleared.
func (e *Engine) install(ds *deviceState, dr *deviceRules, at time.Time) {
	ds.rules, ds.loadedAt, ds.failedAt = dr, e.Now(), time.Time{}
	for _, r := range dr.rules {
		st := ds.states[r.id]
		if st == nil {
			st = &ruleState{Phase: phaseIdle, dirty: true}
			if r.kind == KindSilence {
				// A device that never sends the metric is silent from the first time it is seen.
				st.LastAt = at
			}
			ds.states[r.id] = st
		}
		if st.unit == "" {
			st.unit = dr.units[r.metric]
		}
	}
	for id, st := range ds.states {
		if _, ok := dr.byID[id]; ok || st.Phase == phaseIdle {
			continue
		}
		if st.Phase == phasePending {
			st.Phase, st.Since, st.dirty = phaseIdle, time.Time{}, true
			continue
		}
		gone := &rule{id: id, kind: st.Kind, severity: st.Severity}
		if gone.severity == "" {
			gone.severity = "info"
		}
		e.clear(ds, gone, st, e.Now(), clearRemoved, 0)
	}
}

// Stats are the engine's counters (also exported as offsite_rules_* metrics).
type Stats struct {
	Readings, UnknownDevice, Late, Ignored uint64
	Activated, Cleared, Suppressed         uint64
	Emitted, EmitFailures, FlushFailures   uint64
	Pending, Devices                       int64
}

// Stats returns the counters.
func (e *Engine) Stats() Stats {
	s := &e.stats
	return Stats{
		Readings: s.readings.Load(), UnknownDevice: s.unknown.Load(), Late: s.late.Load(), Ignored: s.ignored.Load(),
		Activated: s.activated.Load(), Cleared: s.cleared.Load(), Suppressed: s.suppressed.Load(),
		Emitted: s.emitted.Load(), EmitFailures: s.emitFailures.Load(), FlushFailures: s.flushFailures.Load(),
		Pending: s.pending.Load(), Devices: s.devices.Load(),
	}
}
