package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	http2 "github.com/influxdata/influxdb-client-go/v2/api/http"
	"github.com/prometheus/client_golang/prometheus"
)

// InfluxStore keeps readings in InfluxDB (2.x, or 1.8+ through its v2-compatible API: Bucket
// "db/rp", Token "user:password" or empty). Write only encodes the readings as line protocol
// (appendLines) into an in-memory buffer, in chunks of about BatchSize readings; one writer
// goroutine sends them through influxdb-client-go's blocking write API, 8 full chunks to a
// request as soon as there are 8, or whatever there is every FlushInterval. When InfluxDB
// fails or is too slow, those requests go to a disk spool under SpoolDir (at most
// SpoolMaxBytes) and are replayed oldest first when it answers again; while the spool is not
// empty new requests queue behind it, so replay keeps the order. Readings that fit neither in
// memory nor in the spool are dropped, counted and reported through OnDrop so the gateway can
// raise a maintainer event.
//
// Points: measurement Measurement (default "reading"), one point per device and time (one
// message) with tag device, tag quality only when not "good", one float field per metric, and
// recv_ms (receive time, unix ms) with ReceiveTimeField; timestamp = Reading.Time, in
// nanoseconds (device times may carry sub-millisecond digits, and the spool keeps what was
// encoded). Site and unit follow from the device and its profile (Describe), so they are not
// stored on every point.
type InfluxStore struct {
	URL    string
	Org    string // ignored by InfluxDB 1.8
	Bucket string
	Token  string

	Measurement string
	// ReceiveTimeField adds the receive time of each message as field recv_ms.
	ReceiveTimeField bool
	// BatchSize is the readings of one chunk (default 5000); a write carries up to
	// maxChunksPerWrite (8) of them: 5,000 points of 8 readings, the batch size InfluxDB
	// recommends.
	BatchSize     int
	FlushInterval time.Duration // longest a reading waits in memory (default 250ms)
	WriteTimeout  time.Duration // one write request (default 10s)
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
	// OnStored is called after a write request reached InfluxDB, with the readings it carried,
	// whether it was replayed from the spool and, for a direct write, the timestamp (unix ns)
	// of each point in it. For benchmarks and tests; must not block or keep pointTimes.
	OnStored func(readings int, replayed bool, pointTimes []int64)

	Registerer prometheus.Registerer
	Logger     *slog.Logger

	client   influxdb2.Client
	query    api.QueryAPI
	writer   api.WriteAPIBlocking // no implicit batching: one WriteRecord is one request
	spool    *spool
	spillMu  sync.Mutex // orders taking from the buffer with spooling, so the spool stays in order
	dropped  int64      // writer goroutine only
	cancel   context.CancelFunc
	done     chan struct{}
	closeOne sync.Once

	// The buffer: encoded readings in chunks of about BatchSize readings, oldest first. A
	// chunk is sealed when full (or when the writer wants everything: a tick, Flush, Close);
	// Write appends to the last chunk while it is open.
	mu       sync.Mutex
	chunks   []*pointChunk
	free     []*pointChunk // sent chunks, kept for their capacity
	pending  int           // readings in chunks
	scratch  sync.Pool     // *pointChunk: one Write's encoding before it takes mu
	notify   chan struct{}
	flushAll atomic.Bool  // the writer should seal and send the open chunk too
	accepted atomic.Int64 // readings ever accepted
	handled  atomic.Int64 // readings stored, spooled or dropped

	mWritten prometheus.Counter
	mErrors  prometheus.Counter
	mDropped prometheus.Counter
	mSpooled prometheus.Counter
}

// pointChunk is readings encoded as line protocol: one write request or spool record.
type pointChunk struct {
	data     []byte
	readings int
	times    []int64 // timestamp of each point, only with OnStored
	sealed   bool
}

