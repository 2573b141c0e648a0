package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	"github.com/prometheus/client_golang/prometheus"
)

// InfluxStore keeps readings in InfluxDB (2.x, or 1.8+ through its v2-compatible API: Bucket
// "db/rp", Token "user:password" or empty). Write only appends to an in-memory buffer; one
// writer goroutine sends batches of BatchSize readings as line protocol. When InfluxDB fails or
// is too slow, batches go to a disk spool under SpoolDir (at most SpoolMaxBytes) and are
// replayed oldest first when it answers again; while the spool is not empty new batches queue
// behind it, so replay keeps the order. Readings that fit neither in memory nor in the spool are
// dropped, counted and reported through OnDrop so the gateway can raise a maintainer event.
//
// Points: measurement Measurement (default "reading"), one point per device and time (one
// message) with tag device, tag quality only when not "good", one float field per metric, and
// recv_ms (receive time, unix ms) with ReceiveTimeField; timestamp = Reading.Time. Site and unit
// follow from the device and its profile (Describe), so they are not stored on every point.
type InfluxStore struct {
	URL    string
	Org    string // ignored by InfluxDB 1.8
	Bucket string
	Token  string

	Measurement string
	// ReceiveTimeField adds the receive time of each message as field recv_ms.
	ReceiveTimeField bool
	BatchSize        int           // readings per write (default 5000)
	FlushInterval    time.Duration // longest a reading waits in memory (default 250ms)
	WriteTimeout     time.Duration // one write request (default 10s)
	// MaxPending bounds the readings in memory (default 200000); past it Write moves them to
	// the spool at once.
	MaxPending int
	// SpoolDir is where batches wait while InfluxDB is down (required).
	SpoolDir string
	// SpoolMaxBytes bounds the spool on disk (default 1 GiB).
	SpoolMaxBytes int64
	// RetryInterval is the pause between replay attempts while InfluxDB is down (default 2s).
	RetryInterval time.Duration

	// Describe supplies site and unit for Latest (Directory.Describe); without it they are "".
	Describe func(device, metric string) (site, unit string)

	// OnDrop is called (from the writer, must not block) when readings are lost because the
	// spool is full or damaged: n this time, total since start.
	OnDrop func(n, total int64, reason string)
	// OnStored is called after readings reached InfluxDB: rs for a direct write, replayed for
	// the count of a spooled batch. For benchmarks and tests; must not block.
	OnStored func(rs []Reading, replayed int)

	Registerer prometheus.Registerer
	Logger     *slog.Logger

	client   influxdb2.Client
	write    api.WriteAPIBlocking
	query    api.QueryAPI
	buf      *batcher
	spool    *spool
	spillMu  sync.Mutex
	dropped  int64 // writer goroutine only
	cancel   context.CancelFunc
	done     chan struct{}
	closeOne sync.Once

	mWritten prometheus.Counter
	mErrors  prometheus.Counter
	mDropped prometheus.Counter
	mSpooled prometheus.Counter
}

// Initialize opens the spool and starts the writer. It does not need InfluxDB to be up.
func (s *InfluxStore) Initialize() error {
	if s.URL == "" || s.Bucket == "" {
		return errors.New("ingest: InfluxStore needs URL and Bucket")
	}
	if s.SpoolDir == "" {
		return errors.New("ingest: InfluxStore needs SpoolDir")
	}
	if s.Measurement == "" {
		s.Measurement = "reading"
	}
	if s.BatchSize <= 0 {
		s.BatchSize = 5000
	}
	if s.FlushInterval <= 0 {
		s.FlushInterval = 250 * time.Millisecond
	}
	if s.WriteTimeout <= 0 {
		s.WriteTimeout = 10 * time.Second
	}
	if s.MaxPending <= 0 {
		s.MaxPending = 200000
	}
	if s.SpoolMaxBytes <= 0 {
		s.SpoolMaxBytes = 1 << 30
	}
	if s.RetryInterval <= 0 {
		s.RetryInterval = 2 * time.Second
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	sp, err := openSpool(s.SpoolDir, s.SpoolMaxBytes)
	if err != nil {
		return err
	}
	s.spool = sp
	if b, n := sp.size(); b > 0 {
		s.Logger.Info("ingest: influx spool holds readings from before the restart; replaying", "bytes", b, "readings", n)
	}
	opts := influxdb2.DefaultOptions().SetHTTPRequestTimeout(uint(s.WriteTimeout / time.Second)).SetUseGZip(false)
	s.client = influxdb2.NewClientWithOptions(s.URL, s.Token, opts)
	s.write = s.client.WriteAPIBlocking(s.Org, s.Bucket)
	s.query = s.client.QueryAPI(s.Org)
	s.buf = newBatcher(s.BatchSize)

	s.mWritten = register(s.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "offsite_telemetry_influx_written_total", Help: "Readings written to InfluxDB (direct and replayed)."}))
	s.mErrors = register(s.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "offsite_telemetry_influx_write_errors_total", Help: "Failed InfluxDB write requests."}))
	s.mDropped = register(s.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "offsite_telemetry_dropped_total", Help: "Readings lost because the spool was full or damaged."}))
	s.mSpooled = register(s.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "offsite_telemetry_spooled_total", Help: "Readings written to the disk spool."}))
	register(s.Registerer, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "offsite_telemetry_spool_bytes", Help: "Bytes waiting in the InfluxDB spool."},
		func() float64 { b, _ := s.spool.size(); return float64(b) }))

	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	go s.run(ctx)
	return nil
}

