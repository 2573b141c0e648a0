package ingest_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/ingest"
	"github.com/offsite-gw/offsite/ingest/hj212"
	hjsim "github.com/offsite-gw/offsite/ingest/hj212/sim"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

const (
	stationMN = "41070200000001W0000001"
	stationPW = "123456"
)

// hjStack is the real ingest pipeline behind an HJ 212 listener: devices and the quarantine
// in the metadata store under test (SQLite or PostgreSQL), readings in SQLite telemetry.
type hjStack struct {
	l    *ingest.HJ212Listener
	tel  *ingest.SQLiteTelemetry
	quar *ingest.Quarantine
	pipe *ingest.Pipeline
	reg  *prometheus.Registry

	mu   sync.Mutex
	seen []ingest.Reading // what OnReadings got (what the rules would see, flags included)
}

func newHJStack(t *testing.T, db *store.DB, now func() time.Time) *hjStack {
	t.Helper()
	ctx := context.Background()
	reg := registry(t)
	devs := &devices.SQLStore{DB: db, Profiles: reg, Argon2: devices.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}}
	site := devices.Site{ID: "ww-plant", Name: "新乡市红旗区污水处理厂", RegionCode: "410702", Department: "市生态环境局"}
	require.NoError(t, devs.CreateSite(ctx, &site))
	d := devices.Device{ID: "ww-outlet", SiteID: "ww-plant", Kind: devices.KindSensor, Name: "总排口", Profile: "hj212-wastewater",
		HJ212: &devices.HJ212Credentials{MN: stationMN, PW: stationPW}}
	require.NoError(t, devs.CreateDevice(ctx, &d))

	s := &hjStack{reg: prometheus.NewRegistry()}
	dir := &ingest.Directory{Devices: devs, Profiles: reg, Logger: quietLogger(), RefreshInterval: -1}
	require.NoError(t, dir.Initialize())
	t.Cleanup(dir.Close)
	s.quar = &ingest.Quarantine{DB: db, Logger: quietLogger()}
	require.NoError(t, s.quar.Initialize())
	t.Cleanup(s.quar.Close)
	s.tel = &ingest.SQLiteTelemetry{Path: t.TempDir() + "/telemetry.db", Logger: quietLogger(), FlushInterval: 20 * time.Millisecond}
	require.NoError(t, s.tel.Initialize())
	t.Cleanup(s.tel.Close)
	s.pipe = &ingest.Pipeline{Directory: dir, Sink: s.tel, Quarantine: s.quar, Logger: quietLogger(), QueueSize: 4096,
		Journal: &ingest.Journal{Dir: t.TempDir()},
		OnReadings: func(_ *ingest.Sensor, rs []ingest.Reading) {
			s.mu.Lock()
			s.seen = append(s.seen, rs...)
			s.mu.Unlock()
		}}
	require.NoError(t, s.pipe.Initialize())
	t.Cleanup(s.pipe.Close)
	s.l = &ingest.HJ212Listener{Listen: "127.0.0.1:0", Auth: devs, Directory: dir, Pipeline: s.pipe, Registerer: s.reg,
		Logger: quietLogger(), Now: now}
	require.NoError(t, s.l.Initialize())
	t.Cleanup(s.l.Close)
	return s
}

func (s *hjStack) flush(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, s.pipe.Flush(ctx))
	require.NoError(t, s.tel.Flush(ctx))
}

func (s *hjStack) latest(t *testing.T) map[string]ingest.Reading {
	t.Helper()
	rs, err := s.tel.Latest(context.Background(), "ww-outlet")
	require.NoError(t, err)
	out := map[string]ingest.Reading{}
	for _, r := range rs {
		out[r.Metric] = r
	}
	return out
}

func (s *hjStack) quarantined(t *testing.T, reason string) []ingest.QuarantineEntry {
	t.Helper()
	require.NoError(t, s.quar.Flush(context.Background()))
	es, err := s.quar.List(context.Background(), ingest.QuarantineFilter{Reason: reason})
	require.NoError(t, err)
	return es
}

// station is a data logger's TCP connection.
type station struct {
	c  net.Conn
	fr *hj212.Reader
}

