package decode_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	profiles "github.com/offsite-gw/offsite/firmware-profiles"
	"github.com/offsite-gw/offsite/ingest/decode"
)

func shipped(t testing.TB, id string) profiles.Profile {
	t.Helper()
	ps, err := profiles.Embedded()
	require.NoError(t, err)
	for _, p := range ps {
		if p.ID == id {
			return p
		}
	}
	t.Fatalf("no shipped profile %s", id)
	return profiles.Profile{}
}

func decoder(t testing.TB, p profiles.Profile, opts ...decode.Option) decode.Decoder {
	t.Helper()
	d, err := decode.New(p, opts...)
	require.NoError(t, err)
	return d
}

// parse builds a test profile through the real loader, so it is a valid one.
func parse(t testing.TB, yml string) profiles.Profile {
	t.Helper()
	p, err := profiles.Parse("test.yml", []byte(yml))
	require.NoError(t, err)
	return p
}

// elevatorFrame builds the 16-byte frame of elevator-monitor (see its profile).
type elevatorFrame struct {
	floor                     int8
	door, running, direction  uint8
	speed                     uint16 // 0.01 m/s
	load                      uint16
	alarms, trapped           uint8
	carTemp                   int16 // 0.1 °C
	counter                   uint16
	magic0, magic1            byte
	overrideMagic, shortFrame bool
}

func (f elevatorFrame) bytes() []byte {
	b := make([]byte, 16)
	b[0], b[1] = 0xAA, 0x55
	if f.overrideMagic {
		b[0], b[1] = f.magic0, f.magic1
	}
	b[2] = byte(f.floor)
	b[3], b[4], b[5] = f.door, f.running, f.direction
	binary.BigEndian.PutUint16(b[6:], f.speed)
	binary.BigEndian.PutUint16(b[8:], f.load)
	b[10], b[11] = f.alarms, f.trapped
	binary.BigEndian.PutUint16(b[12:], uint16(f.carTemp))
	binary.BigEndian.PutUint16(b[14:], f.counter)
	if f.shortFrame {
		return b[:15]
	}
	return b
}

func r(metric string, v float64, unit string) decode.Reading {
	return decode.Reading{Metric: metric, Value: v, Unit: unit}
}