func (c *pointChunk) reset() *pointChunk {
	c.data, c.times, c.readings, c.sealed = c.data[:0], c.times[:0], 0, false
	return c
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
	// The client's options, all of them explicit: a write request is what run puts together
	// (batch size: up to maxChunksPerWrite chunks; the blocking API does no batching of its
	// own), nanosecond timestamps as the encoder writes them, no gzip (loopback or LAN: it
	// would cost the gateway more CPU than the bytes cost), no retries inside the library (the
	// spool retries), and its log quiet (the writer logs what fails).
	opts := influxdb2.DefaultOptions().
		SetBatchSize(uint(maxChunksPerWrite * s.BatchSize)).
		SetPrecision(time.Nanosecond).
		SetUseGZip(false).
		SetMaxRetries(0).
		SetLogLevel(0).
		SetHTTPRequestTimeout(uint(math.Ceil(s.WriteTimeout.Seconds())))
	s.client = influxdb2.NewClientWithOptions(s.URL, s.Token, opts)
	s.query = s.client.QueryAPI(s.Org)
	s.writer = s.client.WriteAPIBlocking(s.Org, s.Bucket)
	s.notify = make(chan struct{}, 1)
	s.scratch.New = func() any { return new(pointChunk) }

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

// Write implements Sink. It never waits on InfluxDB and does not keep rs.
func (s *InfluxStore) Write(rs []Reading) {
	if len(rs) == 0 {
		return
	}
	// Encoded before taking the lock, so the workers calling Write overlap.
	enc := s.scratch.Get().(*pointChunk).reset()
	enc.data, enc.times = appendLines(enc.data, enc.times, s.Measurement, s.ReceiveTimeField, rs, s.OnStored != nil)
	s.mu.Lock()
	c := s.openChunk()
	c.data = append(c.data, enc.data...)
	c.times = append(c.times, enc.times...)
	c.readings += len(rs)
	c.sealed = c.readings >= s.BatchSize
	s.pending += len(rs)
	s.accepted.Add(int64(len(rs)))
	// Every chunk is sealed now if c is: the writer is woken once a full write is waiting.
	full, backlog := c.sealed && s.pending >= maxChunksPerWrite*s.BatchSize, s.pending > s.MaxPending
	s.mu.Unlock()
	s.scratch.Put(enc)
	switch {
	case backlog:
		// InfluxDB is slower than the input: move the backlog to disk now rather than hold it.
		s.spillMu.Lock()
		s.sealOpen()
		s.spoolChunks(s.take(nil, math.MaxInt, true), "backlog")
		s.spillMu.Unlock()
	case full:
		s.wake()
	}
}

// openChunk returns the chunk Write appends to. Callers hold mu.
func (s *InfluxStore) openChunk() *pointChunk {
	if n := len(s.chunks); n > 0 && !s.chunks[n-1].sealed {
		return s.chunks[n-1]
	}
	var c *pointChunk
	if n := len(s.free); n > 0 {
		c, s.free = s.free[n-1].reset(), s.free[:n-1]
	} else {
		c = &pointChunk{data: make([]byte, 0, s.BatchSize*20)}
	}
	s.chunks = append(s.chunks, c)
	return c
}

// sealOpen closes the open chunk, so take returns it.
func (s *InfluxStore) sealOpen() {
	s.mu.Lock()
	if n := len(s.chunks); n > 0 {
		s.chunks[n-1].sealed = true
	}
	s.mu.Unlock()
}

// take removes the sealed chunks at the head, oldest first, as long as they hold at most
// maxReadings together (at least one chunk, however large). Unless partial, it takes nothing
// while the sealed chunks hold fewer than maxReadings.
func (s *InfluxStore) take(dst []*pointChunk, maxReadings int, partial bool) []*pointChunk {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !partial {
		sealed := s.pending
		if n := len(s.chunks); n > 0 && !s.chunks[n-1].sealed {
			sealed -= s.chunks[n-1].readings
		}
		if sealed < maxReadings {
			return dst
		}
	}
	n := 0
	for i, c := range s.chunks {
		if !c.sealed || i > 0 && n+c.readings > maxReadings {
			break
		}
		n += c.readings
		dst = append(dst, c)
	}
	taken := len(dst)
	if taken == 0 {
		return dst
	}
	rest := copy(s.chunks, s.chunks[taken:])
	clear(s.chunks[rest:])
	s.chunks = s.chunks[:rest]
	s.pending -= n
	return dst
}

// recycle keeps handled chunks for their buffers: enough for a write in flight and the next
// one filling, so a steady flow allocates none (each is about 100 KB at the defaults).
func (s *InfluxStore) recycle(c *pointChunk) {
	s.mu.Lock()
	if len(s.free) < 2*maxChunksPerWrite && cap(c.data) <= 4*s.BatchSize*40 {
		s.free = append(s.free, c)
	}
	s.mu.Unlock()
}

func (s *InfluxStore) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Flush waits until what Write accepted before the call is in InfluxDB or in the spool.
func (s *InfluxStore) Flush(ctx context.Context) error {
	target := s.accepted.Load()
	for s.handled.Load() < target {
		s.flushAll.Store(true)
		s.wake()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

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
	var batch []*pointChunk
	for {
		// A write goes once maxChunksPerWrite chunks are full; on a tick, Flush or Close
		// whatever is there, the open chunk too, so a reading waits at most FlushInterval.
		stopping, all := false, false
		select {
		case <-ctx.Done():
			stopping, all = true, true
		case <-tick.C:
			all = true
		case <-s.notify:
		}
		if s.flushAll.Swap(false) {
			all = true
		}
		if all {
			s.sealOpen()
		}
		for {
			// Full chunks go together, up to maxChunksPerWrite in one request: InfluxDB pays
			// per request (HTTP, a WAL fsync) and per series and field in it, not only per
			// point, so fewer, larger writes cost it less CPU per reading.
			s.spillMu.Lock()
			batch = s.take(batch[:0], maxChunksPerWrite*s.BatchSize, all)
			if len(batch) == 0 {
				s.spillMu.Unlock()
				break
			}
			direct := !stopping && s.spool.empty() && !time.Now().Before(nextTry)
			if !direct {
				// Behind the spool: keep the order.
				s.spoolChunks(batch, "influx unavailable")
			}
			s.spillMu.Unlock()
			if direct {
				// Not under spillMu: a slow InfluxDB must not hold up Write's spill path.
				s.sendChunks(batch, &nextTry)
			}
			for _, c := range batch {
				s.recycle(c)
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

// maxChunksPerWrite is how many full chunks a write waits for (unless FlushInterval, Flush or
// Close comes first) and carries at most. InfluxDB 1.8 pays per request (HTTP, a WAL fsync) and
// per series and field in it, so fewer, larger writes cost it less CPU per reading: about 6.3
// instead of 8.4 µs per 8-reading point at 40,000 readings a write instead of 5,000.
const maxChunksPerWrite = 8

// sendChunks writes batch to InfluxDB in one request, or spools it.
func (s *InfluxStore) sendChunks(batch []*pointChunk, nextTry *time.Time) {
	bufs, n := make([][]byte, len(batch)), 0
	for i, c := range batch {
		bufs[i] = c.data
		n += c.readings
	}
	if err := s.send(bufs, n); err != nil {
		s.Logger.Warn("ingest: InfluxDB write failed; spooling to disk", "readings", n, "err", err)
		*nextTry = time.Now().Add(s.RetryInterval)
		s.spillMu.Lock()
		s.spoolChunks(batch, "influx unavailable")
		s.spillMu.Unlock()
		return
	}
	for _, c := range batch {
		if s.OnStored != nil {
			s.OnStored(c.readings, false, c.times)
		}
		s.handled.Add(int64(c.readings))
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
		if err := s.send([][]byte{data}, n); err != nil {
			s.Logger.Warn("ingest: InfluxDB still unavailable; spool kept", "err", err)
			return err
		}
		s.spool.pop(data, n)
		if s.OnStored != nil {
			s.OnStored(n, true, nil)
		}
	}
	return nil
}

// send writes line protocol to InfluxDB in one request through the client library's blocking
// write API (the v2 write endpoint, which 1.8 serves too: token auth, nanosecond precision, any
// non-2xx is an error). The buffers go as one record: WriteRecord joins its arguments with
// newlines, and each buffer already ends with one.
//
// A write InfluxDB refuses as bad data (400, 422: a field type conflict, a line it cannot
// parse) is not retried — it would hold up the spool behind it forever. InfluxDB has stored the
// request's other points; the request is kept under SpoolDir/rejected for a person to look at,
// and its readings are counted as dropped (OnDrop), so a maintainer hears of it.
func (s *InfluxStore) send(lines [][]byte, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.WriteTimeout)
	defer cancel()
	err := s.write(ctx, lines)
	var rej *influxRejected
	if errors.As(err, &rej) {
		s.reject(lines, n, rej)
		return nil
	}
	if err != nil {
		s.mErrors.Inc()
		return err
	}
	s.mWritten.Add(float64(n))
	return nil
}

// write sends lines as one request and classifies what InfluxDB answers.
func (s *InfluxStore) write(ctx context.Context, lines [][]byte) error {
	size := 0
	for _, l := range lines {
		size += len(l)
	}
	var body strings.Builder
	body.Grow(size)
	for _, l := range lines {
		body.Write(l)
	}
	err := s.writer.WriteRecord(ctx, body.String())
	var herr *http2.Error
	if err == nil || !errors.As(err, &herr) || herr.StatusCode == 0 {
		return err // nil, or no answer (connection refused, timeout)
	}
	// InfluxDB 1.8 puts its message in X-Influxdb-Error (its JSON body says {"error": …},
	// which the library does not read); 2.x answers {"code": …, "message": …}, which it does.
	msg := herr.Header.Get("X-Influxdb-Error")
	if msg == "" {
		msg = herr.Message
	}
	status := fmt.Sprintf("%d %s", herr.StatusCode, http.StatusText(herr.StatusCode))
	if herr.StatusCode == http.StatusBadRequest || herr.StatusCode == http.StatusUnprocessableEntity {
		return &influxRejected{status: status, msg: strings.TrimSpace(msg)}
	}
	return fmt.Errorf("influx write: %s: %s: %w", status, strings.TrimSpace(msg), err)
}

// influxRejected is InfluxDB refusing a write's content (not its own trouble).
type influxRejected struct {
	status string
	msg    string
}

func (e *influxRejected) Error() string {
	return fmt.Sprintf("influx write refused: %s: %s", e.status, e.msg)
}

// rejectedKeep bounds the rejected requests kept on disk (the oldest go first).
const rejectedKeep = 100

func (s *InfluxStore) reject(lines [][]byte, n int, rej *influxRejected) {
	s.mErrors.Inc()
	dir := filepath.Join(s.SpoolDir, "rejected")
	name := filepath.Join(dir, fmt.Sprintf("%d.lp", time.Now().UnixNano()))
	kept := name
	if err := os.MkdirAll(dir, 0o750); err != nil {
		kept = "not kept: " + err.Error()
	} else if err := os.WriteFile(name, bytes.Join(lines, nil), 0o640); err != nil {
		kept = "not kept: " + err.Error()
	}
	if old, _ := filepath.Glob(filepath.Join(dir, "*.lp")); len(old) > rejectedKeep {
		sort.Strings(old)
		for _, f := range old[:len(old)-rejectedKeep] {
			_ = os.Remove(f)
		}
	}
	s.Logger.Error("ingest: InfluxDB refused a write as bad data; not retried", "readings", n, "kept", kept, "err", rej)
	s.drop(int64(n), fmt.Sprintf("InfluxDB refused a write (%s), kept in %s", rej.msg, kept))
}

// spoolChunks appends the chunks to the spool with one fsync, or drops and reports what does
// not fit. Callers hold spillMu.
func (s *InfluxStore) spoolChunks(cs []*pointChunk, why string) {
	recs := make([]spoolRecord, 0, len(cs))
	for _, c := range cs {
		if len(c.data) > 0 {
			recs = append(recs, spoolRecord{c.data, c.readings})
		}
	}
	written, err := s.spool.append(recs...)
	for i, r := range recs {
		if i < written {
			s.mSpooled.Add(float64(r.readings))
		} else {
			s.drop(int64(r.readings), err.Error())
		}
	}
	switch {
	case written < len(recs):
		lost := 0
		for _, r := range recs[written:] {
			lost += r.readings
		}
		s.Logger.Error("ingest: InfluxDB spool cannot take readings; they are lost", "readings", lost, "why", why, "err", err)
	case err != nil:
		s.Logger.Error("ingest: InfluxDB spool written but not synced to disk", "why", why, "err", err)
	}
	for _, c := range cs {
		s.handled.Add(int64(c.readings))
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

// appendLines appends readings as InfluxDB line protocol, nanosecond timestamps: one point per
// device and time with one field per metric (a message's readings share both), which costs
// InfluxDB one series lookup per message instead of one per reading. With withTimes it also
// appends each point's timestamp to times.
//
// It is written by hand rather than with line-protocol/v2's Encoder: for a dust-monitor
// message (8 readings) the Encoder took about 2.2 µs against 0.7 µs here (BenchmarkPipeline-
// ToInflux: about 1.5 µs more CPU per message, most of it strconv's shortest float formatting,
// the rest escaping scans and name checks). TestAppendLinesReadsBackWithLineProtocol checks
// that line-protocol/v2's Decoder reads what this writes.
func appendLines(b []byte, times []int64, measurement string, receiveTime bool, rs []Reading, withTimes bool) ([]byte, []int64) {
	for i := 0; i < len(rs); {
		r := &rs[i]
		start := len(b)
		b = append(b, measurement...)
		b = appendTag(b, "device", r.Device)
		if r.Quality != "" && r.Quality != QualityGood {
			b = appendTag(b, "quality", string(r.Quality))
		}
		if r.Flag != "" && r.Flag != "N" {
			b = appendTag(b, "flag", r.Flag) // HJ 212 data flag; normal readings carry none
		}
		sep := byte(' ')
		j := i
		for ; j < len(rs) && rs[j].Device == r.Device && rs[j].Time.Equal(r.Time) && rs[j].Quality == r.Quality && rs[j].Flag == r.Flag; j++ {
			v := rs[j].Value
			if math.IsNaN(v) || math.IsInf(v, 0) {
				continue // validation refuses these; never send a line InfluxDB would reject
			}
			b = append(b, sep)
			sep = ','
			b = appendKey(b, rs[j].Metric)
			b = append(b, '=')
			b = appendFloat(b, v)
		}
		i = j
		if sep == ' ' {
			b = b[:start] // nothing finite: drop the half-written line
			continue
		}
		if receiveTime {
			b = append(b, ",recv_ms="...)
			b = strconv.AppendInt(b, r.ReceiveTime.UnixMilli(), 10)
			b = append(b, 'i')
		}
		ns := r.Time.UnixNano()
		b = append(b, ' ')
		b = strconv.AppendInt(b, ns, 10)
		b = append(b, '\n')
		if withTimes {
			times = append(times, ns)
		}
	}
	return b, times
}

// pow10 are the powers of ten a float64 holds exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6}

// appendFloat appends v as a line protocol float. Sensor values mostly have a few decimals:
// when m/10^k (m below 2^53, k ≤ 6, the smallest such k) is exactly v — that division is
// correctly rounded, as InfluxDB's parse of the same decimal is — it writes m with k decimals,
// which reads back as v; anything else goes through strconv's shortest form.
func appendFloat(b []byte, v float64) []byte {
	if v != 0 && v > -1e9 && v < 1e9 {
		for k, p := range pow10 {
			m := math.Round(v * p)
			if m/p != v {
				continue
			}
			neg := m < 0
			u := uint64(math.Abs(m))
			if neg {
				b = append(b, '-')
			}
			if k == 0 {
				return strconv.AppendUint(b, u, 10)
			}
			var d [24]byte
			digits := strconv.AppendUint(d[:0], u, 10)
			if len(digits) <= k {
				b = append(b, '0', '.')
				for range k - len(digits) {
					b = append(b, '0')
				}
				return append(b, digits...)
			}
			b = append(b, digits[:len(digits)-k]...)
			b = append(b, '.')
			return append(b, digits[len(digits)-k:]...)
		}
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// lineEscaped marks the bytes a tag key, tag value or field key must escape.
var lineEscaped = [256]bool{',': true, '=': true, ' ': true, '\\': true, '\n': true}

func appendKey(b []byte, k string) []byte {
	plain := true
	for i := 0; i < len(k); i++ {
		if lineEscaped[k[i]] {
			plain = false
			break
		}
	}
	if plain {
		return append(b, k...)
	}
	for i := 0; i < len(k); i++ {
		switch c := k[i]; c {
		case ',', '=', ' ', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, c)
		}
	}
	return b
}

func appendTag(b []byte, k, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',')
	b = append(b, k...)
	b = append(b, '=')
	return appendKey(b, v)
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
		r.Flag = str(rec.ValueByKey("flag"))
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
