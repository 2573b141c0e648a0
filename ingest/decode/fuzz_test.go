package decode_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	profiles "github.com/offsite-gw/offsite/firmware-profiles"
	"github.com/offsite-gw/offsite/ingest/decode"
)

// FuzzDecodeJSON feeds arbitrary payloads to the JSON decoders of the shipped sensor
// profiles and of a profile with array paths. Beyond "no panic" it checks the decoder
// against encoding/json: what encoding/json calls invalid must be refused, malformed_json
// must only be said of what encoding/json also refuses, and every value decoded must be the
// one encoding/json finds on the same path.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		string(dustPayload), string(genericPayload),
		`{"time": "2025-11-27T10:35:04.123+08:00", "temp": -18.6, "rh": 82.5, "bat": 3.61}`,
		`{"ts": 1764210904123, "gas": {"lel": 23.5, "fault": 0}, "signal": -71}`,
		`{"ts":1764210904123,"data":{"fume":2.6,"pm":1.1,"nmhc":3.2,"fan":true,"purifier":false}}`,
		`{"data":[{"v":1},{"v":99},{"v":650}],"obj":{"0":7},"head":{"time":"2025-11-27T02:35:04Z"}}`,
		`{"d\u0061ta":[{"v":1},null,{"\u0076":400}],"obj":{"\u0030":2}}`,
		`{"values":{"pm10":"NaN"}}`, `{"values":{"a":1,"a":2}}`, `[[[[]]]]`, `{"data":{"pm10":1e400}}`,
		`{"ts":1764210904,"values":{}}`, "", " ", `{"a":"\ud83d\ude00"}`, `{"values":{"\u00e9t\u00e9":1}}`,
	} {
		f.Add([]byte(s))
	}
	var (
		names []string
		decs  []decode.Decoder
		ps    []profiles.Profile
	)
	for _, id := range []string{"dust-noise-monitor", "coldchain-logger", "gas-detector", "kitchen-fume-monitor", "generic-json"} {
		p := shipped(f, id)
		names, decs, ps = append(names, id), append(decs, decoder(f, p)), append(ps, p)
	}
	p := parse(f, pathsProfile)
	names, decs, ps = append(names, "paths"), append(decs, decoder(f, p)), append(ps, p)

	f.Fuzz(func(t *testing.T, payload []byte) {
		valid := json.Valid(payload)
		var doc any
		if valid {
			dec := json.NewDecoder(bytes.NewReader(payload))
			dec.UseNumber()
			if err := dec.Decode(&doc); err != nil {
				t.Fatalf("json.Valid but Decode failed: %v", err)
			}
		}
		for i, d := range decs {
			got, err := d.Decode(payload)
			if err != nil {
				var de *decode.Error
				if !errors.As(err, &de) || de.Reason == "" {
					t.Fatalf("%s: untyped error %v", names[i], err)
				}
				if de.Reason == decode.ReasonMalformedJSON && valid {
					t.Fatalf("%s: malformed_json for valid JSON %q: %v", names[i], payload, err)
				}
				continue
			}
			if !valid {
				t.Fatalf("%s: accepted invalid JSON %q", names[i], payload)
			}
			checkAgainstStdlib(t, names[i], ps[i], doc, got)
			_ = decode.Validate(ps[i], got)
		}
	})
}

func checkAgainstStdlib(t *testing.T, name string, p profiles.Profile, doc any, got decode.Decoded) {
	t.Helper()
	if p.Decoder.OpenMetrics {
		obj, _ := lookup(doc, p.Decoder.ValuesPath).(map[string]any)
		for _, r := range got.Values {
			want, ok := number(obj[r.Metric])
			if !ok || want != r.Value {
				t.Fatalf("%s: %s = %v, encoding/json has %v", name, r.Metric, r.Value, obj[r.Metric])
			}
		}
		return
	}
	for _, r := range got.Values {
		var fld profiles.Field
		for _, f := range p.Decoder.Fields {
			if f.Metric == r.Metric {
				fld = f
			}
		}
		raw, ok := number(lookup(doc, fld.Path))
		scale := fld.Scale
		if scale == 0 {
			scale = 1
		}
		if want := raw*scale + fld.Add; !ok || want != r.Value && !(math.IsNaN(want) && math.IsNaN(r.Value)) {
			t.Fatalf("%s: %s = %v, encoding/json has %v at %s", name, r.Metric, r.Value, lookup(doc, fld.Path), fld.Path)
		}
	}
}

func lookup(v any, path string) any {
	for seg := range strings.SplitSeq(path, ".") {
		switch c := v.(type) {
		case map[string]any:
			v = c[seg]
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) {
				return nil
			}
			v = c[i]
		default:
			return nil
		}
	}
	return v
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(n), 64)
		return f, err == nil
	case bool:
		if n {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// FuzzDecodeBinary feeds arbitrary frames to the elevator decoder and to a decoder with every
// type in both byte orders: no panic, typed errors, and a frame of the right length with the
// right magic always decodes into one reading per field.
func FuzzDecodeBinary(f *testing.F) {
	f.Add(elevatorFrame{floor: 12, running: 1, speed: 175, load: 46}.bytes())
	f.Add(elevatorFrame{floor: -2, alarms: 0xFF, trapped: 1, carTemp: -300}.bytes())
	f.Add(make([]byte, 27))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xFF}, 27))
	type target struct {
		d      decode.Decoder
		p      profiles.Profile
		magic  []byte
		length int
	}
	var targets []target
	e := shipped(f, "elevator-monitor")
	targets = append(targets, target{decoder(f, e), e, []byte{0xAA, 0x55}, 16})
	for _, order := range []string{"big", "little"} {
		p := parse(f, fmt.Sprintf(allTypesProfile, order))
		targets = append(targets, target{decoder(f, p), p, nil, 27})
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		for _, tg := range targets {
			got, err := tg.d.Decode(frame)
			good := len(frame) == tg.length && bytes.HasPrefix(frame, tg.magic)
			if good != (err == nil) {
				t.Fatalf("%s: frame % x: err %v", tg.p.ID, frame, err)
			}
			if err != nil {
				var de *decode.Error
				if !errors.As(err, &de) || (de.Reason != decode.ReasonBadLength && de.Reason != decode.ReasonBadMagic) {
					t.Fatalf("%s: unexpected error %v", tg.p.ID, err)
				}
				continue
			}
			if len(got.Values) != len(tg.p.Decoder.Fields) {
				t.Fatalf("%s: %d readings for %d fields", tg.p.ID, len(got.Values), len(tg.p.Decoder.Fields))
			}
			for _, pr := range decode.Validate(tg.p, got) {
				if pr.Reason == decode.ReasonUnknownMetric {
					t.Fatalf("%s: %v", tg.p.ID, pr)
				}
			}
		}
	})
}