func TestDecodeShippedProfiles(t *testing.T) {
	ts := time.Date(2025, 11, 27, 2, 35, 4, 123e6, time.UTC)
	tests := []struct {
		name     string
		profile  string
		payload  []byte
		want     []decode.Reading
		wantTime time.Time
	}{
		{"dust full", "dust-noise-monitor",
			[]byte(`{"ts": 1764210904123, "sn": "YZ2025A0113",
			  "data": {"pm25": 35.2, "pm10": 88.1, "tsp": 156.0, "noise": 62.4,
			           "ws": 2.3, "wd": 180, "temp": -12.5, "hum": 65.0}}`),
			[]decode.Reading{r("pm25", 35.2, "µg/m³"), r("pm10", 88.1, "µg/m³"), r("tsp", 156, "µg/m³"), r("noise", 62.4, "dB(A)"),
				r("wind_speed", 2.3, "m/s"), r("wind_direction", 180, "°"), r("temperature", -12.5, "°C"), r("humidity", 65, "%RH")},
			ts},
		{"dust without optional sensors, keys in another order, no ts", "dust-noise-monitor",
			[]byte(`{"data":{"noise":71,"pm10":182.0,"pm25":96,"extra":{"a":[1,2,{"b":null}],"c":"x"}}}`),
			[]decode.Reading{r("pm25", 96, "µg/m³"), r("pm10", 182, "µg/m³"), r("noise", 71, "dB(A)")},
			time.Time{}},
		{"dust with null optional", "dust-noise-monitor",
			[]byte(`{"ts":1764210904123,"data":{"pm25":1,"pm10":2,"noise":40,"ws":null}}`),
			[]decode.Reading{r("pm25", 1, "µg/m³"), r("pm10", 2, "µg/m³"), r("noise", 40, "dB(A)")},
			ts},
		{"coldchain RFC 3339 with offset", "coldchain-logger",
			[]byte(`{"time": "2025-11-27T10:35:04.123+08:00", "temp": -18.6, "rh": 82.5, "bat": 3.61}`),
			[]decode.Reading{r("temperature", -18.6, "°C"), r("humidity", 82.5, "%RH"), r("battery", 3.61, "V")},
			ts},
		{"coldchain temperature only", "coldchain-logger",
			[]byte(`{"time":"2025-11-27T02:35:04.123Z","temp":-21}`),
			[]decode.Reading{r("temperature", -21, "°C")},
			ts},
		{"gas detector", "gas-detector",
			[]byte(`{"ts": 1764210904123, "gas": {"lel": 23.5, "fault": 0}, "signal": -71}`),
			[]decode.Reading{r("lel", 23.5, "%LEL"), r("fault", 0, ""), r("signal", -71, "dBm")},
			ts},
		{"kitchen fume, states as booleans", "kitchen-fume-monitor",
			[]byte(`{"ts":1764210904123,"data":{"fume":2.6,"pm":1.1,"nmhc":3.2,"fan":true,"purifier":false}}`),
			[]decode.Reading{r("fume", 2.6, "mg/m³"), r("pm", 1.1, "mg/m³"), r("nmhc", 3.2, "mg/m³"), r("fan", 1, ""), r("purifier", 0, "")},
			ts},
		{"kitchen fume, states as numbers", "kitchen-fume-monitor",
			[]byte(`{"data":{"fume":0.8,"fan":1,"purifier":1}}`),
			[]decode.Reading{r("fume", 0.8, "mg/m³"), r("fan", 1, ""), r("purifier", 1, "")},
			time.Time{}},
		{"generic-json, RFC 3339", "generic-json",
			[]byte(`{"ts": "2025-11-27T02:35:04.123Z", "values": {"temperature": 21.5, "pm10": 48, "flow_rate": 3.25}}`),
			[]decode.Reading{r("temperature", 21.5, "°C"), r("pm10", 48, "µg/m³"), r("flow_rate", 3.25, "")},
			ts},
		{"generic-json, unix ms, null skipped", "generic-json",
			[]byte(`{"values": {"co2": 612, "door": true, "broken": null}, "ts": 1764210904123}`),
			[]decode.Reading{r("co2", 612, "ppm"), r("door", 1, "")},
			ts},
		{"generic-json, no ts, empty values", "generic-json",
			[]byte(`{"values": {}}`), []decode.Reading{}, time.Time{}},
		{"elevator normal", "elevator-monitor",
			elevatorFrame{floor: 12, running: 1, direction: 1, speed: 175, load: 46, carTemp: 235, counter: 9}.bytes(),
			[]decode.Reading{r("floor", 12, ""), r("door_open", 0, ""), r("running", 1, ""), r("direction", 1, ""),
				r("speed", 1.75, "m/s"), r("load", 46, "%"), r("alarm_flags", 0, ""), r("overspeed", 0, ""),
				r("door_open_moving", 0, ""), r("power_failure", 0, ""), r("out_of_zone", 0, ""), r("trapped", 0, ""),
				r("car_temperature", 23.5, "°C")},
			time.Time{}},
		{"elevator trapped in the basement, cold, alarms", "elevator-monitor",
			elevatorFrame{floor: -2, door: 0, speed: 0, load: 120, alarms: 0b1010, trapped: 1, carTemp: -55}.bytes(),
			[]decode.Reading{r("floor", -2, ""), r("door_open", 0, ""), r("running", 0, ""), r("direction", 0, ""),
				r("speed", 0, "m/s"), r("load", 120, "%"), r("alarm_flags", 10, ""), r("overspeed", 0, ""),
				r("door_open_moving", 1, ""), r("power_failure", 0, ""), r("out_of_zone", 1, ""), r("trapped", 1, ""),
				r("car_temperature", -5.5, "°C")},
			time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := shipped(t, tt.profile)
			got, err := decoder(t, p).Decode(tt.payload)
			require.NoError(t, err)
			require.Len(t, got.Values, len(tt.want))
			for i := range tt.want {
				require.Equal(t, tt.want[i].Metric, got.Values[i].Metric)
				require.InDelta(t, tt.want[i].Value, got.Values[i].Value, 1e-9, tt.want[i].Metric)
				require.Equal(t, tt.want[i].Unit, got.Values[i].Unit, tt.want[i].Metric)
			}
			require.True(t, tt.wantTime.Equal(got.DeviceTime), "device time %v, want %v", got.DeviceTime, tt.wantTime)
			if !tt.wantTime.IsZero() {
				require.Equal(t, time.UTC, got.DeviceTime.Location())
			}
			require.Empty(t, decode.Validate(p, got), "realistic payloads are valid")
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	dust := `{"ts":1764210904123,"data":{"pm25":35,"pm10":%s,"noise":60}}`
	deep := strings.Repeat("[", 100) + strings.Repeat("]", 100)
	manyValues := `{"values":{`
	for i := range decode.MaxValues + 1 {
		if i > 0 {
			manyValues += ","
		}
		manyValues += fmt.Sprintf(`"m%d":1`, i)
	}
	manyValues += "}}"
	tests := []struct {
		name, profile string
		payload       string
		reason, field string
		msg           string
	}{
		{"empty", "dust-noise-monitor", "", "malformed_json", "", "empty payload"},
		{"spaces only", "dust-noise-monitor", "  \n", "malformed_json", "", "empty payload"},
		{"not json", "dust-noise-monitor", "pm10=88", "malformed_json", "", ""},
		{"trailing comma", "dust-noise-monitor", `{"data":{"pm25":35,"pm10":88,}}`, "malformed_json", "", ""},
		{"trailing data", "dust-noise-monitor", fmt.Sprintf(dust, "88") + " {}", "malformed_json", "", "after the JSON value"},
		{"truncated", "dust-noise-monitor", fmt.Sprintf(dust, "88")[:30], "malformed_json", "", ""},
		{"leading zero", "dust-noise-monitor", fmt.Sprintf(dust, "088"), "malformed_json", "", ""},
		{"dot without digits", "dust-noise-monitor", fmt.Sprintf(dust, "88."), "malformed_json", "", ""},
		{"plus sign", "dust-noise-monitor", fmt.Sprintf(dust, "+88"), "malformed_json", "", ""},
		{"hex", "dust-noise-monitor", fmt.Sprintf(dust, "0x58"), "malformed_json", "", ""},
		{"bare NaN", "dust-noise-monitor", fmt.Sprintf(dust, "NaN"), "malformed_json", "", ""},
		{"bare Infinity", "dust-noise-monitor", fmt.Sprintf(dust, "Infinity"), "malformed_json", "", ""},
		{"bad escape in skipped key", "dust-noise-monitor", `{"a\x":1}`, "malformed_json", "", "escape"},
		{"control character", "dust-noise-monitor", "{\"sn\":\"a\x01b\"}", "malformed_json", "", "control character"},
		{"single quotes", "dust-noise-monitor", `{'data':{}}`, "malformed_json", "", ""},
		{"string NaN", "dust-noise-monitor", fmt.Sprintf(dust, `"NaN"`), "wrong_type", "data.pm10", `expected a number, got the string "NaN"`},
		{"string number", "dust-noise-monitor", fmt.Sprintf(dust, `"88.1"`), "wrong_type", "data.pm10", `got the string "88.1"`},
		{"object for number", "dust-noise-monitor", fmt.Sprintf(dust, `{"v":88}`), "wrong_type", "data.pm10", "got an object"},
		{"list for number", "dust-noise-monitor", fmt.Sprintf(dust, `[88]`), "wrong_type", "data.pm10", "got a list"},
		{"number for object", "dust-noise-monitor", `{"data": 5}`, "wrong_type", "data", "expected an object, got a number"},
		{"list for object", "dust-noise-monitor", `{"data": [1]}`, "wrong_type", "data", "expected an object, got a list"},
		{"missing field", "dust-noise-monitor", `{"data":{"pm25":35,"noise":60}}`, "missing_field", "data.pm10", ""},
		{"null field", "dust-noise-monitor", fmt.Sprintf(dust, "null"), "missing_field", "data.pm10", ""},
		{"missing object", "dust-noise-monitor", `{"ts":1764210904123}`, "missing_field", "data.pm25", ""},
		{"root is a list", "dust-noise-monitor", `[1,2]`, "wrong_type", "", "expected an object"},
		{"duplicate key", "dust-noise-monitor", `{"data":{"pm25":1,"pm10":2,"noise":40,"pm10":900}}`, "duplicate_key", "data.pm10", ""},
		{"duplicate object", "dust-noise-monitor", `{"data":{"pm10":1},"data":{"pm25":2,"noise":40}}`, "duplicate_key", "data", ""},
		{"duplicate null", "dust-noise-monitor", `{"data":null,"data":{"pm25":2,"pm10":2,"noise":40}}`, "duplicate_key", "data", ""},
		{"duplicate time", "dust-noise-monitor", `{"ts":1764210904123,"ts":1764210904124,"data":{}}`, "duplicate_key", "ts", ""},
		{"number too big", "dust-noise-monitor", fmt.Sprintf(dust, "1e400"), "out_of_range", "data.pm10", "does not fit"},
		{"too deep", "dust-noise-monitor", `{"x":` + deep + `}`, "too_deep", "", ""},
		{"unix seconds", "dust-noise-monitor", `{"ts":1764210904,"data":{}}`, "bad_time", "ts", "milliseconds"},
		{"clock not set", "coldchain-logger", `{"time":"1970-01-01T00:00:05Z","temp":1}`, "bad_time", "time", "clock is not set"},
		{"not a time", "coldchain-logger", `{"time":"yesterday","temp":1}`, "bad_time", "time", "RFC 3339"},
		{"time of wrong type", "coldchain-logger", `{"time":true,"temp":1}`, "wrong_type", "time", ""},
		{"generic string value", "generic-json", `{"values":{"pm10":"NaN"}}`, "wrong_type", "values.pm10", "NaN"},
		{"generic nested value", "generic-json", `{"values":{"pm10":{"v":1}}}`, "wrong_type", "values.pm10", ""},
		{"generic values is a list", "generic-json", `{"values":[1,2]}`, "wrong_type", "values", ""},
		{"generic no values", "generic-json", `{"ts":1764210904123}`, "missing_field", "values", ""},
		{"generic null values", "generic-json", `{"values":null}`, "missing_field", "values", ""},
		{"generic duplicate", "generic-json", `{"values":{"pm10":1,"pm25":2,"pm10":3}}`, "duplicate_key", "values.pm10", ""},
		{"generic too many", "generic-json", manyValues, "too_many_values", "values", ""},
		{"elevator short frame", "elevator-monitor", string(elevatorFrame{shortFrame: true}.bytes()), "bad_length", "", "15 bytes"},
		{"elevator JSON instead of a frame", "elevator-monitor", `{"floor": 3}`, "bad_length", "", ""},
		{"elevator wrong magic", "elevator-monitor", string(elevatorFrame{overrideMagic: true, magic0: 0x55, magic1: 0xAA}.bytes()), "bad_magic", "", "55aa"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decoder(t, shipped(t, tt.profile)).Decode([]byte(tt.payload))
			var de *decode.Error
			require.ErrorAs(t, err, &de)
			require.Equal(t, tt.reason, de.Reason, de.Error())
			require.Equal(t, tt.field, de.Field, de.Error())
			require.Contains(t, de.Msg, tt.msg)
		})
	}
}

func TestMaxSize(t *testing.T) {
	p := shipped(t, "generic-json")
	big := `{"values":{"x":1},"pad":"` + strings.Repeat("a", decode.DefaultMaxSize) + `"}`
	_, err := decoder(t, p).Decode([]byte(big))
	var de *decode.Error
	require.ErrorAs(t, err, &de)
	require.Equal(t, decode.ReasonTooLarge, de.Reason)

	small := decoder(t, p, decode.WithMaxSize(20))
	_, err = small.Decode([]byte(`{"values":{"x":1}}`))
	require.NoError(t, err)
	_, err = small.Decode([]byte(`{"values":{"x":1, "y": 2}}`))
	require.ErrorAs(t, err, &de)
	require.Equal(t, decode.ReasonTooLarge, de.Reason)

	_, err = decode.New(p, decode.WithMaxSize(0))
	require.Error(t, err)
}

const pathsProfile = `id: paths
name: 路径测试
kind: sensor
vendor: test
firmware: {supported: ["*"]}
mqtt: {up: "offsite/{site}/{device}/up"}
heartbeat: 1m
decoder:
  kind: json
  time_path: head.time
  fields:
    - {metric: a, path: data.0.v}
    - {metric: b, path: data.2.v, scale: 0.1, add: -40}
    - {metric: c, path: "obj.0"}
    - {metric: d, path: deep.x.y.z, optional: true}
metrics:
  - {name: a, label: A, unit: "", min: -1000, max: 1000}
  - {name: b, label: B, unit: °C, min: -40, max: 200}
  - {name: c, label: C, unit: "", min: 0, max: 10}
  - {name: d, label: D, unit: "", min: 0, max: 10}
`

func TestJSONPaths(t *testing.T) {
	d := decoder(t, parse(t, pathsProfile))
	tests := []struct {
		name, payload string
		want          []float64
		err           string
	}{
		{"indexes, scale and add, key that looks like an index",
			`{"data":[{"v":1},{"v":99},{"v":650}],"obj":{"0":7},"head":{"time":"2025-11-27T02:35:04Z"}}`, []float64{1, 25, 7}, ""},
		{"escaped keys match", `{"d\u0061ta":[{"v":1},null,{"\u0076":400}],"obj":{"\u0030":2}}`, []float64{1, 0, 2}, ""},
		{"optional deep path", `{"data":[{"v":1},{},{"v":400}],"obj":{"0":2},"deep":{"x":{"y":{"z":3}}}}`, []float64{1, 0, 2, 3}, ""},
		{"exponents", `{"data":[{"v":-1.5e2},{},{"v":4E2}],"obj":{"0":0.2e1}}`, []float64{-150, 0, 2}, ""},
		{"short array", `{"data":[{"v":1}],"obj":{"0":2}}`, nil, "missing_field: data.2.v"},
		{"object where the path has an index", `{"data":{"0":{"v":1},"2":{"v":400}},"obj":{"0":2}}`, []float64{1, 0, 2}, ""},
		{"list where an object key is wanted", `{"data":[{"v":1},{},{"v":400}],"obj":[5]}`, []float64{1, 0, 5}, ""},
		{"scalar on the way", `{"data":[{"v":1},{},{"v":400}],"obj":{"0":2},"deep":{"x":3}}`, nil, "wrong_type: deep.x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.Decode([]byte(tt.payload))
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			var vals []float64
			for _, r := range got.Values {
				vals = append(vals, r.Value)
			}
			require.InDeltaSlice(t, tt.want, vals, 1e-9)
		})
	}
}

