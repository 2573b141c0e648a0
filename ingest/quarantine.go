package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/offsite-gw/offsite/internal/store"
)

// Quarantine reasons of ingest itself; decoding and validation add the decode.Reason* ones.
const (
	ReasonUnknownTopic  = "unknown_topic"  // no sensor publishes on this topic
	ReasonForeignTopic  = "foreign_topic"  // a device published on another device's topic
	ReasonNoDecoder     = "no_decoder"     // the sensor's profile decoder cannot be built
	ReasonClockSkew     = "clock_skew"     // device time too far in the future or the past
	ReasonBadStatus     = "bad_status"     // status topic payload is not online/offline
	ReasonQueueOverflow = "queue_overflow" // ingest could not keep up; counted, payload kept
)

// QuarantineEntry is a message, or one reading of it, that ingest could not accept.
type QuarantineEntry struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Device string    `json:"device,omitempty"`
	Site   string    `json:"site,omitempty"`
	Topic  string    `json:"topic"`
	Client string    `json:"client,omitempty"` // MQTT username (embedded broker)
	Reason string    `json:"reason"`
	Metric string    `json:"metric,omitempty"` // set when one reading of a message was refused
	Detail string    `json:"detail"`
	// Payload is the raw payload, cut to Quarantine.MaxPayload bytes; PayloadSize is the
	// size it had.
	Payload     []byte `json:"payload"`
	PayloadSize int    `json:"payload_size"`
}

// QuarantineFilter selects entries for List; zero fields do not filter.
type QuarantineFilter struct {
	Device   string
	Reason   string
	Since    time.Time
	BeforeID int64 // paging: entries with a smaller id
	Limit    int   // default 100, at most 1000
}

// Quarantine keeps refused messages with their raw payload in the metadata database
// (table ingest_quarantine, migration 0004), so maintainers can see what a device sent and
// why it was refused. Add never blocks: entries are written in batches by one goroutine;
// past QueueSize they are counted (offsite_ingest_quarantine_lost_total) and logged.
type Quarantine struct {
	DB *store.DB
	// MaxPayload is how much of a payload is kept (default 4096 bytes).
	MaxPayload int
	// MaxRows bounds the table; the oldest rows go first (default 100000).
	MaxRows int
	// QueueSize bounds the entries waiting to be written (default 8192).
	QueueSize  int
	Registerer prometheus.Registerer
	Logger     *slog.Logger

	ch      chan QuarantineEntry
	lost    prometheus.Counter
	pending atomic.Int64
	cancel  context.CancelFunc
	done    chan struct{}
	closeMu sync.Once
}

// Initialize starts the writer.
func (q *Quarantine) Initialize() error {
	if q.DB == nil {
		return errors.New("ingest: Quarantine.DB is required")
	}
	if q.MaxPayload <= 0 {
		q.MaxPayload = 4096
	}
	if q.MaxRows <= 0 {
		q.MaxRows = 100000
	}
	if q.QueueSize <= 0 {
		q.QueueSize = 8192
	}
	if q.Logger == nil {
		q.Logger = slog.Default()
	}
	q.lost = register(q.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "offsite_ingest_quarantine_lost_total",
		Help: "Quarantine entries not written because the quarantine writer could not keep up (they are still counted by reason).",
	}))
	q.ch = make(chan QuarantineEntry, q.QueueSize)
	ctx, cancel := context.WithCancel(context.Background())
	q.cancel, q.done = cancel, make(chan struct{})
	go q.run(ctx)
	return nil
}

// Close writes what is queued and stops.
func (q *Quarantine) Close() {
	q.closeMu.Do(func() {
		if q.cancel != nil {
			q.cancel()
			<-q.done
		}
	})
}

// Add queues e. It never blocks.
func (q *Quarantine) Add(e QuarantineEntry) {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.PayloadSize = len(e.Payload)
	if e.Payload == nil {
		e.Payload = []byte{}
	}
	if len(e.Payload) > q.MaxPayload {
		e.Payload = append([]byte(nil), e.Payload[:q.MaxPayload]...)
	}
	q.pending.Add(1)
	select {
	case q.ch <- e:
	default:
		q.pending.Add(-1)
		q.lost.Inc()
		q.Logger.Warn("ingest: quarantine queue full, entry not kept", "device", e.Device, "site", e.Site,
			"topic", e.Topic, "reason", e.Reason)
	}
}

