package ingest

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	_ "modernc.org/sqlite" // registers "sqlite"
)

// SQLiteTelemetry keeps readings in their own SQLite file (not the metadata database, so
// heavy telemetry writes never lock devices or alerts), for the one-binary setup. Write buffers
// in memory; one goroutine writes a transaction per batch. Readings older than Retention are
// deleted every hour.
type SQLiteTelemetry struct {
	// Path of the file (e.g. DATA/telemetry.db), required.
	Path string
	// Retention is how long readings are kept (default 30 days).
	Retention time.Duration
	// BatchSize is the most readings one transaction writes (default 50000). A commit writes
	// every page the batch touched to the WAL, and readings of many devices and metrics land on
	// as many pages (the table is ordered by device, metric, time): under load, large batches
	// write each page once for many readings. Under light load the writer commits what is
	// pending every FlushInterval, so batches stay small and latency short.
	BatchSize     int
	FlushInterval time.Duration // default 250ms
	// CacheMiB is SQLite's page cache of the writer's connection (default 64 MiB): the pages
	// where each series grows stay cached instead of being read again for every batch (about
	// one 4 KiB page per device and metric).
	CacheMiB int
	// MaxPending bounds the readings in memory (default 500000); past it readings are dropped,
	// counted and reported through OnDrop.
	MaxPending int
	OnDrop     func(n, total int64, reason string)
	OnStored   func(rs []Reading, replayed int)

	Registerer prometheus.Registerer
	Logger     *slog.Logger

	db       *sql.DB
	buf      *batcher
	backlog  int // pending readings past which Backlogged is true
	dropMu   sync.Mutex
	dropped  int64
	mDropped prometheus.Counter
	mWritten prometheus.Counter
	cancel   context.CancelFunc
	done     chan struct{}
	ckptDone chan struct{}
	closeOne sync.Once

	ids map[seriesKey]int64 // series ids committed to the file; the writer goroutine's alone
}

// seriesKey names a series: what a point row leaves to its series row.
type seriesKey struct{ device, metric, site, unit string }

// The file keeps each series (device, metric, site, unit) once and its points by series id
// and time. A point row is then a few integers and a float instead of four strings: about 2.4
// times fewer CPU microseconds a reading written than one row of strings per reading (the
// layout of files made before, which Initialize converts), and the key compares integers.
// A reading keeps the site and unit it was stored with: a device moved to another site, or a
// profile whose unit changed, starts a series of its own.
const sqliteSchema = `
CREATE TABLE IF NOT EXISTS series (
    id     INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    metric TEXT NOT NULL,
    site   TEXT NOT NULL,
    unit   TEXT NOT NULL,
    UNIQUE (device, metric, site, unit)
);
CREATE TABLE IF NOT EXISTS points (
    series  INTEGER NOT NULL,
    ts      INTEGER NOT NULL, -- unix ms of Reading.Time
    value   REAL NOT NULL,
    quality TEXT NOT NULL,
    recv    INTEGER NOT NULL,
    flag    TEXT NOT NULL DEFAULT '', -- HJ 212 data flag ('' for MQTT readings)
    PRIMARY KEY (series, ts)
) WITHOUT ROWID;
`