const allTypesProfile = `id: types
name: 类型测试
kind: sensor
vendor: test
firmware: {supported: ["*"]}
mqtt: {up: "offsite/{site}/{device}/up"}
heartbeat: 1m
decoder:
  kind: binary
  byte_order: %s
  length: 27
  fields:
    - {metric: u8, offset: 0, type: u8}
    - {metric: i8, offset: 1, type: i8}
    - {metric: u16, offset: 2, type: u16}
    - {metric: i16, offset: 4, type: i16}
    - {metric: u32, offset: 6, type: u32}
    - {metric: i32, offset: 10, type: i32, scale: 0.001, add: 1}
    - {metric: f32, offset: 14, type: f32}
    - {metric: f64, offset: 18, type: f64}
    - {metric: bit15, offset: 2, type: u16, bit: 15}
    - {metric: bit0, offset: 26, type: u8, bit: 0}
metrics:
  - {name: u8, label: u8, unit: "", min: 0, max: 255}
  - {name: i8, label: i8, unit: "", min: -128, max: 127}
  - {name: u16, label: u16, unit: "", min: 0, max: 65535}
  - {name: i16, label: i16, unit: "", min: -32768, max: 32767}
  - {name: u32, label: u32, unit: "", min: 0, max: 4294967295}
  - {name: i32, label: i32, unit: "", min: -3000000, max: 3000000}
  - {name: f32, label: f32, unit: "", min: -1e6, max: 1e6}
  - {name: f64, label: f64, unit: "", min: -1e6, max: 1e6}
  - {name: bit15, label: bit15, unit: "", min: 0, max: 1}
  - {name: bit0, label: bit0, unit: "", min: 0, max: 1}
`

