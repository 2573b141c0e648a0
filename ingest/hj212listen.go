package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/ingest/hj212"
)

// HJ212Auth checks an HJ 212 station's MN and PW; devices.Store satisfies it.
type HJ212Auth interface {
	CheckHJ212(ctx context.Context, mn, pw string) (devices.Device, error)
}

// Quarantine reasons of the HJ 212 listener, besides the frame reasons of ingest/hj212
// (garbage, bad_length, too_long, crc_mismatch, truncated) and malformed_segment.
const (
	ReasonUnknownMN       = "unknown_mn"       // no station has this MN
	ReasonWrongPW         = "wrong_pw"         // the PW does not match the station's
	ReasonSplitIncomplete = "split_incomplete" // packets of a split upload never arrived
)

// HJ212Listener takes HJ 212-2017 (and HJ/T 212-2005) uploads from monitoring stations over TCP
// (docs/contracts.md §8) and feeds them to the same Pipeline as MQTT: each upload's data
// segment, reassembled when split, is submitted under the station's HJ212Topic, so the journal,
// the profile decoder, presence, validation, the quarantine, the telemetry store and the rules
// treat it like any reading. Before that, the listener checks the frame (length, CRC), the
// data segment, the MN (a registered device) and the PW; whatever it refuses is counted and
// quarantined with the raw bytes, and a connection is closed after MaxFailures refusals in a
// row. While the pipeline is backlogged (Pipeline.Backlogged) the listener stops reading, so
// TCP holds the stations back instead of the store dropping readings. It answers CN 9014 when
// the station's Flag asks (after the upload is journaled), and
// sends CN 1012 (set time) to a station whose real-time DataTime is off by more than
// MaxClockDrift.
type HJ212Listener struct {
	Listen     string // e.g. ":9212"
	Auth       HJ212Auth
	Directory  *Directory
	Pipeline   *Pipeline
	Registerer prometheus.Registerer
	Logger     *slog.Logger

	// MaxConnections bounds the stations connected at once (default 10000).
	MaxConnections int
	// IdleTimeout closes a connection that sent nothing for this long (default 15m).
	IdleTimeout time.Duration
	// MaxFailures closes a connection after this many refused frames in a row (default 5).
	MaxFailures int
	// MaxDataLen is the longest data segment accepted (default hj212.MaxDataLen, 1024).
	MaxDataLen int
	// MaxClockDrift: a real-time DataTime further from the gateway's clock gets CN 1012
	// (default 60s), at most once per CalibrateEvery (default 10m) per station.
	MaxClockDrift  time.Duration
	CalibrateEvery time.Duration
	// ReadBuffer, when set, is the kernel receive buffer of each station's connection
	// (SO_RCVBUF): what a station can have in flight while the listener holds it back
	// (Pipeline.Backlogged). Default: the kernel's, which can grow to megabytes a connection.
	ReadBuffer int
	// AuthCacheTTL is how long a checked MN and PW pair is trusted (default 5m).
	AuthCacheTTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time

	ln       net.Listener
	conns    sync.Map // net.Conn → struct{}
	nconns   atomic.Int64
	wg       sync.WaitGroup
	closed   chan struct{}
	closeOne sync.Once

	roomMu sync.Mutex // held by the connection waiting for the pipeline's backlog to clear (waitRoom)
	authMu sync.Mutex
	auth   map[string]hj212Auth // by MN
	calMu  sync.Mutex
	calAt  map[string]time.Time // last CN 1012 by MN

	mFrames     *prometheus.CounterVec
	mRefused    *prometheus.CounterVec
	mAnswers    prometheus.Counter
	mCalibrated prometheus.Counter
	mClosed     prometheus.Counter
	mAccepted   prometheus.Counter
}

type hj212Auth struct {
	pw    [32]byte
	until time.Time
}