func dialStation(t *testing.T, addr string) *station {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return &station{c: c, fr: hj212.NewReader(bufio.NewReader(c), 0)}
}

func (st *station) send(t *testing.T, b []byte) {
	t.Helper()
	_, err := st.c.Write(b)
	require.NoError(t, err)
}

// next reads the gateway's next frame to the station.
func (st *station) next(t *testing.T) hj212.Segment {
	t.Helper()
	require.NoError(t, st.c.SetReadDeadline(time.Now().Add(30*time.Second)))
	data, err := st.fr.Next()
	require.NoError(t, err, "a well-formed frame with a valid CRC from the gateway")
	seg, err := hj212.ParseSegment(data)
	require.NoError(t, err)
	return seg
}

func frame(seg string) []byte { return hj212.AppendFrame(nil, []byte(seg)) }

// realtime builds a 2011 upload of the test station at t with the given CP pollutant fields.
func realtime(qn string, flag string, t time.Time, fields string) string {
	f := ""
	if flag != "" {
		f = "Flag=" + flag + ";"
	}
	return fmt.Sprintf("QN=%s;ST=32;CN=2011;PW=%s;MN=%s;%sCP=&&DataTime=%s;%s&&", qn, stationPW, stationMN, f, hj212.FormatTime(t), fields)
}

func TestHJ212FramesOverTCP(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		s := newHJStack(t, db, nil)
		now := time.Now().Truncate(time.Second)
		st := dialStation(t, s.l.Addr())

		// Several frames in one write, garbage and a frame with a broken CRC between them:
		// a 2017 real-time upload asking for an answer, a 2005 one (no Flag, no answer), a
		// 2017 minute upload without answer.
		good1 := frame(realtime("20261203101530001", "5", now.Add(-40*time.Second), "w01018-Rtd=38.2,w01018-Flag=N;w21003-Rtd=2.31,w21003-Flag=N;w01001-Rtd=7.21,w01001-Flag=N"))
		bad := frame(realtime("20261203101530002", "5", now.Add(-35*time.Second), "w01018-Rtd=99.9,w01018-Flag=N"))
		bad[len(bad)-4] ^= 0x01
		old := frame(fmt.Sprintf("ST=32;CN=2011;PW=%s;MN=%s;CP=&&DataTime=%s;w01018-Rtd=41.0,w01018-Flag=N;w00000-Rtd=52.3,w00000-Flag=N&&",
			stationPW, stationMN, hj212.FormatTime(now.Add(-20*time.Second))))
		minute := frame(fmt.Sprintf("QN=20261203101600003;ST=32;CN=2051;PW=%s;MN=%s;Flag=4;CP=&&DataTime=%s;w21011-Min=0.2,w21011-Avg=0.31,w21011-Max=0.4,w21011-Flag=N&&",
			stationPW, stationMN, hj212.FormatTime(now.Add(-30*time.Second))))
		var burst []byte
		burst = append(burst, good1...)
		burst = append(burst, "\x00\x07GARBAGE-LINE\r\n"...)
		burst = append(burst, bad...)
		burst = append(burst, old...)
		burst = append(burst, minute...)
		st.send(t, burst)

		ans := st.next(t)
		require.Equal(t, hj212.CNDataAck, ans.CN)
		require.Equal(t, "20261203101530001", ans.QN, "the answer carries the upload's QN")
		require.Equal(t, stationMN, ans.MN)
		require.Equal(t, hj212.Version2017, ans.Version())

		waitFor(t, 30*time.Second, func() (bool, string) {
			s.flush(t)
			l := s.latest(t)
			return len(l) == 5, fmt.Sprintf("metrics stored: %v", l)
		})
		l := s.latest(t)
		require.Equal(t, 41.0, l["cod"].Value, "the 2005 upload, newer, is the latest COD")
		require.Equal(t, 2.31, l["ammonia_nitrogen"].Value)
		require.Equal(t, 7.21, l["ph"].Value)
		require.Equal(t, 52.3, l["flow"].Value)
		require.Equal(t, 0.31, l["total_phosphorus"].Value, "minute data: the Avg")
		require.Equal(t, "N", l["cod"].Flag)
		require.WithinDuration(t, now.Add(-20*time.Second), l["cod"].Time, time.Millisecond, "DataTime is Beijing time")

		g := s.quarantined(t, "garbage")
		require.Len(t, g, 1)
		require.Contains(t, string(g[0].Payload), "GARBAGE-LINE")
		c := s.quarantined(t, "crc_mismatch")
		require.Len(t, c, 1)
		require.Equal(t, string(bad), string(c[0].Payload), "the refused frame is kept as sent")
		require.Equal(t, 1.0, s.refused(t, "crc_mismatch"))
		require.Equal(t, 1.0, s.refused(t, "garbage"))

		// No answer went out for the 2005 and the Flag=4 uploads: the next frame the station
		// gets is the answer to its next upload.
		st.send(t, frame(realtime("20261203101700004", "5", now, "w01018-Rtd=40.0,w01018-Flag=N")))
		require.Equal(t, "20261203101700004", st.next(t).QN)

		// A 2005 station asking for an answer (Flag=1: version 0) gets one in its version; a
		// length that lies and a frame over the maximum are refused without losing the
		// uploads around them.
		liar := []byte("##0400" + realtime("20261203101700005", "5", now, "w01018-Rtd=1,w01018-Flag=N") + "0000\r\n")
		tooLong := []byte("##2000QN=1;" + strings.Repeat("x", 100) + "\r\n")
		var more []byte
		more = append(more, liar...)
		more = append(more, frame(realtime("20261203101700006", "1", now, "w01018-Rtd=41.0,w01018-Flag=N"))...)
		more = append(more, tooLong...)
		more = append(more, frame(realtime("20261203101700007", "5", now, "w01018-Rtd=42.0,w01018-Flag=N"))...)
		st.send(t, more)
		a := st.next(t)
		require.Equal(t, "20261203101700006", a.QN)
		require.Equal(t, hj212.Version2005, a.Version(), "answered in the station's protocol version")
		require.False(t, a.WantsAnswer())
		require.Equal(t, "20261203101700007", st.next(t).QN)
		require.Equal(t, 1.0, s.refused(t, "bad_length"))
		require.Equal(t, 1.0, s.refused(t, "too_long"))
		require.Len(t, s.quarantined(t, "bad_length"), 1)
		require.Contains(t, string(s.quarantined(t, "too_long")[0].Payload), "##2000")
	})
}