func TestBinaryTypesAndByteOrder(t *testing.T) {
	for _, order := range []struct {
		name string
		bo   binary.ByteOrder
	}{{"big", binary.BigEndian}, {"little", binary.LittleEndian}} {
		t.Run(order.name, func(t *testing.T) {
			p := parse(t, fmt.Sprintf(allTypesProfile, order.name))
			b := make([]byte, 27)
			b[0] = 200
			b[1] = 0x85 // -123
			order.bo.PutUint16(b[2:], 0x8001)
			order.bo.PutUint16(b[4:], uint16(0xFFFF-299)) // -300
			order.bo.PutUint32(b[6:], 4000000000)
			order.bo.PutUint32(b[10:], uint32(0xFFFFFFFF-1999)) // -2000
			order.bo.PutUint32(b[14:], math.Float32bits(-12.5))
			order.bo.PutUint64(b[18:], math.Float64bits(3.14159))
			b[26] = 0xFE
			got, err := decoder(t, p).Decode(b)
			require.NoError(t, err)
			want := map[string]float64{"u8": 200, "i8": -123, "u16": 0x8001, "i16": -300, "u32": 4000000000,
				"i32": -1, "f32": -12.5, "f64": 3.14159, "bit15": 1, "bit0": 0}
			require.Len(t, got.Values, len(want))
			for _, r := range got.Values {
				require.InDelta(t, want[r.Metric], r.Value, 1e-9, r.Metric)
			}
			require.Empty(t, decode.Validate(p, got))
		})
	}
}

