package rules

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/store"
)

// Phases of a rule state (rule_state.state).
const (
	phaseIdle    = "idle"
	phasePending = "pending" // the condition holds, the duration is not reached yet
	phaseActive  = "active"
)

// ruleState is the evaluation state of one rule on one device. The shard lock guards it.
type ruleState struct {
	Phase       string
	Since       time.Time // pending: when the condition began; active: when the alarm activated
	LastValue   float64
	LastAt      time.Time // last reading of the metric (silence: of any metric if none)
	ClearedAt   time.Time // last clear, for the cooldown
	Suppressed  bool      // this episode was already counted as suppressed by the cooldown
	ActiveValue float64   // value that activated the alarm
	Kind        string    // of the rule when active, to clear an alarm whose rule was removed
	Severity    string
	Ring        ring
	Pending     []event.Event // made, not yet accepted by Emit

	unit  string
	dirty bool
}

// stateData is the rule_state.data column.
type stateData struct {
	Ring        []bucket `json:"ring,omitempty"`
	Suppressed  bool     `json:"suppressed,omitempty"`
	ActiveValue float64  `json:"active_value,omitempty"`
	Kind        string   `json:"kind,omitempty"`
	Severity    string   `json:"severity,omitempty"`
	Unit        string   `json:"unit,omitempty"`
}

// ringSize buckets cover a rate rule's window: the change is measured against the lowest
// (rising) or highest (falling) value of the last `per`, to a resolution of per/ringSize,
// whatever the reading rate.
const ringSize = 16

type bucket struct {
	Idx   int64   `json:"i"`
	First float64 `json:"f"`
	Min   float64 `json:"lo"`
	Max   float64 `json:"hi"`
	Last  float64 `json:"v"`
	Used  bool    `json:"u"`
}

type ring struct {
	B   [ringSize]bucket
	cur int64 // index of the newest bucket
}

func (g *ring) add(at time.Time, v float64, per time.Duration) {
	width := per.Milliseconds() / ringSize
	if width < 1 {
		width = 1
	}
	idx := at.UnixMilli() / width
	b := &g.B[(idx%ringSize+ringSize)%ringSize]
	if !b.Used || b.Idx != idx {
		*b = bucket{Idx: idx, First: v, Min: v, Max: v, Last: v, Used: true}
	} else {
		b.Min, b.Max, b.Last = math.Min(b.Min, v), math.Max(b.Max, v), v
	}
	g.cur = idx
}

// delta is the change of the newest value over the window: against the window's minimum for
// > and >= (a rise), its maximum for < and <= (a fall), its oldest value otherwise.
func (g *ring) delta(op string) float64 {
	var (
		newest = g.B[(g.cur%ringSize+ringSize)%ringSize]
		lo, hi = newest.Last, newest.Last
		oldest = newest
		found  bool
	)
	if !newest.Used {
		return 0
	}
	for _, b := range g.B {
		if !b.Used || b.Idx <= g.cur-ringSize || b.Idx > g.cur {
			continue
		}
		found = true
		lo, hi = math.Min(lo, b.Min), math.Max(hi, b.Max)
		if b.Idx < oldest.Idx {
			oldest = b
		}
	}
	if !found {
		return 0
	}
	switch op {
	case ">", ">=":
		return newest.Last - lo
	case "<", "<=":
		return newest.Last - hi
	}
	return newest.Last - oldest.First
}