// Initialize starts listening.
func (l *HJ212Listener) Initialize() error {
	if l.Auth == nil || l.Directory == nil || l.Pipeline == nil {
		return errors.New("ingest: HJ212Listener needs Auth, Directory and Pipeline")
	}
	if l.MaxConnections <= 0 {
		l.MaxConnections = 10000
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = 15 * time.Minute
	}
	if l.MaxFailures <= 0 {
		l.MaxFailures = 5
	}
	if l.MaxClockDrift <= 0 {
		l.MaxClockDrift = 60 * time.Second
	}
	if l.CalibrateEvery <= 0 {
		l.CalibrateEvery = 10 * time.Minute
	}
	if l.AuthCacheTTL <= 0 {
		l.AuthCacheTTL = 5 * time.Minute
	}
	if l.Now == nil {
		l.Now = time.Now
	}
	if l.Logger == nil {
		l.Logger = slog.Default()
	}
	l.Logger = l.Logger.With("component", "hj212")
	l.auth = map[string]hj212Auth{}
	l.calAt = map[string]time.Time{}
	l.mFrames = register(l.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "offsite_hj212_frames_total", Help: "HJ 212 frames by outcome (accepted, refused, reply: a station's answer to a command, other: a command not handled)."},
		[]string{"outcome"}))
	l.mRefused = register(l.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "offsite_hj212_refused_total", Help: "HJ 212 input refused, by reason (garbage, bad_length, too_long, crc_mismatch, truncated, malformed_segment, unknown_mn, wrong_pw, split_incomplete, too_many_connections)."},
		[]string{"reason"}))
	l.mAnswers = register(l.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "offsite_hj212_answers_total", Help: "CN 9014 data answers sent to HJ 212 stations."}))
	l.mCalibrated = register(l.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "offsite_hj212_time_calibrations_total", Help: "CN 1012 time-calibration commands sent to HJ 212 stations whose clock drifted."}))
	l.mClosed = register(l.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "offsite_hj212_connections_closed_total", Help: "HJ 212 connections closed by the gateway after repeated refused frames."}))
	l.mAccepted = l.mFrames.WithLabelValues("accepted")
	register(l.Registerer, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "offsite_hj212_connections", Help: "HJ 212 stations connected now."}, func() float64 { return float64(l.nconns.Load()) }))
	ln, err := net.Listen("tcp", l.Listen)
	if err != nil {
		return fmt.Errorf("ingest: hj212 listen %s: %w", l.Listen, err)
	}
	l.ln = ln
	l.closed = make(chan struct{})
	l.wg.Add(1)
	go l.accept()
	l.Logger.Info("HJ 212 listener started", "addr", ln.Addr().String())
	return nil
}

// Addr is the address the listener is bound to.
func (l *HJ212Listener) Addr() string {
	if l.ln == nil {
		return ""
	}
	return l.ln.Addr().String()
}

// Connections is the number of stations connected now.
func (l *HJ212Listener) Connections() int { return int(l.nconns.Load()) }

// Close stops accepting, closes every connection and waits for their goroutines (whose
// uploads are already submitted to the pipeline).
func (l *HJ212Listener) Close() {
	l.closeOne.Do(func() {
		if l.ln == nil {
			return
		}
		close(l.closed)
		_ = l.ln.Close()
		l.conns.Range(func(k, _ any) bool { _ = k.(net.Conn).Close(); return true })
		l.wg.Wait()
	})
}

func (l *HJ212Listener) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.Logger.Warn("hj212 accept", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if l.nconns.Load() >= int64(l.MaxConnections) {
			l.mRefused.WithLabelValues("too_many_connections").Inc()
			l.Logger.Warn("HJ 212 connection refused: too many stations connected", "remote", c.RemoteAddr().String(), "max", l.MaxConnections)
			_ = c.Close()
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok && l.ReadBuffer > 0 {
			_ = tc.SetReadBuffer(l.ReadBuffer)
		}
		l.nconns.Add(1)
		l.conns.Store(c, struct{}{})
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer l.nconns.Add(-1)
			defer l.conns.Delete(c)
			defer c.Close()
			l.serve(c)
		}()
	}
}

// conn is one station connection's state; only its goroutine touches it.
type conn struct {
	c        net.Conn
	remote   string
	asm      hj212.Assembler
	failures int
	out      []byte // reused for answers
	verified map[string][32]byte
}