func TestValidate(t *testing.T) {
	dust := shipped(t, "dust-noise-monitor")
	got := decode.Validate(dust, decode.Decoded{Values: []decode.Reading{
		r("pm25", 35, "µg/m³"), r("pm10", 1500, "µg/m³"), r("noise", 12, "dB(A)"), r("co2", 400, ""), r("tsp", math.NaN(), "µg/m³"),
		r("humidity", 100, "%RH"), r("temperature", -40, "°C"),
	}})
	type problem struct {
		Index          int
		Metric, Reason string
	}
	var ps []problem
	for _, p := range got {
		ps = append(ps, problem{p.Index, p.Reading.Metric, p.Reason})
	}
	require.Equal(t, []problem{
		{1, "pm10", decode.ReasonOutOfRange}, {2, "noise", decode.ReasonOutOfRange},
		{3, "co2", decode.ReasonUnknownMetric}, {4, "tsp", decode.ReasonNotFinite},
	}, ps, "the range is inclusive")
	require.Contains(t, got[0].Msg, "outside the valid range [0, 1000]")
	require.ErrorContains(t, got[0], "out_of_range: pm10:")

	generic := shipped(t, "generic-json")
	d, err := decoder(t, generic).Decode([]byte(`{"values":{"pm10":1200,"flow_rate":-3,"Bad-Name":1,"x":1e308}}`))
	require.NoError(t, err)
	ps = nil
	for _, p := range decode.Validate(generic, d) {
		ps = append(ps, problem{p.Index, p.Reading.Metric, p.Reason})
	}
	require.Equal(t, []problem{{0, "pm10", decode.ReasonOutOfRange}, {2, "Bad-Name", decode.ReasonBadMetricName}}, ps,
		"open metrics: undeclared names pass without a range")

	// Binary floats may carry NaN or Inf; they decode, and Validate names them.
	p := parse(t, fmt.Sprintf(allTypesProfile, "big"))
	b := make([]byte, 27)
	binary.BigEndian.PutUint32(b[14:], math.Float32bits(float32(math.NaN())))
	binary.BigEndian.PutUint64(b[18:], math.Float64bits(math.Inf(-1)))
	d, err = decoder(t, p).Decode(b)
	require.NoError(t, err)
	ps = nil
	for _, p := range decode.Validate(p, d) {
		ps = append(ps, problem{p.Index, p.Reading.Metric, p.Reason})
	}
	require.Equal(t, []problem{{6, "f32", decode.ReasonNotFinite}, {7, "f64", decode.ReasonNotFinite}}, ps)
}