// Write implements Sink. It never waits on InfluxDB.
func (s *InfluxStore) Write(rs []Reading) {
	if n := s.buf.add(rs); n > s.MaxPending {
		// InfluxDB is slower than the input: move the backlog to disk now rather than hold it.
		s.spillMu.Lock()
		s.spoolReadings(s.buf.take(n), "backlog")
		s.spillMu.Unlock()
	}
}

// Flush waits until what Write accepted before the call is in InfluxDB or in the spool.
func (s *InfluxStore) Flush(ctx context.Context) error { return s.buf.wait(ctx) }

// Backlog returns the bytes and readings waiting in the spool.
func (s *InfluxStore) Backlog() (bytes, readings int64) { return s.spool.size() }

// Close writes what is in memory (to InfluxDB or the spool) and stops.
func (s *InfluxStore) Close() {
	s.closeOne.Do(func() {
		if s.cancel == nil {
			return
		}
		s.cancel()
		<-s.done
		s.spool.close()
		s.client.Close()
	})
}

func (s *InfluxStore) run(ctx context.Context) {
	defer close(s.done)
	tick := time.NewTicker(s.FlushInterval)
	defer tick.Stop()
	var nextTry time.Time
	for {
		stopping := false
		select {
		case <-ctx.Done():
			stopping = true
		case <-tick.C:
		case <-s.buf.notify:
		}
		for {
			batch := s.buf.take(s.BatchSize)
			if len(batch) == 0 {
				break
			}
			s.spillMu.Lock()
			direct := !stopping && s.spool.empty() && !time.Now().Before(nextTry)
			if !direct {
				// Behind the spool: keep the order.
				s.spoolReadings(batch, "influx unavailable")
			}
			s.spillMu.Unlock()
			if direct {
				// Not under spillMu: a slow InfluxDB must not hold up Write's spill path.
				if err := s.send(encodeLines(s.Measurement, s.ReceiveTimeField, batch), len(batch)); err != nil {
					s.Logger.Warn("ingest: InfluxDB write failed; spooling to disk", "readings", len(batch), "err", err)
					nextTry = time.Now().Add(s.RetryInterval)
					s.spillMu.Lock()
					s.spoolReadings(batch, "influx unavailable")
					s.spillMu.Unlock()
				} else {
					s.buf.handled.Add(int64(len(batch)))
					if s.OnStored != nil {
						s.OnStored(batch, 0)
					}
				}
			}
			if len(batch) < s.BatchSize {
				break
			}
		}
		if stopping {
			return
		}
		if !s.spool.empty() && !time.Now().Before(nextTry) {
			if err := s.replay(ctx); err != nil {
				nextTry = time.Now().Add(s.RetryInterval)
			}
		}
	}
}

