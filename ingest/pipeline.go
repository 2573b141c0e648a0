package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/offsite-gw/offsite/ingest/decode"
)

// PipelineStats are the message counts since Initialize. Every submitted message ends in
// exactly one of Stored, Quarantined, Status, Empty or Dropped once processed.
type PipelineStats struct {
	Submitted   int64 // accepted into the queue
	Stored      int64 // at least one reading handed to the sink (bad readings quarantined)
	Quarantined int64 // no reading stored: the whole message is in the quarantine
	Status      int64 // status-topic messages
	Empty       int64 // decoded to no readings (a keep-alive)
	Dropped     int64 // not queued: the queue stayed full for EnqueueTimeout (also quarantined as queue_overflow when possible)
	Readings    int64 // readings handed to the sink
	BadReadings int64 // single readings quarantined out of stored messages
}

// Pipeline decodes MQTT messages by the profile of the device whose topic they came on,
// validates them and hands the readings to Sink; everything refused goes to Quarantine with a
// reason. Submit only enqueues into a bounded queue, so the MQTT network loop never waits on
// decoding or on a database. N workers drain N queues, one each; a device's messages stay in order
// (its rules see its readings in order) and the store orders readings by time.
type Pipeline struct {
	Directory  *Directory
	Sink       Sink
	Quarantine *Quarantine
	// Presence, when set, is told of every message of a known sensor.
	Presence *Presence
	// OnReadings, when set, receives the stored readings of each message (for analytics). It
	// runs on a worker: it must not block, nor keep rs after it returns (it is reused).
	OnReadings func(s *Sensor, rs []Reading)

	QueueSize int // messages waiting to be decoded (default 65536)
	Workers   int // decode workers (default GOMAXPROCS)
	// EnqueueTimeout is how long Submit waits for room before the message is counted as
	// dropped (default 30s). With an external broker Submit runs in the client library's
	// per-message goroutine, so waiting holds back acknowledgements, not the network loop.
	EnqueueTimeout time.Duration
	// MaxFutureSkew: device times further ahead of the receive time are refused (default 5m).
	MaxFutureSkew time.Duration
	// MaxAge: device times older than this are refused (default 7 days); older than
	// MaxFutureSkew but within MaxAge are kept with quality "late".
	MaxAge time.Duration

	// Journal, when set, makes every submitted message survive a crash of the process until
	// it is stored (see Journal).
	Journal *Journal

	Registerer prometheus.Registerer
	Logger     *slog.Logger

	journalStop context.CancelFunc
	journalDone chan struct{}

	// queues has one bounded queue per worker; a message goes to the queue its topic hashes
	// to, so one device's messages are processed in the order they arrived (rules see its
	// readings in order) while different devices still spread over the workers.
	queues          []chan Message
	inflight        atomic.Int64
	stats           struct{ submitted, stored, quarantined, status, empty, dropped, readings, bad atomic.Int64 }
	mMsgs           *prometheus.CounterVec
	mStored         prometheus.Counter // resolved once: WithLabelValues per message is a map lookup
	mQuar           *prometheus.CounterVec
	mRead           prometheus.Counter
	mJournalDamaged prometheus.Counter
	wg              sync.WaitGroup
	closed          chan struct{}
	closeOne        sync.Once
}

