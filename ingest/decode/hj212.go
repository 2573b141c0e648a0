package decode

import (
	"errors"
	"fmt"
	"sync"

	profiles "github.com/offsite-gw/offsite/firmware-profiles"
	"github.com/offsite-gw/offsite/ingest/hj212"
)

// hj212Decoder reads the data segment of an HJ 212 upload (the listener in ingest/ hands over
// the reassembled segment after checking frame, CRC, MN and PW): DataTime is the device time,
// each profile field reads one pollutant code's value for the command (Rtd in 2011, Avg in
// 2051/2061/2031, the converted value with value: zs) with its data flag. Pollutants the
// station did not send are skipped; codes the profile does not know are ignored.
type hj212Decoder struct {
	p      profiles.Profile
	max    int
	fields []hj212Field
	pool   sync.Pool // []hj212.Pollutant scratch
}

type hj212Field struct {
	code   string
	zs     bool
	metric string
	unit   string
}

func newHJ212(p profiles.Profile, o options) (Decoder, error) {
	d := &hj212Decoder{p: p, max: o.maxSize}
	for _, f := range p.Decoder.Fields {
		if f.Code == "" {
			return nil, fmt.Errorf("decode: profile %s: field %s has no code", p.ID, f.Metric)
		}
		m, _ := p.Metric(f.Metric)
		d.fields = append(d.fields, hj212Field{code: f.Code, zs: f.Value == "zs", metric: f.Metric, unit: m.Unit})
	}
	return d, nil
}

func (d *hj212Decoder) Decode(payload []byte) (Decoded, error) { return d.DecodeInto(nil, payload) }

func (d *hj212Decoder) DecodeInto(dst []Reading, payload []byte) (Decoded, error) {
	if len(payload) > d.max {
		return Decoded{}, &Error{Reason: ReasonTooLarge, Msg: fmt.Sprintf("%d bytes, at most %d", len(payload), d.max)}
	}
	seg, err := hj212.ParseSegment(payload)
	if err != nil {
		return Decoded{}, segmentError(err)
	}
	scratch, _ := d.pool.Get().(*[]hj212.Pollutant)
	if scratch == nil {
		scratch = new([]hj212.Pollutant)
	}
	defer d.pool.Put(scratch)
	data, err := hj212.ParseCP(seg.CP, *scratch)
	*scratch = data.Pollutants[:0]
	if err != nil {
		return Decoded{}, segmentError(err)
	}
	out := Decoded{DeviceTime: data.Time, Values: dst[:0]}
	for _, f := range d.fields {
		for i := range data.Pollutants {
			pl := &data.Pollutants[i]
			if pl.Code != f.code {
				continue
			}
			if v, ok := pl.Value(seg.CN, f.zs); ok {
				out.Values = append(out.Values, Reading{Metric: f.metric, Value: v, Unit: f.unit, Flag: pl.Flag})
			}
			break
		}
	}
	return out, nil
}

func segmentError(err error) error {
	var se *hj212.SegmentError
	if errors.As(err, &se) {
		reason := se.Reason
		if reason == hj212.ReasonBadTime {
			reason = ReasonBadTime
		}
		return &Error{Reason: reason, Msg: se.Msg}
	}
	return &Error{Reason: ReasonBadSegment, Msg: err.Error()}
}
