// Package sim simulates HJ 212-2017 stations (数采仪) for the demo, the tests and the
// benchmark: each station opens a TCP connection to the gateway, sends real-time data (CN 2011)
// and minute data (CN 2051) with data flags, follows the gateway's time calibration (CN 1012,
// answered with 9011 and 9012) and counts the 9014 answers it gets. Values follow a daily
// pattern with noise; excursions push chosen pollutants over their limit now and then, and
// maintenance (M) and fault (D) periods flag every value, as real stations do.
package sim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/offsite-gw/offsite/ingest/hj212"
)

// Pollutant is one simulated measurement: Base + Amplitude × a daily wave + noise, plus
// Excursion during excursion periods; Decimals digits are sent.
type Pollutant struct {
	Code      string
	Base      float64
	Amplitude float64
	Noise     float64
	Excursion float64
	Decimals  int
}

// Period is a recurring stretch of time counted from the station's start: from Offset, for
// For, every Every. A zero Every means never.
type Period struct {
	Offset, For, Every time.Duration
}

func (p Period) active(since time.Duration) bool {
	if p.Every <= 0 || p.For <= 0 || since < p.Offset {
		return false
	}
	return (since-p.Offset)%p.Every < p.For
}

// Station is one simulated data logger.
type Station struct {
	Addr string // gateway host:port
	MN   string
	PW   string
	ST   string // system code, default 32 (water pollution source)
	// Pollutants are sent in every upload.
	Pollutants []Pollutant
	// RealtimeEvery (default 30s) and MinuteEvery (default 1m; < 0 = none) pace the uploads.
	RealtimeEvery time.Duration
	MinuteEvery   time.Duration
	// Excursion, Maintenance and Fault are the periods of values over the limit, of M flags
	// and of D flags.
	Excursion, Maintenance, Fault Period
	// ClockOffset is how wrong the station's clock is at start; CN 1012 corrects it.
	ClockOffset time.Duration
	Logger      *slog.Logger

	start  time.Time
	offset atomic.Int64 // ns
	sent   atomic.Int64
	acked  atomic.Int64
	cal    atomic.Int64
	cancel context.CancelFunc
	done   chan struct{}
	rnd    *rand.Rand
}