// Initialize starts the workers.
func (p *Pipeline) Initialize() error {
	if p.Directory == nil || p.Sink == nil || p.Quarantine == nil {
		return errors.New("ingest: Pipeline needs Directory, Sink and Quarantine")
	}
	if p.QueueSize <= 0 {
		p.QueueSize = 65536
	}
	if p.Workers <= 0 {
		p.Workers = runtime.GOMAXPROCS(0)
	}
	if p.EnqueueTimeout <= 0 {
		p.EnqueueTimeout = 30 * time.Second
	}
	if p.MaxFutureSkew <= 0 {
		p.MaxFutureSkew = 5 * time.Minute
	}
	if p.MaxAge <= 0 {
		p.MaxAge = 7 * 24 * time.Hour
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	p.mMsgs = register(p.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "offsite_ingest_messages_total", Help: "MQTT messages processed by outcome (stored, quarantined, status, empty, dropped).",
	}, []string{"outcome"}))
	p.mQuar = register(p.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "offsite_ingest_quarantined_total", Help: "Messages or readings quarantined, by reason.",
	}, []string{"reason"}))
	p.mRead = register(p.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "offsite_ingest_readings_total", Help: "Readings handed to the telemetry store.",
	}))
	p.mJournalDamaged = register(p.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "offsite_ingest_journal_damaged_segments_total", Help: "Journal segments found damaged at start (kept under the journal's damaged/ folder).",
	}))
	register(p.Registerer, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "offsite_ingest_queue_length", Help: "Messages waiting to be decoded.",
	}, func() float64 {
		n := 0
		for _, q := range p.queues {
			n += len(q)
		}
		return float64(n)
	}))
	p.mStored = p.mMsgs.WithLabelValues("stored")
	p.queues = make([]chan Message, p.Workers)
	for i := range p.queues {
		p.queues[i] = make(chan Message, max(1, p.QueueSize/p.Workers))
	}
	p.closed = make(chan struct{})
	for _, q := range p.queues {
		p.wg.Add(1)
		go p.work(q)
	}
	if p.Journal != nil {
		if err := p.startJournal(); err != nil {
			return err
		}
	}
	return nil
}

// startJournal replays what a crashed run left and starts the segment rotation.
func (p *Pipeline) startJournal() error {
	j := p.Journal
	if j.Logger == nil {
		j.Logger = p.Logger
	}
	if err := j.open(); err != nil {
		return err
	}
	old, err := j.leftovers()
	if err != nil {
		return err
	}
	replayed := 0
	var damaged []string
	for _, path := range old {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("ingest journal: %w", err)
		}
		err = readRecords(f, func(m Message) { p.Submit(m); replayed++ })
		f.Close()
		if err != nil {
			damaged = append(damaged, path)
			p.mJournalDamaged.Inc()
			p.Logger.Error("ingest journal segment damaged: the messages before the damage were replayed, the file is kept for inspection",
				"file", path, "kept_in", filepath.Join(j.Dir, "damaged"), "err", err)
		}
	}
	// Everything replayed is journaled again in the new segment: the old files can go, except
	// damaged ones, which are kept aside for a person to look at.
	for _, path := range old {
		if slices.Contains(damaged, path) {
			keep := filepath.Join(j.Dir, "damaged", fmt.Sprintf("%s.%d", filepath.Base(path), time.Now().Unix()))
			err := os.MkdirAll(filepath.Dir(keep), 0o750)
			if err == nil {
				err = os.Rename(path, keep)
			}
			if err == nil {
				continue
			}
			// left where it is, it would be replayed again at every start
			p.Logger.Error("ingest journal: the damaged segment could not be kept aside and is removed", "file", path, "err", err)
		}
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			p.Logger.Error("ingest journal: a replayed segment could not be removed; it will be replayed again at the next start", "file", path, "err", err)
		}
	}
	if replayed > 0 {
		p.Logger.Warn("replayed messages received before an unclean stop", "messages", replayed)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.journalStop, p.journalDone = cancel, make(chan struct{})
	go func() {
		defer close(p.journalDone)
		j.run(ctx, p.durable)
	}()
	return nil
}

// durable waits until what was handed to the sink and the quarantine is stored.
func (p *Pipeline) durable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if f, ok := p.Sink.(interface{ Flush(context.Context) error }); ok {
		if err := f.Flush(ctx); err != nil {
			return err
		}
	}
	return p.Quarantine.Flush(ctx)
}

// Close stops accepting messages, processes those queued and stops the workers.
func (p *Pipeline) Close() {
	p.closeOne.Do(func() {
		close(p.closed)
		p.wg.Wait()
		if p.Journal != nil {
			p.journalStop()
			<-p.journalDone
			p.Journal.close()
			// Everything was processed; what the sink still holds it writes or spools when it
			// closes, after the pipeline. Only if that flush succeeds are the segments deleted.
			if p.durable(context.Background()) == nil {
				p.Journal.removeAll()
			}
		}
	})
}

