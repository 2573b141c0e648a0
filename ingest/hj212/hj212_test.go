package hj212_test

import (
	"bytes"
	"errors"
	"io"
	"math"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/ingest/hj212"
)

// The standard's example (HJ 212-2017 §6.5, docs/contracts.md §8): a 101-byte data segment
// with CRC 1C80.
const stdFrame = "##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n"

func TestCRCStandardExample(t *testing.T) {
	data := stdFrame[6 : len(stdFrame)-6]
	require.Len(t, data, 101)
	require.Equal(t, uint16(0x1C80), hj212.CRC([]byte(data)))
	require.Equal(t, stdFrame, string(hj212.AppendFrame(nil, []byte(data))))
}

func TestCRCIsNotModbus(t *testing.T) {
	// MODBUS CRC-16 of "123456789" is 0x4B37; the HJ 212 register update gives another value.
	require.NotEqual(t, uint16(0x4B37), hj212.CRC([]byte("123456789")))
}

// frames from the standard's examples (appendix tables), wrapped with their CRC.
var stdSegments = []string{
	// real-time data of a wastewater outlet, 2017
	"QN=20160801085857223;ST=32;CN=2011;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&DataTime=20160801085857;w01018-Rtd=25.3,w01018-Flag=N;w21003-Rtd=3.21,w21003-Flag=N;w01001-Rtd=7.2,w01001-Flag=N&&",
	// minute data of a flue-gas outlet with converted values
	"QN=20160801090000001;ST=31;CN=2051;PW=100000;MN=010000A8900016F000169DC1;Flag=4;CP=&&DataTime=20160801085800;a21026-Min=10.1,a21026-Avg=12.5,a21026-Max=15.0,a21026-ZsAvg=18.2,a21026-Flag=N&&",
	// the 2005 form: no QN digits constraint, no Flag
	"ST=32;CN=2011;PW=123456;MN=88888880000001;CP=&&DataTime=20040516020111;B01-Rtd=36.91;011-Rtd=231.0,011-Flag=N&&",
}

func TestReaderManyFramesAnyCut(t *testing.T) {
	var stream []byte
	for _, s := range stdSegments {
		stream = hj212.AppendFrame(stream, []byte(s))
	}
	stream = append(stream, stdFrame...)
	for _, name := range []string{"whole", "one byte a read", "half"} {
		t.Run(name, func(t *testing.T) {
			var r io.Reader = bytes.NewReader(stream)
			switch name {
			case "one byte a read":
				r = iotest.OneByteReader(r)
			case "half":
				r = iotest.HalfReader(r)
			}
			fr := hj212.NewReader(r, 0)
			var got []string
			for {
				d, err := fr.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				require.NoError(t, err)
				got = append(got, string(d))
			}
			require.Equal(t, append(append([]string{}, stdSegments...), stdFrame[6:len(stdFrame)-6]), got)
		})
	}
}

func TestReaderRefusesBadBytesKeepsGoodFrames(t *testing.T) {
	good := func(i int) []byte { return hj212.AppendFrame(nil, []byte(stdSegments[i%2])) }
	badCRC := hj212.AppendFrame(nil, []byte(stdSegments[0]))
	badCRC[len(badCRC)-3] ^= 1                             // flip a CRC digit
	liar := []byte("##0900" + stdSegments[1] + "ABCD\r\n") // says 900, is shorter
	tooLong := []byte("##2000" + string(bytes.Repeat([]byte("x"), 30)) + "\r\n")
	var stream []byte
	stream = append(stream, good(0)...)
	stream = append(stream, "NOISE!\x01\x02"...)
	stream = append(stream, good(1)...)
	stream = append(stream, badCRC...)
	stream = append(stream, good(0)...)
	stream = append(stream, liar...)
	stream = append(stream, good(1)...)
	stream = append(stream, tooLong...)
	stream = append(stream, good(0)...)
	stream = append(stream, "##12"...) // cut off

	fr := hj212.NewReader(iotest.HalfReader(bytes.NewReader(stream)), 0)
	var frames int
	var reasons []string
	var refused []byte
	for {
		_, err := fr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var fe *hj212.FrameError
		if errors.As(err, &fe) {
			reasons = append(reasons, fe.Reason)
			refused = append(refused, fe.Raw...)
			continue
		}
		require.NoError(t, err)
		frames++
	}
	require.Equal(t, 5, frames)
	require.Equal(t, []string{"garbage", "crc_mismatch", "bad_length", "too_long", "garbage", "truncated"}, reasons)
	// every refused byte is kept, so a person can see what the station sent
	require.Contains(t, string(refused), "NOISE!")
	require.Contains(t, string(refused), string(badCRC))
	require.Contains(t, string(refused), "##0900")
	require.Contains(t, string(refused), "xxxxxxxx")
}