// refused is offsite_hj212_refused_total{reason}.
func (s *hjStack) refused(t *testing.T, reason string) float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "offsite_hj212_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "reason" && lp.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestHJ212SplitUploadOverSeveralReads(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		s := newHJStack(t, db, nil)
		now := time.Now().Truncate(time.Second)
		dt := hj212.FormatTime(now.Add(-time.Minute))
		part := func(no int, fields string) []byte {
			return frame(fmt.Sprintf("QN=20261203102000001;ST=32;CN=2011;PW=%s;MN=%s;Flag=7;PNUM=3;PNO=%d;CP=&&DataTime=%s;%s&&",
				stationPW, stationMN, no, dt, fields))
		}
		var stream []byte
		stream = append(stream, part(2, "w21003-Rtd=3.3,w21003-Flag=N")...)
		stream = append(stream, part(1, "w01018-Rtd=45.5,w01018-Flag=N")...)
		stream = append(stream, part(3, "w01001-Rtd=6.9,w01001-Flag=N")...)
		st := dialStation(t, s.l.Addr())
		// one frame over several TCP segments: cut the stream in odd places
		for i := 0; i < len(stream); i += 37 {
			st.send(t, stream[i:min(i+37, len(stream))])
		}
		for range 3 {
			a := st.next(t)
			require.Equal(t, hj212.CNDataAck, a.CN)
			require.Equal(t, "20261203102000001", a.QN)
		}
		waitFor(t, 30*time.Second, func() (bool, string) {
			s.flush(t)
			l := s.latest(t)
			return len(l) == 3, fmt.Sprintf("stored: %v", l)
		})
		l := s.latest(t)
		require.Equal(t, 45.5, l["cod"].Value)
		require.Equal(t, 3.3, l["ammonia_nitrogen"].Value)
		require.Equal(t, 6.9, l["ph"].Value)
		require.Equal(t, ingest.PipelineStats{Submitted: 1, Stored: 1, Readings: 3}, s.pipe.Stats(), "three packets, one upload")
	})
}