// convertReadings moves a file of the earlier layout (one table readings, a row of strings
// per reading) into series and points, in one transaction: a file that fails half way keeps
// its old table and is converted again at the next start.
func convertReadings(db *sql.DB, log *slog.Logger) error {
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'readings'`).Scan(&n); err != nil || n == 0 {
		return err
	}
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	var cols int
	if err := tx.QueryRow(`SELECT COUNT(*) FROM pragma_table_info('readings') WHERE name = 'flag'`).Scan(&cols); err != nil {
		return err
	}
	flag := "''" // files made before HJ 212 have no flag column
	if cols > 0 {
		flag = "r.flag"
	}
	log.Info("ingest: converting the telemetry file to series and points (once; a large file takes minutes)")
	if _, err := tx.Exec(`INSERT OR IGNORE INTO series (device, metric, site, unit) SELECT DISTINCT device, metric, site, unit FROM readings`); err != nil {
		return err
	}
	res, err := tx.Exec(`INSERT OR REPLACE INTO points (series, ts, value, quality, recv, flag)
		SELECT s.id, r.ts, r.value, r.quality, r.recv, ` + flag + ` FROM readings r
		JOIN series s ON s.device = r.device AND s.metric = r.metric AND s.site = r.site AND s.unit = r.unit`)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(`DROP TABLE readings`); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	moved, _ := res.RowsAffected()
	log.Info("ingest: telemetry file converted to series and points", "readings", moved)
	return nil
}

// Initialize opens (and creates) the file and starts the writer.
func (s *SQLiteTelemetry) Initialize() error {
	if s.Path == "" {
		return errors.New("ingest: SQLiteTelemetry.Path is required")
	}
	if s.Retention <= 0 {
		s.Retention = 30 * 24 * time.Hour
	}
	if s.BatchSize <= 0 {
		s.BatchSize = 50000
	}
	if s.CacheMiB <= 0 {
		s.CacheMiB = 64
	}
	if s.FlushInterval <= 0 {
		s.FlushInterval = 250 * time.Millisecond
	}
	if s.MaxPending <= 0 {
		s.MaxPending = 500000
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o750); err != nil {
		return fmt.Errorf("ingest: telemetry directory: %w", err)
	}
	// wal_autocheckpoint(0): the writer does not copy the WAL back into the file at its
	// commits; checkpointLoop does, on another connection and so on another core.
	// temp_store(MEMORY): a multi-row INSERT keeps a statement journal (to undo a statement
	// that fails half way); in memory it costs no system calls.
	db, err := sql.Open("sqlite", fmt.Sprintf("file:%s?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)"+
		"&_pragma=cache_size(-%d)&_pragma=temp_store(MEMORY)&_pragma=wal_autocheckpoint(0)", s.Path, s.CacheMiB*1024))
	if err != nil {
		return fmt.Errorf("ingest: telemetry %s: %w", s.Path, err)
	}
	db.SetMaxOpenConns(4)
	if _, err := db.Exec(sqliteSchema); err != nil {
		_ = db.Close()
		return fmt.Errorf("ingest: telemetry schema %s: %w", s.Path, err)
	}
	if err := convertReadings(db, s.Logger); err != nil {
		_ = db.Close()
		return fmt.Errorf("ingest: telemetry conversion %s: %w", s.Path, err)
	}
	s.db = db
	s.ids = map[seriesKey]int64{}
	s.buf = newBatcher(s.BatchSize)
	s.backlog = min(2*s.BatchSize, s.MaxPending/2)
	s.mDropped = register(s.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "offsite_telemetry_sqlite_dropped_total", Help: "Readings lost because SQLite could not keep up or failed."}))
	s.mWritten = register(s.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "offsite_telemetry_sqlite_written_total", Help: "Readings written to the SQLite telemetry file."}))
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done, s.ckptDone = cancel, make(chan struct{}), make(chan struct{})
	go s.run(ctx)
	go s.checkpointLoop(ctx)
	return nil
}

// Close writes what is buffered and closes the file.
func (s *SQLiteTelemetry) Close() {
	s.closeOne.Do(func() {
		if s.cancel == nil {
			return
		}
		s.cancel()
		<-s.done
		<-s.ckptDone
		if _, err := s.db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			s.Logger.Warn("ingest: telemetry checkpoint at close", "err", err)
		}
		_ = s.db.Close()
	})
}

// Write implements Sink.
func (s *SQLiteTelemetry) Write(rs []Reading) {
	if s.buf.len() > s.MaxPending {
		s.buf.accepted.Add(int64(len(rs)))
		s.buf.handled.Add(int64(len(rs)))
		s.drop(int64(len(rs)), "telemetry buffer full")
		return
	}
	s.buf.add(rs)
}

// Backlogged reports whether more readings wait than the writer takes in two batches: a
// source that can hold its input back (Pipeline.Backlogged) should.
func (s *SQLiteTelemetry) Backlogged() bool { return s.buf.len() >= s.backlog }

// Flush waits until what Write accepted before the call is written.
func (s *SQLiteTelemetry) Flush(ctx context.Context) error { return s.buf.wait(ctx) }

func (s *SQLiteTelemetry) drop(n int64, reason string) {
	s.dropMu.Lock()
	s.dropped += n
	total := s.dropped
	s.dropMu.Unlock()
	s.mDropped.Add(float64(n))
	s.Logger.Error("ingest: telemetry readings lost", "readings", n, "reason", reason)
	if s.OnDrop != nil {
		s.OnDrop(n, total, reason)
	}
}

func (s *SQLiteTelemetry) run(ctx context.Context) {
	defer close(s.done)
	tick := time.NewTicker(s.FlushInterval)
	defer tick.Stop()
	retain := time.NewTicker(time.Hour)
	defer retain.Stop()
	s.applyRetention()
	for {
		stopping := false
		select {
		case <-ctx.Done():
			stopping = true
		case <-tick.C:
		case <-s.buf.notify:
		case <-retain.C:
			s.applyRetention()
		}
		for {
			batch := s.buf.take(s.BatchSize)
			if len(batch) == 0 {
				break
			}
			if err := s.writeBatch(batch); err != nil {
				s.drop(int64(len(batch)), err.Error())
			} else {
				s.mWritten.Add(float64(len(batch)))
				if s.OnStored != nil {
					s.OnStored(batch, 0)
				}
			}
			s.buf.handled.Add(int64(len(batch)))
		}
		if stopping {
			return
		}
	}
}

// checkpointLoop copies committed pages from the WAL back into the file every second
// (PASSIVE: it never blocks the writer or readers), so the writer's commits only append.
func (s *SQLiteTelemetry) checkpointLoop(ctx context.Context) {
	defer close(s.ckptDone)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`); err != nil && ctx.Err() == nil {
			s.Logger.Warn("ingest: telemetry checkpoint", "err", err)
		}
	}
}