func TestParseSegmentStandard(t *testing.T) {
	s, err := hj212.ParseSegment([]byte(stdFrame[6 : len(stdFrame)-6]))
	require.NoError(t, err)
	require.Equal(t, hj212.Segment{QN: "20160801085857223", ST: "32", CN: 1062, PW: "100000", MN: "010000A8900016F000169DC0",
		Flag: 5, HasFlag: true, CP: "RtdInterval=30"}, s)
	require.Equal(t, hj212.Version2017, s.Version())
	require.True(t, s.WantsAnswer())

	s, err = hj212.ParseSegment([]byte(stdSegments[2]))
	require.NoError(t, err)
	require.False(t, s.HasFlag)
	require.Equal(t, hj212.Version2005, s.Version())
	require.False(t, s.WantsAnswer())
	d, err := hj212.ParseCP(s.CP, nil)
	require.NoError(t, err)
	require.Equal(t, time.Date(2004, 5, 16, 2, 1, 11, 0, hj212.Beijing).UTC(), d.Time.UTC())
	require.Len(t, d.Pollutants, 2)
	require.Equal(t, "011", d.Pollutants[1].Code)
	require.Equal(t, 231.0, d.Pollutants[1].Rtd)
	require.Equal(t, "N", d.Pollutants[1].Flag)
	require.Empty(t, d.Pollutants[0].Flag)
}

func TestParseCPValues(t *testing.T) {
	s, err := hj212.ParseSegment([]byte(stdSegments[1]))
	require.NoError(t, err)
	d, err := hj212.ParseCP(s.CP, nil)
	require.NoError(t, err)
	p := d.Pollutants[0]
	v, ok := p.Value(s.CN, false)
	require.True(t, ok)
	require.Equal(t, 12.5, v)
	v, ok = p.Value(s.CN, true)
	require.True(t, ok)
	require.Equal(t, 18.2, v)
	_, ok = p.Value(hj212.CNRealtime, false)
	require.False(t, ok)
	require.True(t, math.IsNaN(p.Rtd))
}

func TestParseSegmentRefusals(t *testing.T) {
	for name, seg := range map[string]string{
		"no CP":         "QN=1;ST=32;CN=2011;PW=1;MN=A1",
		"CP not closed": "ST=32;CN=2011;PW=1;MN=A1;CP=&&DataTime=20160801085857",
		"no MN":         "ST=32;CN=2011;PW=1;CP=&&&&",
		"no CN":         "ST=32;PW=1;MN=A1;CP=&&&&",
		"twice":         "CN=2011;CN=2011;PW=1;MN=A1;CP=&&&&",
		"bad flag":      "CN=2011;PW=1;MN=A1;Flag=x;CP=&&&&",
		"PNO past PNUM": "CN=2011;PW=1;MN=A1;Flag=7;PNUM=2;PNO=3;CP=&&&&",
		"MN symbols":    "CN=2011;PW=1;MN=A-1;CP=&&&&",
		"after CP":      "CN=2011;PW=1;MN=A1;CP=&&&&junk",
	} {
		_, err := hj212.ParseSegment([]byte(seg))
		var se *hj212.SegmentError
		require.ErrorAs(t, err, &se, name)
		require.Equal(t, hj212.ReasonMalformed, se.Reason, name)
	}
	for cp, reason := range map[string]string{
		"DataTime=20161301000000": hj212.ReasonBadTime,
		"DataTime=2016":           hj212.ReasonBadTime,
		"w01018-Rtd=abc":          hj212.ReasonBadValue,
		"w01018-Rtd=NaN":          hj212.ReasonBadValue,
		"w01018-Rtd=0x10":         hj212.ReasonBadValue,
		"w01018-Flag=NN":          hj212.ReasonBadValue,
		"DataTime=20160801085857;DataTime=20160801085858": hj212.ReasonMalformed,
	} {
		_, err := hj212.ParseCP(cp, nil)
		var se *hj212.SegmentError
		require.ErrorAs(t, err, &se, cp)
		require.Equal(t, reason, se.Reason, cp)
	}
}