// Every data flag is stored with the value; only N reaches the rules as a normal reading
// (Reading.Normal), and D and B are faults (Reading.Fault).
func TestHJ212DataFlags(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		s := newHJStack(t, db, nil)
		base := time.Now().Truncate(time.Second).Add(-20 * time.Second)
		st := dialStation(t, s.l.Addr())
		flags := []string{"N", "F", "M", "S", "D", "C", "T", "B"}
		for i, f := range flags {
			st.send(t, frame(realtime(fmt.Sprintf("2026120310%02d00000", i), "5", base.Add(time.Duration(i)*time.Second),
				fmt.Sprintf("w01018-Rtd=%d,w01018-Flag=%s", 60+i, f))))
			require.Equal(t, hj212.CNDataAck, st.next(t).CN)
		}
		s.flush(t)
		pts, err := s.tel.Series(context.Background(), ingest.SeriesQuery{Device: "ww-outlet", Metric: "cod",
			From: base.Add(-time.Second), To: base.Add(10 * time.Second), Step: time.Second})
		require.NoError(t, err)
		require.Len(t, pts, len(flags), "every value is stored, whatever its flag")
		for i, p := range pts {
			require.Equal(t, float64(60+i), p.Mean)
			want := flags[i]
			if want == "N" {
				want = ""
			}
			require.Equal(t, want, p.Flags, "step %d carries its flag, so the chart can shade M and C", i)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		require.Len(t, s.seen, len(flags))
		var normal, fault []string
		for _, r := range s.seen {
			require.Equal(t, "cod", r.Metric)
			if r.Normal() {
				normal = append(normal, r.Flag)
			}
			if r.Fault() {
				fault = append(fault, r.Flag)
			}
		}
		require.Equal(t, []string{"N"}, normal, "only N readings are checked against limits")
		require.Equal(t, []string{"D", "B"}, fault, "D and B are device faults")
	})
}

func TestHJ212TimeCalibration(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		s := newHJStack(t, db, nil)
		st := dialStation(t, s.l.Addr())
		// The station's clock is 3 minutes slow.
		before := time.Now()
		st.send(t, frame(realtime("20261203103000001", "5", before.Add(-3*time.Minute), "w01018-Rtd=30,w01018-Flag=N")))
		require.Equal(t, hj212.CNDataAck, st.next(t).CN)
		cmd := st.next(t)
		require.Equal(t, hj212.CNSetTime, cmd.CN)
		require.Equal(t, stationMN, cmd.MN)
		require.True(t, cmd.WantsAnswer())
		require.True(t, strings.HasPrefix(cmd.CP, "SystemTime="), cmd.CP)
		set, err := hj212.ParseTime(strings.TrimPrefix(cmd.CP, "SystemTime="))
		require.NoError(t, err)
		require.WithinDuration(t, time.Now(), set, time.Since(before)+2*time.Second, "SystemTime is the gateway's clock in Beijing time")

		// Still slow on the next upload: no second command within CalibrateEvery; the station's
		// own answers (9011/9012) are taken without complaint.
		st.send(t, frame(fmt.Sprintf("QN=%s;ST=91;CN=9011;PW=%s;MN=%s;Flag=4;CP=&&QnRtn=1&&", cmd.QN, stationPW, stationMN)))
		st.send(t, frame(realtime("20261203103000002", "5", time.Now().Add(-3*time.Minute), "w01018-Rtd=31,w01018-Flag=N")))
		require.Equal(t, "20261203103000002", st.next(t).QN)
		// A station that asks for the time (CN 1013) gets it at once.
		st.send(t, frame(fmt.Sprintf("QN=20261203103000003;ST=32;CN=1013;PW=%s;MN=%s;Flag=5;CP=&&&&", stationPW, stationMN)))
		require.Equal(t, hj212.CNSetTime, st.next(t).CN)
		require.Zero(t, s.refused(t, "malformed_segment"))
	})
}