func TestNewRejectsWhatCannotDecode(t *testing.T) {
	cam := shipped(t, "hikvision-ipc")
	_, err := decode.New(cam)
	require.ErrorContains(t, err, "no decoder")

	p := shipped(t, "dust-noise-monitor").Clone()
	p.Decoder.Kind = "xml"
	_, err = decode.New(p)
	require.ErrorContains(t, err, "unknown decoder kind")

	p = shipped(t, "dust-noise-monitor").Clone()
	p.Decoder.Fields[0].Metric = "nope"
	_, err = decode.New(p)
	require.ErrorContains(t, err, "not declared")

	p = shipped(t, "dust-noise-monitor").Clone()
	p.Decoder.Fields[1].Path = "data.pm25.x"
	_, err = decode.New(p)
	require.ErrorContains(t, err, "runs through")

	e := shipped(t, "elevator-monitor").Clone()
	e.Decoder.Fields[0].Offset = 16
	_, err = decode.New(e)
	require.ErrorContains(t, err, "does not fit")

	e = shipped(t, "elevator-monitor").Clone()
	e.Decoder.ByteOrder = "pdp"
	_, err = decode.New(e)
	require.ErrorContains(t, err, "byte_order")
}

func TestErrorIsTyped(t *testing.T) {
	_, err := decoder(t, shipped(t, "gas-detector")).Decode([]byte(`{"gas":{"lel":"12"}}`))
	var de *decode.Error
	require.True(t, errors.As(err, &de))
	require.Equal(t, `wrong_type: gas.lel: expected a number, got the string "12"`, err.Error())
}