func (l *HJ212Listener) serve(c net.Conn) {
	cn := &conn{c: c, remote: c.RemoteAddr().String(), verified: map[string][32]byte{}}
	fr := hj212.NewReader(c, l.MaxDataLen)
	for {
		_ = c.SetReadDeadline(time.Now().Add(l.IdleTimeout))
		data, err := fr.Next()
		var fe *hj212.FrameError
		switch {
		case errors.As(err, &fe):
			l.refuse(cn, nil, "", fe.Reason, fe.Msg, fe.Raw)
		case err != nil:
			return // closed, idle or reset: the station reconnects when it has data
		default:
			l.frame(cn, data)
		}
		for _, inc := range cn.asm.Expire(l.Now()) {
			s, _ := l.Directory.ByMN(inc.MN)
			l.refuse(cn, s, inc.MN, ReasonSplitIncomplete, inc.String(), []byte(inc.Raw))
		}
		if cn.failures >= l.MaxFailures {
			l.mClosed.Inc()
			l.Logger.Warn("HJ 212 connection closed after repeated refused frames", "remote", cn.remote, "failures", cn.failures)
			return
		}
	}
}

// refuse counts and quarantines refused input (the station's raw bytes) and counts a failure
// against the connection.
func (l *HJ212Listener) refuse(cn *conn, s *Sensor, mn, reason, detail string, raw []byte) {
	cn.failures++
	l.mFrames.WithLabelValues("refused").Inc()
	l.mRefused.WithLabelValues(reason).Inc()
	// raw may be the frame reader's buffer, reused for the next frame: the quarantine writes later.
	l.Pipeline.quarantine(Message{Topic: "hj212", Payload: bytes.Clone(raw), Received: l.Now(), Client: mn, Remote: cn.remote}, s, reason, "",
		fmt.Sprintf("%s (from %s)", detail, cn.remote))
	l.Logger.Debug("HJ 212 input refused", "remote", cn.remote, "mn", mn, "device", sensorID(s), "reason", reason, "detail", detail)
}

// frame handles one good frame's data segment.
func (l *HJ212Listener) frame(cn *conn, data []byte) {
	seg, err := hj212.ParseSegment(data)
	if err != nil {
		reason := hj212.ReasonMalformed
		var se *hj212.SegmentError
		if errors.As(err, &se) {
			reason = se.Reason
		}
		l.refuse(cn, nil, "", reason, err.Error(), data)
		return
	}
	s, ok := l.Directory.ByMN(seg.MN)
	if !ok {
		l.refuse(cn, nil, seg.MN, ReasonUnknownMN, fmt.Sprintf("no HJ 212 station is registered with MN %s", seg.MN), data)
		return
	}
	if !l.checkPW(cn, s, seg) {
		l.refuse(cn, s, seg.MN, ReasonWrongPW, fmt.Sprintf("wrong PW for MN %s (device %s)", seg.MN, s.ID), data)
		return
	}
	cn.failures = 0
	now := l.Now()
	switch seg.CN {
	case hj212.CNRealtime, hj212.CNMinute, hj212.CNHour, hj212.CNDay, hj212.CNRunTimeDay, hj212.CNRestart:
	case hj212.CNTimeRequest:
		l.mFrames.WithLabelValues("other").Inc()
		l.setTime(cn, s, seg, now, "the station asked for the time (CN 1013)")
		return
	case hj212.CNRequestReply, hj212.CNResult:
		l.mFrames.WithLabelValues("reply").Inc()
		l.Logger.Info("HJ 212 station answered a command", "device", s.ID, "mn", seg.MN, "cn", seg.CN, "qn", seg.QN, "cp", seg.CP)
		return
	default:
		l.mFrames.WithLabelValues("other").Inc()
		l.Logger.Debug("HJ 212 command not handled", "device", s.ID, "mn", seg.MN, "cn", seg.CN)
		if seg.WantsAnswer() {
			l.answer(cn, seg)
		}
		return
	}
	whole, done, err := cn.asm.Add(seg, data, now)
	if err != nil {
		l.refuse(cn, s, seg.MN, hj212.ReasonMalformed, err.Error(), data)
		return
	}
	if !done {
		// one packet of a split upload: acknowledged as received, submitted when whole
		if seg.WantsAnswer() {
			l.answer(cn, seg)
		}
		return
	}
	payload := hj212.AppendSegment(make([]byte, 0, len(data)+32), whole)
	// Stations are not read faster than the store writes: the upload waits (unanswered, not
	// yet journaled) while the pipeline is backlogged, and TCP holds the station back.
	l.waitRoom()
	if !l.Pipeline.Submit(Message{Topic: s.Up, Payload: payload, Received: now, Remote: cn.remote}) {
		return // counted and quarantined by the pipeline; no answer, so the station sends it again
	}
	l.mAccepted.Inc()
	if seg.WantsAnswer() {
		l.answer(cn, seg)
	}
	if seg.CN == hj212.CNRealtime {
		if t, ok := dataTime(whole.CP); ok {
			if drift := t.Sub(now); drift > l.MaxClockDrift || -drift > l.MaxClockDrift {
				l.setTime(cn, s, seg, now, fmt.Sprintf("DataTime %s is %s off the gateway's clock", hj212.FormatTime(t), drift.Round(time.Second)))
			}
		}
	}
}