func (s *SQLiteTelemetry) writeBatch(batch []Reading) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.tryWrite(batch); err == nil {
			return nil
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	return err
}

// point is a reading on its way into the points table: its series id and time, and which
// reading of the batch it is.
type point struct {
	series, ts int64
	i          int32
}

func (s *SQLiteTelemetry) tryWrite(batch []Reading) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	// Series first seen in this batch get their ids inside its transaction; they join the
	// cache only once it commits.
	var added map[seriesKey]int64
	pts := make([]point, len(batch))
	for i := range batch {
		r := &batch[i]
		k := seriesKey{r.Device, r.Metric, r.Site, r.Unit}
		id, ok := s.ids[k]
		if !ok {
			if id, ok = added[k]; !ok {
				if id, err = seriesID(ctx, tx, k); err != nil {
					return err
				}
				if added == nil {
					added = map[seriesKey]int64{}
				}
				added[k] = id
			}
		}
		pts[i] = point{series: id, ts: r.Time.UnixMilli(), i: int32(i)}
	}
	// In key order (series, time) the inserts walk the table's pages in order instead of
	// jumping between series: each page is found warm and split once. A reading written twice
	// in one batch keeps the later one, as INSERT OR REPLACE does across batches.
	slices.SortFunc(pts, func(a, b point) int {
		if c := cmp.Compare(a.series, b.series); c != 0 {
			return c
		}
		if c := cmp.Compare(a.ts, b.ts); c != 0 {
			return c
		}
		return cmp.Compare(a.i, b.i)
	})
	// Many rows a statement: with the pure-Go driver the cost is mostly per statement
	// execution (bind, VDBE set-up), not per row.
	full, err := tx.PrepareContext(ctx, insertPoints(sqliteRowsPerInsert))
	if err != nil {
		return err
	}
	defer full.Close()
	args := make([]any, 0, pointColumns*sqliteRowsPerInsert)
	for len(pts) > 0 {
		n := min(len(pts), sqliteRowsPerInsert)
		args = args[:0]
		for _, p := range pts[:n] {
			r := &batch[p.i]
			args = append(args, p.series, p.ts, r.Value, string(r.Quality), r.ReceiveTime.UnixMilli(), r.Flag)
		}
		if n == sqliteRowsPerInsert {
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, insertPoints(n), args...)
		}
		if err != nil {
			return err
		}
		pts = pts[n:]
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	maps.Copy(s.ids, added)
	return nil
}

// seriesID returns the id of series k, adding it to the file if it is new.
func seriesID(ctx context.Context, tx *sql.Tx, k seriesKey) (int64, error) {
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO series (device, metric, site, unit) VALUES (?, ?, ?, ?)`,
		k.device, k.metric, k.site, k.unit); err != nil {
		return 0, err
	}
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM series WHERE device = ? AND metric = ? AND site = ? AND unit = ?`,
		k.device, k.metric, k.site, k.unit).Scan(&id)
	return id, err
}

// sqliteRowsPerInsert rows go in one INSERT (pointColumns parameters each, far below SQLite's
// limit).
const (
	sqliteRowsPerInsert = 128
	pointColumns        = 6
)

// insertPoints is an INSERT of n points. A point written twice (same series and time) keeps
// the last value.
func insertPoints(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT OR REPLACE INTO points (series, ts, value, quality, recv, flag) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`(?, ?, ?, ?, ?, ?)`)
	}
	return b.String()
}