// Submit queues m. It waits at most EnqueueTimeout for room; a message that still does not
// fit is counted as dropped and quarantined (queue_overflow) so it can be seen. It reports
// whether m was queued.
func (p *Pipeline) Submit(m Message) bool {
	if m.Received.IsZero() {
		m.Received = time.Now()
	}
	p.inflight.Add(1)
	if p.Journal != nil {
		m.seg = p.Journal.append(&m)
	}
	queue := p.queues[topicShard(m.Topic, len(p.queues))]
	select {
	case queue <- m:
		p.stats.submitted.Add(1)
		return true
	default:
	}
	t := time.NewTimer(p.EnqueueTimeout)
	defer t.Stop()
	select {
	case queue <- m:
		p.stats.submitted.Add(1)
		return true
	case <-t.C:
	case <-p.closed:
	}
	p.inflight.Add(-1)
	p.stats.dropped.Add(1)
	p.mMsgs.WithLabelValues("dropped").Inc()
	p.quarantine(m, nil, ReasonQueueOverflow, "", fmt.Sprintf("ingest queue full for %s", p.EnqueueTimeout))
	p.done(m)
	return false
}

// Flush waits until every message submitted before the call is processed and handed on.
func (p *Pipeline) Flush(ctx context.Context) error {
	for p.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return p.Quarantine.Flush(ctx)
}

// Stats returns the counts since Initialize.
func (p *Pipeline) Stats() PipelineStats {
	return PipelineStats{
		Submitted: p.stats.submitted.Load(), Stored: p.stats.stored.Load(), Quarantined: p.stats.quarantined.Load(),
		Status: p.stats.status.Load(), Empty: p.stats.empty.Load(), Dropped: p.stats.dropped.Load(),
		Readings: p.stats.readings.Load(), BadReadings: p.stats.bad.Load(),
	}
}

// done marks m processed in its journal segment.
func (p *Pipeline) done(m Message) {
	if m.seg != nil {
		m.seg.pending.Add(-1)
	}
}