func TestAnswerAndSetTime(t *testing.T) {
	s, err := hj212.ParseSegment([]byte(stdSegments[0]))
	require.NoError(t, err)
	a := hj212.AppendFrame(nil, hj212.AppendSegment(nil, hj212.Answer(s)))
	require.Equal(t, "QN=20160801085857223;ST=91;CN=9014;PW=100000;MN=010000A8900016F000169DC0;Flag=4;CP=&&&&", string(a[6:len(a)-6]))
	// the answer is itself a good frame
	fr := hj212.NewReader(bytes.NewReader(a), 0)
	got, err := fr.Next()
	require.NoError(t, err)
	back, err := hj212.ParseSegment(got)
	require.NoError(t, err)
	require.Equal(t, hj212.CNDataAck, back.CN)

	now := time.Date(2026, 12, 3, 4, 5, 6, 7e6, time.UTC)
	st := hj212.SetTime(s, now)
	require.Equal(t, "QN=20261203120506007;ST=32;CN=1012;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&SystemTime=20261203120506&&",
		string(hj212.AppendSegment(nil, st)))
}

func TestAssembler(t *testing.T) {
	base := "QN=20160801085857223;ST=32;CN=2011;PW=100000;MN=A1;Flag=7;"
	p1 := base + "PNUM=3;PNO=1;CP=&&DataTime=20160801085857;w01018-Rtd=25.3,w01018-Flag=N&&"
	p2 := base + "PNUM=3;PNO=2;CP=&&DataTime=20160801085857;w21003-Rtd=3.2,w21003-Flag=N&&"
	p3 := base + "PNUM=3;PNO=3;CP=&&DataTime=20160801085857;w01001-Rtd=7.1,w01001-Flag=N&&"
	var a hj212.Assembler
	now := time.Now()
	for i, raw := range []string{p3, p1, p1, p2} { // out of order, one repeat
		s, err := hj212.ParseSegment([]byte(raw))
		require.NoError(t, err)
		whole, done, err := a.Add(s, []byte(raw), now)
		require.NoError(t, err)
		require.Equal(t, i == 3, done, i)
		if done {
			require.Equal(t, 0, whole.PNUM)
			require.Equal(t, 5, whole.Flag)
			d, err := hj212.ParseCP(whole.CP, nil)
			require.NoError(t, err)
			require.Len(t, d.Pollutants, 3)
			require.Equal(t, []string{"w01018", "w21003", "w01001"}, []string{d.Pollutants[0].Code, d.Pollutants[1].Code, d.Pollutants[2].Code})
		}
	}
	require.Zero(t, a.Pending())

	s, _ := hj212.ParseSegment([]byte(p1))
	_, done, err := a.Add(s, []byte(p1), now)
	require.NoError(t, err)
	require.False(t, done)
	require.Empty(t, a.Expire(now.Add(time.Minute)))
	lost := a.Expire(now.Add(3 * time.Minute))
	require.Len(t, lost, 1)
	require.Equal(t, 1, lost[0].Have)
	require.Equal(t, 3, lost[0].Want)
	require.Contains(t, lost[0].Raw, "w01018-Rtd=25.3")
}

// crcBitwise is the standard's description, bit by bit, to check the table against.
func crcBitwise(data []byte) uint16 {
	reg := uint16(0xFFFF)
	for _, b := range data {
		reg = (reg >> 8) ^ uint16(b)
		for range 8 {
			out := reg & 1
			reg >>= 1
			if out != 0 {
				reg ^= 0xA001
			}
		}
	}
	return reg
}

func TestCRCTableMatchesTheStandardsDescription(t *testing.T) {
	inputs := [][]byte{nil, {0}, {0xFF}, []byte(stdFrame), []byte(benchSegment())}
	for i := range 256 {
		inputs = append(inputs, []byte{byte(i), byte(255 - i), byte(i * 7)})
	}
	for _, in := range inputs {
		require.Equal(t, crcBitwise(in), hj212.CRC(in), "%q", in)
	}
}