// checkPW verifies MN and PW: once per connection and pair, and through a shared cache so a
// station reconnecting for every upload does not pay a password hash each time.
func (l *HJ212Listener) checkPW(cn *conn, s *Sensor, seg hj212.Segment) bool {
	sum := sha256.Sum256([]byte(seg.PW))
	if v, ok := cn.verified[seg.MN]; ok && v == sum {
		return true
	}
	now := l.Now()
	l.authMu.Lock()
	e, ok := l.auth[seg.MN]
	l.authMu.Unlock()
	if ok && e.pw == sum && now.Before(e.until) {
		cn.verified[seg.MN] = sum
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := l.Auth.CheckHJ212(ctx, seg.MN, seg.PW)
	if err != nil || d.ID != s.ID {
		return false
	}
	l.authMu.Lock()
	if len(l.auth) > 100000 {
		clear(l.auth)
	}
	l.auth[seg.MN] = hj212Auth{pw: sum, until: now.Add(l.AuthCacheTTL)}
	l.authMu.Unlock()
	cn.verified[seg.MN] = sum
	return true
}

// answer sends CN 9014 with the upload's QN.
func (l *HJ212Listener) answer(cn *conn, seg hj212.Segment) {
	if l.write(cn, hj212.Answer(seg)) {
		l.mAnswers.Inc()
	}
}

// setTime sends CN 1012 with the gateway's clock, at most once per CalibrateEvery a station.
func (l *HJ212Listener) setTime(cn *conn, s *Sensor, seg hj212.Segment, now time.Time, why string) {
	l.calMu.Lock()
	last, ok := l.calAt[seg.MN]
	due := !ok || now.Sub(last) >= l.CalibrateEvery || seg.CN == hj212.CNTimeRequest
	if due {
		l.calAt[seg.MN] = now
	}
	l.calMu.Unlock()
	if !due {
		return
	}
	cmd := hj212.SetTime(seg, now)
	if l.write(cn, cmd) {
		l.mCalibrated.Inc()
		l.Logger.Warn("HJ 212 station clock calibrated (CN 1012 sent)", "device", s.ID, "site", s.Site, "mn", seg.MN,
			"reason", why, "system_time", hj212.FormatTime(now), "qn", cmd.QN)
	}
}

func (l *HJ212Listener) write(cn *conn, seg hj212.Segment) bool {
	cn.out = hj212.AppendFrame(cn.out[:0], hj212.AppendSegment(make([]byte, 0, 128), seg))
	_ = cn.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := cn.c.Write(cn.out); err != nil {
		l.Logger.Debug("HJ 212 answer not sent", "remote", cn.remote, "mn", seg.MN, "cn", seg.CN, "err", err)
		return false
	}
	return true
}

// dataTime finds DataTime in a CP without parsing the rest (the decoder does that).
func dataTime(cp string) (time.Time, bool) {
	i := strings.Index(cp, "DataTime=")
	if i < 0 || len(cp) < i+9+14 {
		return time.Time{}, false
	}
	t, err := hj212.ParseTime(cp[i+9 : i+9+14])
	return t, err == nil
}