// topicShard picks a worker queue by FNV-1a of the topic (one topic = one device).
func topicShard(topic string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(topic); i++ {
		h ^= uint32(topic[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

// worker is the state of one worker goroutine.
type worker struct {
	// Devices without a clock are stamped with the receive time; a worker owns its devices,
	// so it can keep their stamps strictly increasing (see process).
	last map[string]time.Time
	// vals and rs hold one message's decoded values and readings: the sink and OnReadings do
	// not keep the slice.
	vals []decode.Reading
	rs   []Reading
}

func (p *Pipeline) work(queue chan Message) {
	defer p.wg.Done()
	w := &worker{last: map[string]time.Time{}}
	for {
		var m Message
		select {
		case m = <-queue:
			// Under load there is always a message: a plain receive, no select over two
			// channels per message.
		default:
			select {
			case m = <-queue:
			case <-p.closed:
				for {
					select {
					case m := <-queue:
						p.handle(m, w)
					default:
						return
					}
				}
			}
		}
		p.handle(m, w)
	}
}

// handle processes m and marks it done.
func (p *Pipeline) handle(m Message, w *worker) {
	p.process(m, w)
	p.inflight.Add(-1)
	p.done(m)
}

func (p *Pipeline) quarantine(m Message, s *Sensor, reason, metric, detail string) {
	e := QuarantineEntry{At: m.Received, Topic: m.Topic, Client: m.Client, Reason: reason, Metric: metric,
		Detail: detail, Payload: m.Payload}
	if s != nil {
		e.Device, e.Site = s.ID, s.Site
	}
	p.mQuar.WithLabelValues(reason).Inc()
	p.Quarantine.Add(e)
}

func (p *Pipeline) refuse(m Message, s *Sensor, reason, detail string) {
	p.stats.quarantined.Add(1)
	p.mMsgs.WithLabelValues("quarantined").Inc()
	p.quarantine(m, s, reason, "", detail)
	p.Logger.Debug("ingest: message quarantined", "device", sensorID(s), "topic", m.Topic, "reason", reason, "detail", detail)
}

func sensorID(s *Sensor) string {
	if s == nil {
		return ""
	}
	return s.ID
}

func (p *Pipeline) process(m Message, w *worker) {
	route, ok := p.Directory.Lookup(m.Topic)
	if !ok {
		var s *Sensor
		if m.Client != "" {
			s, _ = p.Directory.ByUsername(m.Client)
		}
		p.refuse(m, s, ReasonUnknownTopic, "no sensor publishes on this topic")
		return
	}
	s := route.Sensor
	if m.Client != "" && s.Username != m.Client {
		other, _ := p.Directory.ByUsername(m.Client)
		p.refuse(m, other, ReasonForeignTopic, fmt.Sprintf("client %q published on the topic of device %s", m.Client, s.ID))
		return
	}
	if route.Kind == TopicStatus {
		p.status(m, s)
		return
	}
	if p.Presence != nil {
		// Any message on the data topic shows the device is alive, even one refused below.
		p.Presence.Seen(s.ID, m.Received)
	}
	if s.Decoder == nil {
		p.refuse(m, s, ReasonNoDecoder, fmt.Sprintf("profile %s: %v", s.Profile.ID, s.DecoderErr))
		return
	}
	d, err := s.Decoder.DecodeInto(w.vals, m.Payload)
	if err != nil {
		reason := "decode_error"
		var de *decode.Error
		if errors.As(err, &de) {
			reason = de.Reason
		}
		p.refuse(m, s, reason, err.Error())
		return
	}
	if cap(d.Values) > cap(w.vals) {
		w.vals = d.Values[:0]
	}
	quality, t := QualityReceiveTime, m.Received
	if d.DeviceTime.IsZero() {
		// The stores key a reading by device, metric and millisecond: a burst (a broker replaying
		// a persistent session after a restart) must not collapse into one reading.
		t = t.Truncate(time.Millisecond)
		if prev, ok := w.last[s.ID]; ok && !t.After(prev) {
			t = prev.Add(time.Millisecond)
		}
		w.last[s.ID] = t
	} else {
		switch skew := d.DeviceTime.Sub(m.Received); {
		case skew > p.MaxFutureSkew:
			p.refuse(m, s, ReasonClockSkew, fmt.Sprintf("device time %s is %s ahead of the receive time", d.DeviceTime.Format(time.RFC3339), skew.Round(time.Second)))
			return
		case -skew > p.MaxAge:
			p.refuse(m, s, ReasonClockSkew, fmt.Sprintf("device time %s is older than %s", d.DeviceTime.Format(time.RFC3339), p.MaxAge))
			return
		case -skew > p.MaxFutureSkew:
			quality, t = QualityLate, d.DeviceTime
		default:
			quality, t = QualityGood, d.DeviceTime
		}
	}
	if len(d.Values) == 0 {
		p.stats.empty.Add(1)
		p.mMsgs.WithLabelValues("empty").Inc()
		return
	}
	problems := decode.Validate(s.Profile, d)
	var bad map[int]bool
	if len(problems) > 0 {
		bad = make(map[int]bool, len(problems))
		for _, pr := range problems {
			bad[pr.Index] = true
		}
	}
	rs := w.rs[:0]
	for i, v := range d.Values {
		if bad[i] {
			continue
		}
		rs = append(rs, Reading{Device: s.ID, Site: s.Site, Metric: v.Metric, Value: v.Value, Unit: v.Unit, Flag: v.Flag,
			Quality: quality, Time: t, DeviceTime: d.DeviceTime, ReceiveTime: m.Received})
	}
	if len(rs) == 0 {
		reasons := make([]string, 0, len(problems))
		for _, pr := range problems {
			reasons = append(reasons, pr.Error())
		}
		p.refuse(m, s, problems[0].Reason, strings.Join(reasons, "; "))
		return
	}
	for _, pr := range problems {
		p.stats.bad.Add(1)
		p.quarantine(m, s, pr.Reason, pr.Reading.Metric, pr.Error())
	}
	w.rs = rs[:0]
	p.Sink.Write(rs)
	p.stats.stored.Add(1)
	p.stats.readings.Add(int64(len(rs)))
	p.mStored.Inc()
	p.mRead.Add(float64(len(rs)))
	if p.OnReadings != nil {
		p.OnReadings(s, rs)
	}
}

func (p *Pipeline) status(m Message, s *Sensor) {
	p.stats.status.Add(1)
	p.mMsgs.WithLabelValues("status").Inc()
	v := strings.ToLower(strings.Trim(strings.TrimSpace(string(m.Payload)), `"`))
	switch v {
	case "online", "1", "true":
		if p.Presence != nil {
			p.Presence.Report(s.ID, true, "status topic: online")
		}
	case "offline", "0", "false":
		if p.Presence != nil {
			p.Presence.Report(s.ID, false, "status topic: offline (will or clean disconnect)")
		}
	default:
		p.quarantine(m, s, ReasonBadStatus, "", "status payload must be online or offline")
	}
}
