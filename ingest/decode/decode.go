// Package decode turns sensor payloads into readings, following the decoder of the device's
// firmware profile (firmware-profiles/): a JSON decoder (dotted paths, or open metrics for
// generic-json) and a fixed-layout binary decoder. It checks the form of a payload — syntax,
// types, required fields, size, length — and reports what is wrong as an *Error with a
// snake_case Reason, so ingest can quarantine the message and count it by reason. Whether the
// values are plausible (range, declared metric, finite) is a separate step, Validate, so
// ingest can choose to quarantine one bad value or the whole message.
//
// Decoders are built once per profile with New and are safe for concurrent use.
package decode

import (
	"fmt"
	"math"
	"time"

	profiles "github.com/offsite-gw/offsite/firmware-profiles"
)

// Reading is one decoded value.
type Reading struct {
	Metric string
	Value  float64 // after scale and add
	Unit   string  // from the profile's metric, "" if undeclared or dimensionless
	// Flag is the data flag of an HJ 212 value (N normal; F M S D C T B: see ingest/hj212),
	// "" for payloads that carry none.
	Flag string
}

// Decoded is what one payload carried.
type Decoded struct {
	Values []Reading
	// DeviceTime is the device's own timestamp, zero if the payload has none.
	DeviceTime time.Time
}

// Decoder decodes the payloads of one profile. Implementations are safe for concurrent use.
type Decoder interface {
	Decode(payload []byte) (Decoded, error)
	// DecodeInto is Decode with the readings in dst's storage when it is large enough, so a
	// caller decoding message after message does not allocate; Values is valid until the
	// caller reuses dst.
	DecodeInto(dst []Reading, payload []byte) (Decoded, error)
}

// readings returns dst's storage as n zero readings, allocated only if it is too small.
func readings(dst []Reading, n int) []Reading {
	if cap(dst) < n {
		return make([]Reading, n)
	}
	dst = dst[:n]
	clear(dst)
	return dst
}

// Reasons of *Error (decoding) and Problem (validation). They are stable: ingest counts and
// quarantines by them.
const (
	ReasonMalformedJSON = "malformed_json" // not JSON, trailing data, bad escape, …
	ReasonWrongType     = "wrong_type"     // e.g. a string ("12.5", "NaN") where a number belongs
	ReasonMissingField  = "missing_field"  // a required field is absent or null
	ReasonDuplicateKey  = "duplicate_key"  // the same field twice in one object: which one counts?
	ReasonTooLarge      = "too_large"      // payload over the size limit
	ReasonTooDeep       = "too_deep"       // JSON nested deeper than MaxDepth
	ReasonTooManyValues = "too_many_values"
	ReasonBadTime       = "bad_time"   // device time not RFC 3339 / unix ms, or implausible
	ReasonBadLength     = "bad_length" // binary frame of the wrong length
	ReasonBadMagic      = "bad_magic"  // binary frame with the wrong leading bytes
	ReasonOutOfRange    = "out_of_range"
	ReasonUnknownMetric = "unknown_metric"
	ReasonBadMetricName = "bad_metric_name"
	ReasonNotFinite     = "not_finite"
	ReasonBadSegment    = "malformed_segment" // an HJ 212 data segment that does not parse
	ReasonBadValue      = "bad_value"         // an HJ 212 value that is not a decimal number
)

// Limits.
const (
	DefaultMaxSize = 256 << 10 // bytes of one payload
	MaxDepth       = 64        // JSON nesting
	MaxValues      = 1024      // readings of one open-metrics payload
)

// Error is why a payload could not be decoded.
type Error struct {
	Reason string // one of the Reason constants
	Field  string // JSON path or metric concerned, "" for the whole payload
	Msg    string // for a person
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Reason, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Reason, e.Msg)
}

// Option changes a decoder built by New.
type Option func(*options)

type options struct{ maxSize int }

// WithMaxSize sets the largest payload accepted, in bytes (default DefaultMaxSize).
func WithMaxSize(n int) Option { return func(o *options) { o.maxSize = n } }

// New builds the decoder of profile p. It fails if p has no decoder or the decoder is not
// valid (profiles loaded by the profiles package always are).
func New(p profiles.Profile, opts ...Option) (Decoder, error) {
	o := options{maxSize: DefaultMaxSize}
	for _, f := range opts {
		f(&o)
	}
	if o.maxSize <= 0 {
		return nil, fmt.Errorf("decode: max size %d must be positive", o.maxSize)
	}
	if p.Decoder == nil {
		return nil, fmt.Errorf("decode: profile %s has no decoder", p.ID)
	}
	switch p.Decoder.Kind {
	case "json":
		return newJSON(p, o)
	case "binary":
		return newBinary(p, o)
	case "hj212":
		return newHJ212(p, o)
	}
	return nil, fmt.Errorf("decode: profile %s: unknown decoder kind %q", p.ID, p.Decoder.Kind)
}

// Problem is a decoded reading that fails validation against its profile.
type Problem struct {
	Index   int // into Decoded.Values
	Reading Reading
	Reason  string // out_of_range, unknown_metric, bad_metric_name, not_finite
	Msg     string
}

func (p Problem) Error() string {
	return fmt.Sprintf("%s: %s: %s", p.Reason, p.Reading.Metric, p.Msg)
}

// Validate checks each reading of d against profile p: the value must be finite and inside
// the metric's [min, max]; the metric must be declared, except for open_metrics profiles,
// where an undeclared metric only needs a valid name. It returns one Problem per bad reading,
// nil if all are good, so ingest can quarantine just those readings or the whole message.
func Validate(p profiles.Profile, d Decoded) []Problem {
	open := p.Decoder != nil && p.Decoder.OpenMetrics
	var out []Problem
	next := 0 // readings mostly come in the order the profile declares the metrics
	for i, r := range d.Values {
		bad := func(reason, format string, args ...any) {
			out = append(out, Problem{Index: i, Reading: r, Reason: reason, Msg: fmt.Sprintf(format, args...)})
		}
		if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
			bad(ReasonNotFinite, "value %v is not a finite number", r.Value)
			continue
		}
		var m profiles.Metric
		ok := false
		if next < len(p.Metrics) && p.Metrics[next].Name == r.Metric {
			m, ok = p.Metrics[next], true
			next++
		} else {
			for j := range p.Metrics {
				if p.Metrics[j].Name == r.Metric {
					m, ok, next = p.Metrics[j], true, j+1
					break
				}
			}
		}
		if !ok {
			switch {
			case !open:
				bad(ReasonUnknownMetric, "profile %s declares no metric %q", p.ID, r.Metric)
			case !profiles.ValidMetricName(r.Metric):
				bad(ReasonBadMetricName, "metric name %q: use [a-z0-9_]+, at most 64", r.Metric)
			}
			continue
		}
		if m.Min != nil && r.Value < *m.Min || m.Max != nil && r.Value > *m.Max {
			bad(ReasonOutOfRange, "%g %s is outside the valid range [%s, %s]", r.Value, m.Unit, bound(m.Min), bound(m.Max))
		}
	}
	return out
}

func bound(f *float64) string {
	if f == nil {
		return "-"
	}
	return fmt.Sprintf("%g", *f)
}
