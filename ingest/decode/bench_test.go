package decode_test

import (
	"encoding/json"
	"testing"

	"github.com/offsite-gw/offsite/ingest/decode"
)

var dustPayload = []byte(`{"ts": 1764210904123, "sn": "YZ2025A0113", "model": "扬尘噪声一体机", ` +
	`"data": {"pm25": 35.2, "pm10": 88.1, "tsp": 156.0, "noise": 62.4, "ws": 2.3, "wd": 180, "temp": -12.5, "hum": 65.0}, ` +
	`"status": {"csq": 23, "door": 0, "power": "ac"}}`)

var genericPayload = []byte(`{"ts": "2025-11-27T10:35:04.123+08:00", "values": {"temperature": 21.5, "humidity": 48.2, "pm25": 12, "pm10": 30, "co2": 612}}`)

// BenchmarkDecodeJSON is the hot path of ingest: one decode per MQTT message.
func BenchmarkDecodeJSON(b *testing.B) {
	for _, bb := range []struct {
		name, profile string
		payload       []byte
	}{{"dust-noise-monitor", "dust-noise-monitor", dustPayload}, {"generic-json", "generic-json", genericPayload}} {
		b.Run(bb.name, func(b *testing.B) {
			d := decoder(b, shipped(b, bb.profile))
			b.SetBytes(int64(len(bb.payload)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.Decode(bb.payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeJSONStdlibMap is the naive way, for comparison: encoding/json into
// map[string]any, then walking the map.
func BenchmarkDecodeJSONStdlibMap(b *testing.B) {
	b.SetBytes(int64(len(dustPayload)))
	b.ReportAllocs()
	for b.Loop() {
		var m map[string]any
		if err := json.Unmarshal(dustPayload, &m); err != nil {
			b.Fatal(err)
		}
		data := m["data"].(map[string]any)
		out := make([]decode.Reading, 0, 8)
		for _, k := range []string{"pm25", "pm10", "tsp", "noise", "ws", "wd", "temp", "hum"} {
			if v, ok := data[k].(float64); ok {
				out = append(out, decode.Reading{Metric: k, Value: v})
			}
		}
		_ = out
	}
}

func BenchmarkDecodeBinary(b *testing.B) {
	d := decoder(b, shipped(b, "elevator-monitor"))
	frame := elevatorFrame{floor: 12, running: 1, direction: 1, speed: 175, load: 46, carTemp: 235}.bytes()
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Decode(frame); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidate(b *testing.B) {
	p := shipped(b, "dust-noise-monitor")
	d, err := decoder(b, p).Decode(dustPayload)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ps := decode.Validate(p, d); len(ps) != 0 {
			b.Fatal(ps)
		}
	}
}
