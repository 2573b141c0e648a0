package decode

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"

	profiles "github.com/offsite-gw/offsite/firmware-profiles"
)

// binaryDecoder reads fixed-layout frames. NaN and infinite floats are decoded as they are
// and left to Validate (reason not_finite), so one broken float field does not cost the
// other readings of the frame.
type binaryDecoder struct {
	profile string
	length  int
	order   binary.ByteOrder
	magic   []byte
	fields  []binaryField
	maxSize int
}

type binaryType uint8

const (
	tU8 binaryType = iota
	tI8
	tU16
	tI16
	tU32
	tI32
	tF32
	tF64
)

var binaryTypes = map[string]binaryType{"u8": tU8, "i8": tI8, "u16": tU16, "i16": tI16, "u32": tU32, "i32": tI32, "f32": tF32, "f64": tF64}

type binaryField struct {
	metric, unit string
	typ          binaryType
	offset, size int
	bit          int // -1: whole value
	scale, add   float64
}

func newBinary(p profiles.Profile, o options) (*binaryDecoder, error) {
	pd := p.Decoder
	d := &binaryDecoder{profile: p.ID, length: pd.Length, maxSize: o.maxSize}
	switch pd.ByteOrder {
	case "", "big":
		d.order = binary.BigEndian
	case "little":
		d.order = binary.LittleEndian
	default:
		return nil, fmt.Errorf("decode: profile %s: byte_order %q is not big or little", p.ID, pd.ByteOrder)
	}
	if pd.Length <= 0 {
		return nil, fmt.Errorf("decode: profile %s: binary decoder needs a length", p.ID)
	}
	if pd.Magic != "" {
		m, err := hex.DecodeString(pd.Magic)
		if err != nil || len(m) > pd.Length {
			return nil, fmt.Errorf("decode: profile %s: bad magic %q", p.ID, pd.Magic)
		}
		d.magic = m
	}
	if len(pd.Fields) == 0 || len(pd.Fields) > profiles.MaxFields {
		return nil, fmt.Errorf("decode: profile %s: binary decoder needs 1-%d fields", p.ID, profiles.MaxFields)
	}
	for _, f := range pd.Fields {
		m, ok := p.Metric(f.Metric)
		if !ok {
			return nil, fmt.Errorf("decode: profile %s: field metric %q is not declared", p.ID, f.Metric)
		}
		size := profiles.TypeSize(f.Type)
		if size == 0 {
			return nil, fmt.Errorf("decode: profile %s: field %s: unknown type %q", p.ID, f.Metric, f.Type)
		}
		if f.Offset < 0 || f.Offset+size > pd.Length {
			return nil, fmt.Errorf("decode: profile %s: field %s: %s at offset %d does not fit %d bytes", p.ID, f.Metric, f.Type, f.Offset, pd.Length)
		}
		bit := -1
		if f.Bit != nil {
			bit = *f.Bit
			if bit < 0 || bit >= size*8 || f.Type == "f32" || f.Type == "f64" {
				return nil, fmt.Errorf("decode: profile %s: field %s: bit %d of %s", p.ID, f.Metric, bit, f.Type)
			}
		}
		scale := f.Scale
		if scale == 0 {
			scale = 1
		}
		d.fields = append(d.fields, binaryField{metric: m.Name, unit: m.Unit, typ: binaryTypes[f.Type], offset: f.Offset, size: size, bit: bit, scale: scale, add: f.Add})
	}
	return d, nil
}

// Decode reads one frame.
func (d *binaryDecoder) Decode(payload []byte) (Decoded, error) { return d.DecodeInto(nil, payload) }

// DecodeInto implements Decoder.
func (d *binaryDecoder) DecodeInto(dst []Reading, payload []byte) (Decoded, error) {
	if len(payload) > d.maxSize {
		return Decoded{}, &Error{Reason: ReasonTooLarge, Msg: fmt.Sprintf("payload is %d bytes, the limit is %d", len(payload), d.maxSize)}
	}
	if len(payload) != d.length {
		return Decoded{}, &Error{Reason: ReasonBadLength, Msg: fmt.Sprintf("frame is %d bytes, profile %s expects %d", len(payload), d.profile, d.length)}
	}
	if !bytes.HasPrefix(payload, d.magic) {
		return Decoded{}, &Error{Reason: ReasonBadMagic, Msg: fmt.Sprintf("frame starts with %x, expected %x", payload[:len(d.magic)], d.magic)}
	}
	out := readings(dst, len(d.fields))
	for i := range d.fields {
		f := &d.fields[i]
		b := payload[f.offset : f.offset+f.size]
		var v float64
		switch f.typ {
		case tU8:
			v = d.intValue(f, uint64(b[0]), float64(b[0]))
		case tI8:
			v = d.intValue(f, uint64(b[0]), float64(int8(b[0])))
		case tU16:
			u := d.order.Uint16(b)
			v = d.intValue(f, uint64(u), float64(u))
		case tI16:
			u := d.order.Uint16(b)
			v = d.intValue(f, uint64(u), float64(int16(u)))
		case tU32:
			u := d.order.Uint32(b)
			v = d.intValue(f, uint64(u), float64(u))
		case tI32:
			u := d.order.Uint32(b)
			v = d.intValue(f, uint64(u), float64(int32(u)))
		case tF32:
			v = float64(math.Float32frombits(d.order.Uint32(b)))
		case tF64:
			v = math.Float64frombits(d.order.Uint64(b))
		}
		out[i] = Reading{Metric: f.metric, Value: v*f.scale + f.add, Unit: f.unit}
	}
	return Decoded{Values: out}, nil
}

// intValue is the field's raw number, or one bit of it.
func (d *binaryDecoder) intValue(f *binaryField, bits uint64, value float64) float64 {
	if f.bit >= 0 {
		return float64(bits >> f.bit & 1)
	}
	return value
}