// applyRetention deletes points older than Retention series by series (each a range of the
// key, so no index on time is kept up at every insert), a few hundred series a transaction so
// that readers and the next batch do not wait long, and then the series left empty.
func (s *SQLiteTelemetry) applyRetention() {
	cut := time.Now().Add(-s.Retention).UnixMilli()
	rows, err := s.db.Query(`SELECT id FROM series ORDER BY id`)
	if err != nil {
		s.Logger.Warn("ingest: telemetry retention", "err", err)
		return
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err == nil {
			ids = append(ids, id)
		}
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		s.Logger.Warn("ingest: telemetry retention", "err", err)
		return
	}
	for part := range slices.Chunk(ids, 256) {
		if err := s.deleteBefore(part, cut); err != nil {
			s.Logger.Warn("ingest: telemetry retention", "err", err)
			return
		}
	}
	res, err := s.db.Exec(`DELETE FROM series WHERE NOT EXISTS (SELECT 1 FROM points WHERE points.series = series.id)`)
	if err != nil {
		s.Logger.Warn("ingest: telemetry retention", "err", err)
		return
	}
	if n, _ := res.RowsAffected(); n > 0 {
		clear(s.ids) // ids of the series deleted must not be used again; the rest are looked up anew
	}
}

func (s *SQLiteTelemetry) deleteBefore(ids []int64, cut int64) error {
	tx, err := s.db.Begin()
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	st, err := tx.Prepare(`DELETE FROM points WHERE series = ? AND ts < ?`)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, id := range ids {
		if _, err := st.Exec(id, cut); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Latest implements Telemetry. A metric kept in several series (the device moved to another
// site) answers with the newest point of any of them.
func (s *SQLiteTelemetry) Latest(ctx context.Context, device string) ([]Reading, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT s.metric, p.ts, p.value, s.site, s.unit, p.quality, p.recv, p.flag
		FROM series s JOIN points p ON p.series = s.id AND p.ts = (SELECT MAX(ts) FROM points WHERE series = s.id)
		WHERE s.device = ? ORDER BY s.metric, p.ts DESC`, device)
	if err != nil {
		return nil, fmt.Errorf("ingest: telemetry latest %s: %w", device, err)
	}
	defer rows.Close()
	out := []Reading{}
	for rows.Next() {
		var (
			r        Reading
			ts, recv int64
			q        string
		)
		if err := rows.Scan(&r.Metric, &ts, &r.Value, &r.Site, &r.Unit, &q, &recv, &r.Flag); err != nil {
			return nil, err
		}
		if len(out) > 0 && out[len(out)-1].Metric == r.Metric {
			continue // an older series of the same metric
		}
		r.Device, r.Quality, r.Time, r.ReceiveTime = device, Quality(q), time.UnixMilli(ts), time.UnixMilli(recv)
		out = append(out, r)
	}
	return out, rows.Err()
}

// Series implements Telemetry.
func (s *SQLiteTelemetry) Series(ctx context.Context, q SeriesQuery) ([]Point, error) {
	step := q.Step.Milliseconds()
	if step <= 0 {
		return nil, errors.New("ingest: series step must be positive")
	}
	rows, err := s.db.QueryContext(ctx, `SELECT (ts / ?) * ? AS b, AVG(value), MIN(value), MAX(value), COUNT(*),
		COALESCE(GROUP_CONCAT(DISTINCT CASE WHEN flag NOT IN ('', 'N') THEN flag END), '')
		FROM points WHERE series IN (SELECT id FROM series WHERE device = ? AND metric = ?) AND ts >= ? AND ts < ?
		GROUP BY b ORDER BY b`,
		step, step, q.Device, q.Metric, q.From.UnixMilli(), q.To.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("ingest: telemetry series %s/%s: %w", q.Device, q.Metric, err)
	}
	defer rows.Close()
	out := []Point{}
	for rows.Next() {
		var (
			p Point
			b int64
		)
		if err := rows.Scan(&b, &p.Mean, &p.Min, &p.Max, &p.Count, &p.Flags); err != nil {
			return nil, err
		}
		p.Flags = strings.ReplaceAll(p.Flags, ",", "")
		p.Time = time.UnixMilli(b).UTC()
		out = append(out, p)
	}
	return out, rows.Err()
}

// Count returns the number of readings of device (all if "").
func (s *SQLiteTelemetry) Count(ctx context.Context, device string) (int64, error) {
	var n int64
	var err error
	if device == "" {
		err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM points`).Scan(&n)
	} else {
		err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM points WHERE series IN (SELECT id FROM series WHERE device = ?)`, device).Scan(&n)
	}
	return n, err
}
