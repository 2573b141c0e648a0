package profiles_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	profiles "github.com/offsite-gw/offsite/firmware-profiles"
)

// baseSensor is a valid profile; each broken case below changes one thing in it. Line numbers
// in the expected errors refer to this text.
const baseSensor = `id: dust-noise
name: 扬尘测试
kind: sensor
vendor: test
firmware:
  supported: ["V1.*"]
  bad:
    - {version: "V1.0.1", reason: broken}
mqtt:
  up: offsite/{site}/{device}/up
heartbeat: 5m
decoder:
  kind: json
  time_path: ts
  fields:
    - {metric: pm10, path: data.pm10}
    - {metric: noise, path: data.noise, optional: true}
metrics:
  - name: pm10
    label: PM10
    unit: µg/m³
    min: 0
    max: 1000
  - {name: noise, label: 噪声, unit: dB(A), min: 30, max: 130}
rules:
  - id: pm10-high
    kind: duration
    metric: pm10
    op: ">"
    value: 150
    for: 10m
    severity: major
`

const baseBinary = `id: lift
name: 电梯测试
kind: sensor
vendor: test
firmware: {supported: ["*"]}
mqtt: {up: "offsite/{site}/{device}/up"}
heartbeat: 1m
decoder:
  kind: binary
  length: 16
  magic: aa55
  fields:
    - {metric: speed, offset: 6, type: u16, scale: 0.01}
    - {metric: overspeed, offset: 10, type: u8, bit: 0}
metrics:
  - {name: speed, label: 速度, unit: m/s, min: 0, max: 10}
  - {name: overspeed, label: 超速, unit: "", min: 0, max: 1}
`

const baseCamera = `id: cam
name: 摄像机
kind: camera
vendor: test
firmware: {supported: ["*"]}
rtsp:
  main: "rtsp://{host}:{port}/Streaming/Channels/{channel}01"
  sub: "rtsp://{host}:{port}/Streaming/Channels/{channel}02"
`

func TestBaseProfilesAreValid(t *testing.T) {
	for name, body := range map[string]string{"sensor": baseSensor, "binary": baseBinary, "camera": baseCamera} {
		_, err := profiles.Parse(name+".yml", []byte(body))
		require.NoError(t, err, name)
	}
}