func TestHJ212RefusesUnknownStationsAndClosesAfterRepeatedFailures(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		s := newHJStack(t, db, nil)
		now := time.Now()
		st := dialStation(t, s.l.Addr())
		wrongPW := strings.Replace(realtime("20261203104000001", "5", now, "w01018-Rtd=30,w01018-Flag=N"), "PW="+stationPW, "PW=654321", 1)
		unknown := strings.Replace(realtime("20261203104000002", "5", now, "w01018-Rtd=30,w01018-Flag=N"), stationMN, "41070200000009W0000009", 1)
		st.send(t, frame(wrongPW))
		st.send(t, frame(unknown))
		// a good upload in between resets the count and is answered
		st.send(t, frame(realtime("20261203104000003", "5", now, "w01018-Rtd=30,w01018-Flag=N")))
		require.Equal(t, "20261203104000003", st.next(t).QN, "refused uploads get no answer")
		for range 5 {
			st.send(t, frame(wrongPW))
		}
		require.NoError(t, st.c.SetReadDeadline(time.Now().Add(30*time.Second)))
		_, err := st.fr.Next()
		require.True(t, errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(fmt.Sprint(err), "reset"),
			"the gateway closes the connection after 5 refusals in a row: %v", err)

		require.Equal(t, 6.0, s.refused(t, ingest.ReasonWrongPW))
		require.Equal(t, 1.0, s.refused(t, ingest.ReasonUnknownMN))
		wq := s.quarantined(t, ingest.ReasonWrongPW)
		require.Len(t, wq, 6)
		require.Equal(t, "ww-outlet", wq[0].Device, "the MN is known: the entry names the device")
		require.Contains(t, string(wq[0].Payload), "PW=654321")
		uq := s.quarantined(t, ingest.ReasonUnknownMN)
		require.Len(t, uq, 1)
		require.Equal(t, "41070200000009W0000009", uq[0].Client)
		s.flush(t)
		require.Len(t, s.latest(t), 1, "only the good upload is stored")

		// The listener keeps serving other connections.
		st2 := dialStation(t, s.l.Addr())
		st2.send(t, frame(realtime("20261203104000004", "5", now, "w01018-Rtd=33,w01018-Flag=N")))
		require.Equal(t, "20261203104000004", st2.next(t).QN)
	})
}

// The simulator the demo runs: a station with a slow clock sends real-time and minute data,
// gets answers, follows the gateway's CN 1012, and its readings are stored with their flags.
func TestHJ212SimulatedStation(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		s := newHJStack(t, db, nil)
		st := &hjsim.Station{Addr: s.l.Addr(), MN: stationMN, PW: stationPW, Pollutants: hjsim.Wastewater(),
			RealtimeEvery: 40 * time.Millisecond, MinuteEvery: 100 * time.Millisecond, ClockOffset: -3 * time.Minute,
			Maintenance: hjsim.Period{Every: time.Hour, For: time.Hour}, Logger: quietLogger()}
		require.NoError(t, st.Initialize())
		t.Cleanup(st.Close)
		waitFor(t, 60*time.Second, func() (bool, string) {
			return st.Acked() >= 10 && st.Calibrations() >= 1, fmt.Sprintf("acked %d, calibrations %d", st.Acked(), st.Calibrations())
		})
		after := st.Acked()
		waitFor(t, 60*time.Second, func() (bool, string) {
			return st.Acked() >= after+3, "uploads answered after the calibration"
		})
		st.Close()
		s.flush(t)
		l := s.latest(t)
		require.Len(t, l, 7, "every pollutant of the wastewater profile")
		require.Equal(t, "M", l["cod"].Flag, "maintenance period: every value flagged M")
		require.WithinDuration(t, time.Now(), l["cod"].Time, 90*time.Second, "after CN 1012 the station's clock is right")
		require.Zero(t, s.pipe.Stats().Quarantined)
	})
}