// stateRow is one rule_state row.
type stateRow struct {
	device, rule, state      string
	since, lastAt, clearedAt int64
	lastValue                float64
	data, pending            string
	updatedAt                int64
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func (st *ruleState) row(device, rule string, now time.Time) stateRow {
	d := stateData{Suppressed: st.Suppressed, ActiveValue: st.ActiveValue, Kind: st.Kind, Severity: st.Severity, Unit: st.unit}
	for _, b := range st.Ring.B {
		if b.Used {
			d.Ring = append(d.Ring, b)
		}
	}
	data, _ := json.Marshal(d)
	pending := []byte("[]")
	if len(st.Pending) > 0 {
		pending, _ = json.Marshal(st.Pending)
	}
	return stateRow{
		device: device, rule: rule, state: st.Phase, since: ms(st.Since), lastAt: ms(st.LastAt),
		clearedAt: ms(st.ClearedAt), lastValue: st.LastValue, data: string(data), pending: string(pending),
		updatedAt: now.UnixMilli(),
	}
}

const storeChunk = 100 // rows per INSERT: 1,000 parameters, under both backends' limits

// store upserts changed rows in one transaction.
func (e *Engine) store(ctx context.Context, rows []stateRow) error {
	if len(rows) == 0 {
		return nil
	}
	return e.DB.InTx(ctx, func(tx *store.Tx) error {
		for len(rows) > 0 {
			n := min(len(rows), storeChunk)
			var (
				q    strings.Builder
				args = make([]any, 0, n*10)
			)
			q.WriteString(`INSERT INTO rule_state (device_id, rule_id, state, since, last_value, last_at, cleared_at, data, pending, updated_at) VALUES `)
			for i, r := range rows[:n] {
				if i > 0 {
					q.WriteString(", ")
				}
				q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
				args = append(args, r.device, r.rule, r.state, r.since, r.lastValue, r.lastAt, r.clearedAt, r.data, r.pending, r.updatedAt)
			}
			q.WriteString(` ON CONFLICT (device_id, rule_id) DO UPDATE SET state = excluded.state, since = excluded.since,
				last_value = excluded.last_value, last_at = excluded.last_at, cleared_at = excluded.cleared_at,
				data = excluded.data, pending = excluded.pending, updated_at = excluded.updated_at`)
			if _, err := tx.Exec(ctx, q.String(), args...); err != nil {
				return err
			}
			rows = rows[n:]
		}
		return nil
	})
}

// load reads every stored state. Devices get their rules on first use (Observe or Tick).
func (e *Engine) load(ctx context.Context) error {
	rs, err := e.DB.Query(ctx, `SELECT device_id, rule_id, state, since, last_value, last_at, cleared_at, data, pending FROM rule_state`)
	if err != nil {
		return fmt.Errorf("rules: load state: %w", err)
	}
	defer rs.Close()
	n := 0
	for rs.Next() {
		var (
			r    stateRow
			st   ruleState
			data stateData
		)
		if err := rs.Scan(&r.device, &r.rule, &r.state, &r.since, &r.lastValue, &r.lastAt, &r.clearedAt, &r.data, &r.pending); err != nil {
			return fmt.Errorf("rules: load state: %w", err)
		}
		if err := json.Unmarshal([]byte(r.data), &data); err != nil {
			return fmt.Errorf("rules: state %s/%s: data: %w", r.device, r.rule, err)
		}
		if err := json.Unmarshal([]byte(r.pending), &st.Pending); err != nil {
			return fmt.Errorf("rules: state %s/%s: pending: %w", r.device, r.rule, err)
		}
		st.Phase, st.Since, st.LastValue, st.LastAt, st.ClearedAt = r.state, fromMS(r.since), r.lastValue, fromMS(r.lastAt), fromMS(r.clearedAt)
		st.Suppressed, st.ActiveValue, st.Kind, st.Severity, st.unit = data.Suppressed, data.ActiveValue, data.Kind, data.Severity, data.Unit
		for _, b := range data.Ring {
			st.Ring.B[(b.Idx%ringSize+ringSize)%ringSize] = b
			if b.Idx > st.Ring.cur {
				st.Ring.cur = b.Idx
			}
		}
		for i := range st.Pending {
			st.Pending[i].OccurredAt = st.Pending[i].OccurredAt.UTC()
		}
		e.stats.pending.Add(int64(len(st.Pending)))
		sh := e.shardOf(r.device)
		sh.device(r.device).states[r.rule] = &st
		n++
	}
	if err := rs.Err(); err != nil {
		return fmt.Errorf("rules: load state: %w", err)
	}
	e.Logger.Debug("rules: state loaded", "states", n)
	return nil
}
