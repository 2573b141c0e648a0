package hj212

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Pollutant is the values one CP carries for one pollutant code (w01018, a21026, LA, …). A
// value the station did not send is NaN.
type Pollutant struct {
	Code  string
	Rtd   float64 // real-time value (2011)
	Avg   float64 // average of the interval (2051, 2061, 2031)
	Min   float64
	Max   float64
	Cou   float64 // cumulative amount of the interval (flow)
	ZsRtd float64 // converted (折算) real-time value (flue gas)
	ZsAvg float64
	// Flag is the data flag (N normal, F stopped, M maintenance, S manual, D fault,
	// C calibration, T over range, B communication fault); "" when the station sent none.
	Flag string
}

// Data is what a CP carries: its DataTime and the pollutants in the order they came.
type Data struct {
	Time       time.Time // DataTime, zero if absent
	SystemTime time.Time // SystemTime (1013 requests, 1012 commands), zero if absent
	Pollutants []Pollutant
}

// MaxPollutants bounds the pollutants of one CP.
const MaxPollutants = 256

// ParseCP reads the fields of a CP: groups separated by ';', fields by ','; `DataTime=…`,
// `code-Rtd=…`, `code-Avg=…`, `code-Min=…`, `code-Max=…`, `code-Cou=…`, `code-ZsRtd=…`,
// `code-ZsAvg=…`, `code-Flag=…`. Other fields (SampleTime, EFlag, RestartTime, RT, …) are
// skipped. dst's storage is reused for the pollutants.
func ParseCP(cp string, dst []Pollutant) (Data, error) {
	d := Data{Pollutants: dst[:0]}
	seenTime := false
	for cp != "" {
		var f string
		i := strings.IndexAny(cp, ";,")
		if i < 0 {
			f, cp = cp, ""
		} else {
			f, cp = cp[:i], cp[i+1:]
		}
		if f == "" {
			continue
		}
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return d, malformed("CP field %q has no '='", clip(f))
		}
		switch k {
		case "DataTime":
			t, err := ParseTime(v)
			if err != nil {
				return d, err
			}
			// The packets of a split upload each repeat it; two different times are a lie.
			if seenTime && !t.Equal(d.Time) {
				return d, malformed("two different DataTime values in one CP")
			}
			d.Time, seenTime = t, true
			continue
		case "SystemTime":
			t, err := ParseTime(v)
			if err != nil {
				return d, err
			}
			d.SystemTime = t
			continue
		}
		code, kind, ok := strings.Cut(k, "-")
		if !ok || code == "" || len(code) > 16 || !alnum(code) {
			continue // not a pollutant field
		}
		p := d.pollutant(code)
		if p == nil {
			return d, malformed("more than %d pollutants in one CP", MaxPollutants)
		}
		var dstVal *float64
		switch kind {
		case "Flag":
			if len(v) != 1 || !(v[0] >= 'A' && v[0] <= 'Z' || v[0] >= 'a' && v[0] <= 'z') {
				return d, &SegmentError{Reason: ReasonBadValue, Msg: fmt.Sprintf("%s: data flag %q must be one letter", k, clip(v))}
			}
			p.Flag = strings.ToUpper(v)
			continue
		case "Rtd":
			dstVal = &p.Rtd
		case "Avg":
			dstVal = &p.Avg
		case "Min":
			dstVal = &p.Min
		case "Max":
			dstVal = &p.Max
		case "Cou":
			dstVal = &p.Cou
		case "ZsRtd":
			dstVal = &p.ZsRtd
		case "ZsAvg":
			dstVal = &p.ZsAvg
		default:
			continue
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) || strings.ContainsAny(v, "xXpPnNiI_") {
			return d, &SegmentError{Reason: ReasonBadValue, Msg: fmt.Sprintf("%s: %q is not a decimal number", k, clip(v))}
		}
		*dstVal = x
	}
	return d, nil
}

// pollutant returns the entry of code, added when new; nil past MaxPollutants. Codes usually
// come once each, fields of one code together: look at the last entry first.
func (d *Data) pollutant(code string) *Pollutant {
	ps := d.Pollutants
	if n := len(ps); n > 0 && ps[n-1].Code == code {
		return &ps[n-1]
	}
	for i := range ps {
		if ps[i].Code == code {
			return &ps[i]
		}
	}
	if len(ps) >= MaxPollutants {
		return nil
	}
	nan := math.NaN()
	d.Pollutants = append(ps, Pollutant{Code: code, Rtd: nan, Avg: nan, Min: nan, Max: nan, Cou: nan, ZsRtd: nan, ZsAvg: nan})
	return &d.Pollutants[len(d.Pollutants)-1]
}

// Value returns the value of p that a command carries: Rtd for real-time data (2011), else Avg
// (Cou when the station sent no Avg, as for some flow meters); zs selects the converted
// (折算) value. ok is false when the station sent none.
func (p Pollutant) Value(cn int, zs bool) (float64, bool) {
	var v float64
	switch {
	case zs && cn == CNRealtime:
		v = p.ZsRtd
	case zs:
		v = p.ZsAvg
	case cn == CNRealtime:
		v = p.Rtd
	default:
		v = p.Avg
		if math.IsNaN(v) {
			v = p.Cou
		}
	}
	return v, !math.IsNaN(v)
}