// replay sends spooled batches oldest first for at most a second, so new readings keep moving
// to the spool behind them.
func (s *InfluxStore) replay(ctx context.Context) error {
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		data, n, ok, corrupt := s.spool.peek()
		if corrupt > 0 {
			s.Logger.Error("ingest: InfluxDB spool segment damaged; its rest is lost", "bytes", corrupt)
			s.drop(int64(float64(corrupt)/80), "spool segment damaged") // ~80 bytes a line
		}
		if !ok {
			s.Logger.Info("ingest: InfluxDB spool replayed")
			return nil
		}
		if err := s.send(string(data), n); err != nil {
			s.Logger.Warn("ingest: InfluxDB still unavailable; spool kept", "err", err)
			return err
		}
		s.spool.pop(data, n)
		if s.OnStored != nil {
			s.OnStored(nil, n)
		}
	}
	return nil
}

func (s *InfluxStore) send(lines string, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.WriteTimeout)
	defer cancel()
	if err := s.write.WriteRecord(ctx, lines); err != nil {
		s.mErrors.Inc()
		return err
	}
	s.mWritten.Add(float64(n))
	return nil
}

// spoolReadings appends batch to the spool, or drops and reports it. Callers hold spillMu.
func (s *InfluxStore) spoolReadings(batch []Reading, why string) {
	defer s.buf.handled.Add(int64(len(batch)))
	for len(batch) > 0 {
		n := min(len(batch), s.BatchSize)
		if err := s.spool.append([]byte(encodeLines(s.Measurement, s.ReceiveTimeField, batch[:n])), n); err != nil {
			s.Logger.Error("ingest: InfluxDB spool cannot take readings; they are lost", "readings", len(batch), "why", why, "err", err)
			s.drop(int64(len(batch)), err.Error())
			return
		}
		s.mSpooled.Add(float64(n))
		batch = batch[n:]
	}
}

func (s *InfluxStore) drop(n int64, reason string) {
	if n <= 0 {
		return
	}
	s.dropped += n
	s.mDropped.Add(float64(n))
	if s.OnDrop != nil {
		s.OnDrop(n, s.dropped, reason)
	}
}

var tagEscaper = strings.NewReplacer(",", `\,`, "=", `\=`, " ", `\ `, "\n", `\n`, "\\", `\\`)

// encodeLines renders readings as InfluxDB line protocol, nanosecond timestamps: one point per
// device and time with one field per metric (a message's readings share both), which costs
// InfluxDB one series lookup per message instead of one per reading.
func encodeLines(measurement string, receiveTime bool, rs []Reading) string {
	var b strings.Builder
	b.Grow(len(rs) * 40)
	for i := 0; i < len(rs); {
		r := rs[i]
		j := i
		b.WriteString(measurement)
		writeTag(&b, "device", r.Device)
		if r.Quality != "" && r.Quality != QualityGood {
			writeTag(&b, "quality", string(r.Quality))
		}
		sep := byte(' ')
		for ; j < len(rs) && rs[j].Device == r.Device && rs[j].Time.Equal(r.Time) && rs[j].Quality == r.Quality; j++ {
			v := rs[j].Value
			if math.IsNaN(v) || math.IsInf(v, 0) {
				continue // validation refuses these; never send a line InfluxDB would reject
			}
			b.WriteByte(sep)
			sep = ','
			writeKey(&b, rs[j].Metric)
			b.WriteByte('=')
			b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
		}
		if sep == ' ' {
			// Nothing finite: drop the half-written line.
			str := b.String()
			b.Reset()
			b.WriteString(str[:strings.LastIndexByte(str, '\n')+1])
			i = j
			continue
		}
		if receiveTime {
			b.WriteString(",recv_ms=")
			b.WriteString(strconv.FormatInt(r.ReceiveTime.UnixMilli(), 10))
			b.WriteByte('i')
		}
		b.WriteByte(' ')
		b.WriteString(strconv.FormatInt(r.Time.UnixNano(), 10))
		b.WriteByte('\n')
		i = j
	}
	return b.String()
}

func writeKey(b *strings.Builder, k string) {
	if strings.ContainsAny(k, ", =\\\n") {
		tagEscaper.WriteString(b, k)
	} else {
		b.WriteString(k)
	}
}

func writeTag(b *strings.Builder, k, v string) {
	if v == "" {
		return
	}
	b.WriteByte(',')
	b.WriteString(k)
	b.WriteByte('=')
	if strings.ContainsAny(v, ", =\\\n") {
		tagEscaper.WriteString(b, v)
	} else {
		b.WriteString(v)
	}
}