func TestDecodersAreSafeForConcurrentUse(t *testing.T) {
	json := decoder(t, shipped(t, "dust-noise-monitor"))
	bin := decoder(t, shipped(t, "elevator-monitor"))
	frame := elevatorFrame{floor: 3, speed: 100}.bytes()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				payload := fmt.Sprintf(`{"ts":1764210904123,"data":{"pm25":%d,"pm10":%d,"noise":60}}`, g, i)
				d, err := json.Decode([]byte(payload))
				if err != nil || d.Values[1].Value != float64(i) {
					t.Errorf("json: %v %v", d, err)
					return
				}
				b, err := bin.Decode(frame)
				if err != nil || b.Values[0].Value != 3 {
					t.Errorf("binary: %v %v", b, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// DecodeInto gives what Decode gives, whatever an earlier message left in the reused storage:
// a message without the optional fields after one with all of them, open metrics after more
// of them, a binary frame after another.
func TestDecodeIntoReusesStorage(t *testing.T) {
	elevator := elevatorFrame{floor: 3, door: 1, speed: 150, load: 420, carTemp: 235, counter: 7}
	for _, tt := range []struct {
		profile  string
		payloads [][]byte
	}{
		{"dust-noise-monitor", [][]byte{dustPayload,
			[]byte(`{"ts": 1764210904123, "data": {"pm25": 35.2, "pm10": 88.1, "noise": 62.4}}`), dustPayload}},
		{"generic-json", [][]byte{genericPayload, []byte(`{"values": {"co2": 700}}`), []byte(`{"values": {}}`), genericPayload}},
		{"elevator-monitor", [][]byte{elevator.bytes(), elevatorFrame{floor: 1, speed: 0, load: 0, carTemp: -50, counter: 8, alarms: 1}.bytes()}},
	} {
		t.Run(tt.profile, func(t *testing.T) {
			d := decoder(t, shipped(t, tt.profile))
			var dst []decode.Reading
			for _, p := range tt.payloads {
				want, err := d.Decode(p)
				require.NoError(t, err)
				got, err := d.DecodeInto(dst, p)
				require.NoError(t, err)
				require.Equal(t, want, got)
				dst = got.Values
			}
		})
	}
}

func TestHJ212Decoder(t *testing.T) {
	reg, err := profiles.NewRegistry(true, "")
	require.NoError(t, err)
	p, ok := reg.Get("hj212-fluegas")
	require.True(t, ok)
	dec, err := decode.New(p)
	require.NoError(t, err)
	seg := "QN=20261203101600001;ST=31;CN=2051;PW=123456;MN=41070200000002A0000001;Flag=5;" +
		"CP=&&DataTime=20261203101500;a21026-Avg=18.2,a21026-ZsAvg=22.4,a21026-Flag=N;" +
		"a21002-Avg=31.0,a21002-ZsAvg=38.1,a21002-Flag=M;zz999-Avg=1;a00000-Cou=212000,a00000-Flag=N&&"
	d, err := dec.Decode([]byte(seg))
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 12, 3, 2, 15, 0, 0, time.UTC), d.DeviceTime.UTC())
	require.Equal(t, []decode.Reading{
		{Metric: "so2", Value: 18.2, Unit: "mg/m³", Flag: "N"},
		{Metric: "so2_zs", Value: 22.4, Unit: "mg/m³", Flag: "N"},
		{Metric: "nox", Value: 31, Unit: "mg/m³", Flag: "M"},
		{Metric: "nox_zs", Value: 38.1, Unit: "mg/m³", Flag: "M"},
		{Metric: "flue_flow", Value: 212000, Unit: "m³/h", Flag: "N"},
	}, d.Values)
	require.Empty(t, decode.Validate(p, d))

	for raw, reason := range map[string]string{
		"CN=2011;MN=A1;PW=1":                                    "malformed_segment",
		"CN=2011;MN=A1;PW=1;CP=&&DataTime=2026&&":               "bad_time",
		"CN=2011;MN=A1;PW=1;CP=&&a21026-Rtd=lots&&":             "bad_value",
		"CN=2011;MN=A1;PW=1;CP=&&a21026-Rtd=1,a21026-Flag=##&&": "bad_value",
	} {
		_, err := dec.Decode([]byte(raw))
		var de *decode.Error
		require.ErrorAs(t, err, &de, raw)
		require.Equal(t, reason, de.Reason, raw)
	}
}