func TestBrokenProfiles(t *testing.T) {
	tests := []struct {
		name     string
		base     string
		old, new string // replaced once in base
		want     string // one of the errors, "FILE:LINE: reason"
	}{
		{"max below min", baseSensor, "    min: 0\n    max: 1000", "    min: 100\n    max: 50",
			`dust-noise.yml:23: metric "pm10": max (50) must be greater than min (100)`},
		{"unknown key", baseSensor, "    unit: µg/m³", "    units: µg/m³",
			`dust-noise.yml:21: metrics[0]: unknown key "units" (did you mean "unit"?)`},
		{"unknown top-level key", baseSensor, "heartbeat: 5m", "heartbeet: 5m",
			`dust-noise.yml:11: profile: unknown key "heartbeet" (did you mean "heartbeat"?)`},
		{"key given twice", baseSensor, "  time_path: ts", "  kind: json",
			`dust-noise.yml:14: decoder: key "kind" given twice (first on line 13)`},
		{"wrong type", baseSensor, "    max: 1000", "    max: lots",
			`dust-noise.yml:23: metrics[0].max: expected a number, got "lots"`},
		{"missing id", baseSensor, "id: dust-noise", "# id: dust-noise",
			`dust-noise.yml:2: missing required key "id"`},
		{"bad id", baseSensor, "id: dust-noise", "id: Dust Noise",
			`dust-noise.yml:1: id "Dust Noise": use lower-case letters`},
		{"bad kind", baseSensor, "kind: sensor", "kind: robot",
			`dust-noise.yml:3: kind "robot" is not one of camera, sensor, gateway`},
		{"topic without device", baseSensor, "up: offsite/{site}/{device}/up", "up: offsite/{site}/up",
			`dust-noise.yml:10: mqtt.up topic "offsite/{site}/up" must contain {device}`},
		{"topic wildcard", baseSensor, "up: offsite/{site}/{device}/up", "up: offsite/{site}/{device}/#",
			`dust-noise.yml:10: mqtt.up topic "offsite/{site}/{device}/#": wildcards + and # are not allowed`},
		{"no mqtt", baseSensor, "mqtt:\n  up: offsite/{site}/{device}/up", "# no mqtt\n#",
			`dust-noise.yml:1: missing required key "mqtt"`},
		{"zero heartbeat", baseSensor, "heartbeat: 5m", "heartbeat: 0s",
			`dust-noise.yml:11: heartbeat must be greater than 0`},
		{"interval above the heartbeat", baseSensor, "heartbeat: 5m", "heartbeat: 5m\ninterval: 10m",
			`dust-noise.yml:12: interval must be between 0 and the heartbeat`},
		{"bad duration", baseSensor, "heartbeat: 5m", "heartbeat: 5 minutes",
			`dust-noise.yml:11: heartbeat: invalid duration "5 minutes": want e.g. 30s, 10m, 1h30m`},
		{"duration as number", baseSensor, "heartbeat: 5m", "heartbeat: 300",
			`dust-noise.yml:11: heartbeat: expected a duration such as 30s, 10m, 1h30m, got "300"`},
		{"firmware star in the middle", baseSensor, `supported: ["V1.*"]`, `supported: ["V*.1"]`,
			`dust-noise.yml:6: firmware version pattern "V*.1": '*' is only allowed at the end`},
		{"bad version without reason", baseSensor, `{version: "V1.0.1", reason: broken}`, `{version: "V1.0.1"}`,
			`dust-noise.yml:8: missing required key "reason" in firmware.bad[0]`},
		{"decoder kind", baseSensor, "  kind: json", "  kind: xml",
			`dust-noise.yml:13: decoder kind "xml" is not one of json, binary, hj212`},
		{"field metric not declared", baseSensor, "{metric: noise, path", "{metric: noize, path",
			`dust-noise.yml:17: decoder field metric "noize" is not declared under metrics`},
		{"field without path", baseSensor, "{metric: noise, path: data.noise, optional: true}", "{metric: noise, optional: true}",
			`dust-noise.yml:17: missing required key "path" in decoder.fields[1]`},
		{"overlapping paths", baseSensor, "path: data.noise", "path: data.pm10.noise",
			`dust-noise.yml:17: decoder.fields[1].path "data.pm10.noise" overlaps "data.pm10" (line 16)`},
		{"binary key in json decoder", baseSensor, "{metric: noise, path: data.noise, optional: true}", "{metric: noise, path: data.noise, type: u8}",
			`dust-noise.yml:17: decoder.fields[1].type: only binary decoder fields have it`},
		{"metric name", baseSensor, "  - {name: noise,", "  - {name: Noise,",
			`dust-noise.yml:24: metric name "Noise": use [a-z0-9_]+`},
		{"metric declared twice", baseSensor, "  - {name: noise,", "  - {name: pm10,",
			`dust-noise.yml:24: metric "pm10" declared twice (first on line 19)`},
		{"metric without max", baseSensor, ", min: 30, max: 130}", ", min: 30}",
			`dust-noise.yml:24: metric "noise": missing required key "max"`},
		{"no metrics", baseSensor, "metrics:\n  - name: pm10\n    label: PM10\n    unit: µg/m³\n    min: 0\n    max: 1000\n  - {name: noise, label: 噪声, unit: dB(A), min: 30, max: 130}",
			"metrics: []\n#\n#\n#\n#\n#\n#", `dust-noise.yml:18: a sensor profile needs at least one metric`},
		{"rule metric not declared", baseSensor, "    metric: pm10\n", "    metric: pm100\n",
			`dust-noise.yml:28: rule "pm10-high": metric "pm100" is not declared under metrics`},
		{"rule op", baseSensor, `    op: ">"`, `    op: "=>"`,
			`dust-noise.yml:29: rule "pm10-high": op "=>" is not one of > >= < <= == !=`},
		{"rule severity", baseSensor, "severity: major", "severity: urgent",
			`dust-noise.yml:32: rule "pm10-high": severity "urgent" is not one of info, minor, major, critical`},
		{"rule kind", baseSensor, "    kind: duration", "    kind: average",
			`dust-noise.yml:27: rule "pm10-high": kind "average" is not one of threshold, duration, rate, silence`},
		{"duration rule without for", baseSensor, "    for: 10m\n", "",
			`dust-noise.yml:26: rule "pm10-high": a duration rule needs for > 0 (e.g. for: 10m)`},
		{"threshold rule with for", baseSensor, "    kind: duration", "    kind: threshold",
			`dust-noise.yml:31: rules[0].for: only duration and silence rules have it (use kind: duration)`},
		{"rate rule without per", baseSensor, "    kind: duration", "    kind: rate",
			`dust-noise.yml:26: rule "pm10-high": a rate rule needs per > 0`},
		{"rule without value", baseSensor, "    value: 150\n", "",
			`dust-noise.yml:26: rule "pm10-high": a duration rule needs value (the limit)`},
		{"rule can never fire", baseSensor, "    value: 150", "    value: 5000",
			`dust-noise.yml:30: rule "pm10-high": > 5000 can never fire: metric "pm10" max is 1000`},
		{"silence rule with op", baseSensor, "    kind: duration\n    metric: pm10\n", "    kind: silence\n    metric: pm10\n",
			`dust-noise.yml:29: rules[0].op: a silence rule fires when no reading arrives; it has no op`},
		{"rule during", baseSensor, "    severity: major", "    severity: major\n    during: 6-22",
			`dust-noise.yml:33: rule "pm10-high": during "6-22": write a daily window HH:MM-HH:MM`},
		{"alias", baseSensor, "    min: 0\n    max: 1000", "    min: &top 0\n    max: *top",
			`dust-noise.yml:23: metrics[0].max: YAML aliases (*top) are not supported`},
		{"invalid yaml", baseSensor, "    label: PM10", "\tlabel: PM10",
			`dust-noise.yml:19: invalid YAML: found a tab character that violates indentation`},
		{"two documents", baseSensor, "    severity: major\n", "    severity: major\n---\nid: other\n",
			`dust-noise.yml:33: only one profile per file`},
		{"not a mapping", baseSensor, baseSensor, "- just\n- a list\n",
			`dust-noise.yml:1: a profile must be a mapping of keys`},

		{"binary field past the frame", baseBinary, "{metric: speed, offset: 6,", "{metric: speed, offset: 15,",
			`dust-noise.yml:13: field "speed": u16 at offset 15 ends at byte 17, past the frame length 16`},
		{"binary type", baseBinary, "type: u16", "type: u24",
			`dust-noise.yml:13: field "speed": type "u24" is not one of u8, i8, u16, i16, u32, i32, f32, f64`},
		{"binary bit", baseBinary, "bit: 0", "bit: 8",
			`dust-noise.yml:14: field "overspeed": bit 8 is outside a u8 (0-7)`},
		{"binary byte order", baseBinary, "  length: 16", "  length: 16\n  byte_order: middle",
			`dust-noise.yml:11: byte_order "middle" is not one of big, little`},
		{"binary length", baseBinary, "  length: 16", "  length: 0",
			`dust-noise.yml:10: a binary decoder needs length`},
		{"binary magic", baseBinary, "magic: aa55", "magic: zz",
			`dust-noise.yml:11: magic "zz" is not hex bytes`},
		{"binary scale zero", baseBinary, "scale: 0.01", "scale: 0",
			`dust-noise.yml:13: field "speed": scale must not be 0`},
		{"binary optional", baseBinary, "type: u8, bit: 0}", "type: u8, bit: 0, optional: true}",
			`dust-noise.yml:14: decoder.fields[1].optional: a fixed-length frame always carries every field`},
		{"binary time path", baseBinary, "  length: 16", "  length: 16\n  time_path: ts",
			`dust-noise.yml:11: decoder.time_path: only json decoders have it`},

		{"camera without host", baseCamera, `main: "rtsp://{host}:{port}`, `main: "rtsp://10.0.0.1:{port}`,
			`dust-noise.yml:7: rtsp.main template "rtsp://10.0.0.1:{port}/Streaming/Channels/{channel}01" must contain {host}`},
		{"camera placeholder", baseCamera, "{channel}02", "{chan}02",
			`dust-noise.yml:8: rtsp.sub template "rtsp://{host}:{port}/Streaming/Channels/{chan}02": unknown placeholder {chan}`},
		{"camera credentials", baseCamera, "rtsp://{host}:{port}/Streaming/Channels/{channel}01", "rtsp://admin:12345@{host}:{port}/x",
			`dust-noise.yml:7: rtsp.main template "rtsp://admin:12345@{host}:{port}/x" must not carry credentials`},
		{"camera without rtsp", baseCamera, "rtsp:\n", "rtsq:\n",
			`dust-noise.yml:1: missing required key "rtsp"`},
		{"camera with decoder", baseCamera, "vendor: test", "vendor: test\ndecoder: {kind: json}",
			`dust-noise.yml:5: decoder: only sensor profiles have a payload decoder`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := strings.Replace(tt.base, tt.old, tt.new, 1)
			require.NotEqual(t, tt.base, body, "the case changes nothing")
			_, err := profiles.Parse("dust-noise.yml", []byte(body))
			require.Error(t, err)
			var msgs []string
			for _, e := range profiles.Errors(err) {
				var le *profiles.LoadError
				require.ErrorAs(t, e, &le)
				msgs = append(msgs, e.Error())
			}
			for _, m := range msgs {
				if strings.HasPrefix(m, tt.want) {
					return
				}
			}
			t.Fatalf("no error starts with\n  %s\ngot:\n  %s", tt.want, strings.Join(msgs, "\n  "))
		})
	}
}

func TestOneFileReportsAllItsErrorsInLineOrder(t *testing.T) {
	body := strings.NewReplacer("kind: sensor", "kind: robot", "    max: 1000", "    max: 0", "severity: major", "severity: high").Replace(baseSensor)
	_, err := profiles.Parse("x.yml", []byte(body))
	var got []string
	for _, e := range profiles.Errors(err) {
		got = append(got, e.Error())
	}
	require.Equal(t, []string{
		`x.yml:3: kind "robot" is not one of camera, sensor, gateway`,
		`x.yml:23: metric "pm10": max (0) must be greater than min (0)`,
		`x.yml:30: rule "pm10-high": > 150 can never fire: metric "pm10" max is 0`,
		`x.yml:32: rule "pm10-high": severity "high" is not one of info, minor, major, critical`,
	}, got)
}

func TestEmptyFiles(t *testing.T) {
	for _, body := range []string{"", "\n# only a comment\n", "---\n", "~\n"} {
		_, err := profiles.Parse("e.yml", []byte(body))
		require.ErrorContains(t, err, "e.yml", "%q", body)
		require.ErrorContains(t, err, "empty", "%q", body)
	}
}