// fluxString quotes s as a Flux string literal.
func fluxString(s string) string {
	return strconv.Quote(s)
}

// Latest implements Telemetry: the last point of each metric of device in the past 30 days.
func (s *InfluxStore) Latest(ctx context.Context, device string) ([]Reading, error) {
	q := fmt.Sprintf(`from(bucket: %s)
  |> range(start: -30d)
  |> filter(fn: (r) => r._measurement == %s and r.device == %s and r._field != "recv_ms")
  |> group(columns: ["_field"])
  |> last()`, fluxString(s.Bucket), fluxString(s.Measurement), fluxString(device))
	res, err := s.query.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("ingest: influx latest %s: %w", device, err)
	}
	defer res.Close()
	out := []Reading{}
	for res.Next() {
		rec := res.Record()
		v, _ := rec.Value().(float64)
		r := Reading{Device: device, Metric: rec.Field(), Value: v, Time: rec.Time(), Quality: QualityGood}
		if q := str(rec.ValueByKey("quality")); q != "" {
			r.Quality = Quality(q)
		}
		if s.Describe != nil {
			r.Site, r.Unit = s.Describe(device, r.Metric)
		}
		out = append(out, r)
	}
	if res.Err() != nil {
		return nil, fmt.Errorf("ingest: influx latest %s: %w", device, res.Err())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Metric < out[j].Metric })
	return out, nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// Series implements Telemetry with aggregateWindow (mean, min, max, count per step).
func (s *InfluxStore) Series(ctx context.Context, q SeriesQuery) ([]Point, error) {
	if q.Step <= 0 {
		return nil, errors.New("ingest: series step must be positive")
	}
	base := fmt.Sprintf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == %s and r.device == %s and r._field == %s)
  |> group()`, fluxString(s.Bucket), q.From.UTC().Format(time.RFC3339Nano), q.To.UTC().Format(time.RFC3339Nano),
		fluxString(s.Measurement), fluxString(q.Device), fluxString(q.Metric))
	step := fmt.Sprintf("%dms", q.Step.Milliseconds())
	byTime := map[int64]*Point{}
	for _, fn := range []string{"mean", "min", "max", "count"} {
		// timeSrc _start labels each window by its beginning, as SQLiteTelemetry does.
		fq := fmt.Sprintf(`%s |> aggregateWindow(every: %s, fn: %s, createEmpty: false, timeSrc: "_start")`, base, step, fn)
		res, err := s.query.Query(ctx, fq)
		if err != nil {
			return nil, fmt.Errorf("ingest: influx series %s/%s: %w", q.Device, q.Metric, err)
		}
		for res.Next() {
			rec := res.Record()
			t := rec.Time()
			p := byTime[t.UnixNano()]
			if p == nil {
				p = &Point{Time: t}
				byTime[t.UnixNano()] = p
			}
			switch fn {
			case "mean":
				p.Mean = toFloat(rec.Value())
			case "min":
				p.Min = toFloat(rec.Value())
			case "max":
				p.Max = toFloat(rec.Value())
			case "count":
				p.Count = int64(toFloat(rec.Value()))
			}
		}
		err = res.Err()
		res.Close()
		if err != nil {
			return nil, fmt.Errorf("ingest: influx series %s/%s: %w", q.Device, q.Metric, err)
		}
	}
	out := make([]Point, 0, len(byTime))
	for _, p := range byTime {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int64:
		return float64(x)
	case uint64:
		return float64(x)
	}
	return 0
}

// Count returns the number of points of device (all devices if "") in [from, to): for tests
// and the benchmark's loss check.
func (s *InfluxStore) Count(ctx context.Context, device string, from, to time.Time) (int64, error) {
	filter := fmt.Sprintf(`r._measurement == %s and r._field != "recv_ms"`, fluxString(s.Measurement))
	if device != "" {
		filter += " and r.device == " + fluxString(device)
	}
	q := fmt.Sprintf(`from(bucket: %s) |> range(start: %s, stop: %s) |> filter(fn: (r) => %s) |> group() |> count()`,
		fluxString(s.Bucket), from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano), filter)
	res, err := s.query.Query(ctx, q)
	if err != nil {
		return 0, err
	}
	defer res.Close()
	var n int64
	for res.Next() {
		n += int64(toFloat(res.Record().Value()))
	}
	return n, res.Err()
}