// Flush waits until the entries added before the call are written.
func (q *Quarantine) Flush(ctx context.Context) error {
	for q.pending.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

func (q *Quarantine) run(ctx context.Context) {
	defer close(q.done)
	trim := time.NewTicker(time.Minute)
	defer trim.Stop()
	batch := make([]QuarantineEntry, 0, 256)
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case e := <-q.ch:
					batch = append(batch, e)
					continue
				default:
				}
				break
			}
			q.write(batch)
			return
		case <-trim.C:
			q.trim()
		case e := <-q.ch:
			batch = append(batch[:0], e)
		more:
			for len(batch) < cap(batch) {
				select {
				case e := <-q.ch:
					batch = append(batch, e)
				default:
					break more
				}
			}
			q.write(batch)
		}
	}
}

func (q *Quarantine) write(batch []QuarantineEntry) {
	if len(batch) == 0 {
		return
	}
	defer q.pending.Add(-int64(len(batch)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := q.DB.InTx(ctx, func(tx *store.Tx) error {
		for _, e := range batch {
			if _, err := tx.Exec(ctx, `INSERT INTO ingest_quarantine
				(at, device_id, site_id, topic, client, reason, metric, detail, payload, payload_size)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				e.At.UnixMilli(), e.Device, e.Site, e.Topic, e.Client, e.Reason, e.Metric, e.Detail, e.Payload, e.PayloadSize); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		q.lost.Add(float64(len(batch)))
		q.Logger.Error("ingest: write quarantine", "entries", len(batch), "err", err)
	}
}

func (q *Quarantine) trim() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var maxID int64
	if err := q.DB.QueryRow(ctx, `SELECT COALESCE(MAX(id), 0) FROM ingest_quarantine`).Scan(&maxID); err != nil {
		q.Logger.Warn("ingest: trim quarantine", "err", err)
		return
	}
	if maxID > int64(q.MaxRows) {
		if _, err := q.DB.Exec(ctx, `DELETE FROM ingest_quarantine WHERE id <= ?`, maxID-int64(q.MaxRows)); err != nil {
			q.Logger.Warn("ingest: trim quarantine", "err", err)
		}
	}
}

// List returns entries newest first.
func (q *Quarantine) List(ctx context.Context, f QuarantineFilter) ([]QuarantineEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	if f.Limit > 1000 {
		f.Limit = 1000
	}
	var (
		where []string
		args  []any
	)
	if f.Device != "" {
		where, args = append(where, "device_id = ?"), append(args, f.Device)
	}
	if f.Reason != "" {
		where, args = append(where, "reason = ?"), append(args, f.Reason)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "at >= ?"), append(args, f.Since.UnixMilli())
	}
	if f.BeforeID > 0 {
		where, args = append(where, "id < ?"), append(args, f.BeforeID)
	}
	qs := `SELECT id, at, device_id, site_id, topic, client, reason, metric, detail, payload, payload_size FROM ingest_quarantine`
	if len(where) > 0 {
		qs += " WHERE " + strings.Join(where, " AND ")
	}
	qs += fmt.Sprintf(" ORDER BY id DESC LIMIT %d", f.Limit)
	rows, err := q.DB.Query(ctx, qs, args...)
	if err != nil {
		return nil, fmt.Errorf("ingest: list quarantine: %w", err)
	}
	defer rows.Close()
	out := []QuarantineEntry{}
	for rows.Next() {
		var (
			e  QuarantineEntry
			at int64
		)
		if err := rows.Scan(&e.ID, &at, &e.Device, &e.Site, &e.Topic, &e.Client, &e.Reason, &e.Metric, &e.Detail, &e.Payload, &e.PayloadSize); err != nil {
			return nil, err
		}
		e.At = time.UnixMilli(at)
		out = append(out, e)
	}
	return out, rows.Err()
}