// Initialize starts the station.
func (s *Station) Initialize() error {
	if s.Addr == "" || s.MN == "" || len(s.Pollutants) == 0 {
		return errors.New("hj212 sim: station needs Addr, MN and Pollutants")
	}
	if s.ST == "" {
		s.ST = "32"
	}
	if s.RealtimeEvery <= 0 {
		s.RealtimeEvery = 30 * time.Second
	}
	if s.MinuteEvery == 0 {
		s.MinuteEvery = time.Minute
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	s.start = time.Now()
	s.offset.Store(int64(s.ClockOffset))
	s.rnd = rand.New(rand.NewPCG(uint64(len(s.MN)), uint64(time.Now().UnixNano())))
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	go s.run(ctx)
	return nil
}

// Close stops the station.
func (s *Station) Close() {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
}

// Sent, Acked and Calibrations count uploads sent, 9014 answers received and 1012 commands
// followed.
func (s *Station) Sent() int64         { return s.sent.Load() }
func (s *Station) Acked() int64        { return s.acked.Load() }
func (s *Station) Calibrations() int64 { return s.cal.Load() }

func (s *Station) now() time.Time { return time.Now().Add(time.Duration(s.offset.Load())) }

func (s *Station) run(ctx context.Context) {
	defer close(s.done)
	backoff := time.Second
	for ctx.Err() == nil {
		err := s.session(ctx)
		if ctx.Err() != nil {
			return
		}
		s.Logger.Warn("hj212 sim: station disconnected; reconnecting", "mn", s.MN, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (s *Station) session(ctx context.Context) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return err
	}
	defer c.Close()
	var wmu sync.Mutex
	write := func(b []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := c.Write(b)
		return err
	}
	readErr := make(chan error, 1)
	go func() { readErr <- s.read(c, write) }()
	rt := time.NewTicker(s.RealtimeEvery)
	defer rt.Stop()
	var minute <-chan time.Time
	if s.MinuteEvery > 0 {
		mt := time.NewTicker(s.MinuteEvery)
		defer mt.Stop()
		minute = mt.C
	}
	if err := write(s.Upload(hj212.CNRealtime, s.now())); err != nil {
		return err
	}
	for {
		var b []byte
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			return err
		case <-rt.C:
			b = s.Upload(hj212.CNRealtime, s.now())
		case <-minute:
			b = s.Upload(hj212.CNMinute, s.now().Truncate(time.Minute).Add(-time.Minute))
		}
		if err := write(b); err != nil {
			return err
		}
	}
}

// read follows the gateway's frames: 9014 answers, 1012 time calibration.
func (s *Station) read(c net.Conn, write func([]byte) error) error {
	fr := hj212.NewReader(bufio.NewReader(c), 0)
	for {
		data, err := fr.Next()
		if hj212.IsFrameError(err) {
			s.Logger.Warn("hj212 sim: bad frame from the gateway", "mn", s.MN, "err", err)
			continue
		}
		if err != nil {
			return err
		}
		seg, err := hj212.ParseSegment(data)
		if err != nil {
			s.Logger.Warn("hj212 sim: bad segment from the gateway", "mn", s.MN, "err", err)
			continue
		}
		switch seg.CN {
		case hj212.CNDataAck:
			s.acked.Add(1)
		case hj212.CNSetTime:
			cp, err := hj212.ParseCP(seg.CP, nil)
			if err != nil || cp.SystemTime.IsZero() {
				continue
			}
			_ = write(s.reply(seg, hj212.CNRequestReply, "QnRtn=1"))
			s.offset.Store(int64(time.Until(cp.SystemTime)))
			s.cal.Add(1)
			s.Logger.Info("hj212 sim: clock set by the gateway", "mn", s.MN, "system_time", hj212.FormatTime(cp.SystemTime))
			_ = write(s.reply(seg, hj212.CNResult, "ExeRtn=1"))
		}
	}
}

func (s *Station) reply(cmd hj212.Segment, cn int, cp string) []byte {
	seg := hj212.Segment{QN: cmd.QN, ST: hj212.STSystem, CN: cn, PW: s.PW, MN: s.MN, Flag: hj212.Version2017 << 2, HasFlag: true, CP: cp}
	return hj212.AppendFrame(nil, hj212.AppendSegment(nil, seg))
}

// Upload builds one upload frame of command cn (2011 or 2051) with DataTime at.
func (s *Station) Upload(cn int, at time.Time) []byte {
	since := time.Since(s.start)
	flag := "N"
	switch {
	case s.Fault.active(since):
		flag = "D"
	case s.Maintenance.active(since):
		flag = "M"
	}
	exc := s.Excursion.active(since)
	day := float64(at.In(hj212.Beijing).Hour()*60+at.In(hj212.Beijing).Minute()) / (24 * 60)
	cp := make([]byte, 0, 64+48*len(s.Pollutants))
	cp = append(cp, "DataTime="...)
	cp = append(cp, hj212.FormatTime(at)...)
	for _, p := range s.Pollutants {
		v := p.Base + p.Amplitude*math.Sin(2*math.Pi*day) + p.Noise*(s.rnd.Float64()*2-1)
		if exc {
			v += p.Excursion
		}
		v = max(v, 0)
		kinds := []string{"Rtd"}
		if cn != hj212.CNRealtime {
			kinds = []string{"Min", "Avg", "Max"}
		}
		cp = append(cp, ';')
		for i, k := range kinds {
			x := v
			switch k {
			case "Min":
				x = max(v-p.Noise, 0)
			case "Max":
				x = v + p.Noise
			}
			if i > 0 {
				cp = append(cp, ',')
			}
			cp = append(cp, p.Code...)
			cp = append(cp, '-')
			cp = append(cp, k...)
			cp = append(cp, '=')
			cp = strconv.AppendFloat(cp, x, 'f', p.Decimals, 64)
		}
		cp = append(cp, ',')
		cp = append(cp, p.Code...)
		cp = append(cp, "-Flag="...)
		cp = append(cp, flag...)
	}
	seg := hj212.Segment{QN: hj212.QN(s.now()), ST: s.ST, CN: cn, PW: s.PW, MN: s.MN,
		Flag: hj212.Version2017<<2 | hj212.FlagAnswer, HasFlag: true, CP: string(cp)}
	s.sent.Add(1)
	return hj212.AppendFrame(nil, hj212.AppendSegment(nil, seg))
}

// Wastewater is the pollutant set of a wastewater treatment plant's outlet (profile
// hj212-wastewater): COD around 30 mg/L rising over 50 during excursions, ammonia nitrogen,
// pH, total phosphorus, total nitrogen, flow and water temperature.
func Wastewater() []Pollutant {
	return []Pollutant{
		{Code: "w01018", Base: 30, Amplitude: 5, Noise: 2, Excursion: 28, Decimals: 1},
		{Code: "w21003", Base: 1.8, Amplitude: 0.4, Noise: 0.2, Decimals: 2},
		{Code: "w01001", Base: 7.2, Amplitude: 0.2, Noise: 0.05, Decimals: 2},
		{Code: "w21011", Base: 0.25, Amplitude: 0.05, Noise: 0.03, Decimals: 3},
		{Code: "w21001", Base: 9, Amplitude: 1.5, Noise: 0.5, Decimals: 2},
		{Code: "w00000", Base: 55, Amplitude: 15, Noise: 3, Decimals: 1},
		{Code: "w01010", Base: 18, Amplitude: 2, Noise: 0.2, Decimals: 1},
	}
}

// String names the station in logs.
func (s *Station) String() string { return fmt.Sprintf("hj212 station %s → %s", s.MN, s.Addr) }
