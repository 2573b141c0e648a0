package profiles_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	profiles "github.com/offsite-gw/offsite/firmware-profiles"
)

var shipped = []string{
	"coldchain-logger", "dahua-ipc", "dust-noise-monitor", "elevator-monitor", "gas-detector",
	"generic-json", "generic-rtsp", "hikvision-ipc", "hj212-dust-noise", "hj212-fluegas", "hj212-wastewater", "kitchen-fume-monitor",
}

func TestEmbeddedProfilesLoadAndValidate(t *testing.T) {
	ps, err := profiles.Embedded()
	require.NoError(t, err)
	var ids []string
	for _, p := range ps {
		ids = append(ids, p.ID)
	}
	require.Equal(t, shipped, ids, "sorted by id")

	for _, p := range ps {
		t.Run(p.ID, func(t *testing.T) {
			require.Equal(t, "embedded:"+p.ID+".yml", p.Source, "one file per model, named by id")
			require.NotEmpty(t, p.Name)
			require.NotEmpty(t, p.Firmware.Supported)
			require.NotEmpty(t, p.Firmware.Bad, "every shipped profile names at least one known-bad version")
			for _, b := range p.Firmware.Bad {
				require.Equal(t, profiles.FirmwareBad, p.CheckFirmware(b.Version).Status, b.Version)
			}
			switch p.Kind {
			case "camera":
				require.NotNil(t, p.RTSP)
				require.Contains(t, p.RTSP.Main, "{host}")
			case "sensor":
				require.Positive(t, p.Heartbeat.Std())
				if p.Decoder.Kind == "hj212" {
					require.Nil(t, p.MQTT, "HJ 212 stations connect over TCP")
				} else {
					require.Equal(t, "offsite/{site}/{device}/up", p.MQTT.Up)
					require.Equal(t, "offsite/{site}/{device}/status", p.MQTT.Status)
				}
				require.NotEmpty(t, p.Metrics)
				require.NotEmpty(t, p.Rules, "sensor profiles ship default rules")
				for _, m := range p.Metrics {
					require.NotNil(t, m.Min, m.Name)
					require.NotNil(t, m.Max, m.Name)
				}
			default:
				t.Fatalf("unexpected kind %q", p.Kind)
			}
			// Every default rule refers to a declared metric.
			for _, r := range p.Rules {
				if r.Metric == "" {
					require.Equal(t, "silence", r.Kind, r.ID)
					continue
				}
				_, ok := p.Metric(r.Metric)
				require.True(t, ok, "rule %s: metric %s not declared", r.ID, r.Metric)
			}
			if p.Decoder != nil {
				for _, f := range p.Decoder.Fields {
					_, ok := p.Metric(f.Metric)
					require.True(t, ok, "field %s", f.Metric)
				}
			}
		})
	}
}

func TestShippedRulesAreTheDocumentedOnes(t *testing.T) {
	r, err := profiles.NewRegistry(true, "")
	require.NoError(t, err)
	rule := func(profile, id string) profiles.Rule {
		p, ok := r.Get(profile)
		require.True(t, ok, profile)
		for _, r := range p.Rules {
			if r.ID == id {
				return r
			}
		}
		t.Fatalf("%s has no rule %s", profile, id)
		return profiles.Rule{}
	}
	pm10 := rule("dust-noise-monitor", "pm10-high")
	require.Equal(t, profiles.Rule{ID: "pm10-high", Kind: "duration", Metric: "pm10", Op: ">", Value: 150, Hysteresis: 10,
		For: profiles.Duration(10 * time.Minute), Severity: "major", Department: "市住房和城乡建设局", Message: pm10.Message}, pm10)
	require.Equal(t, "06:00-22:00", rule("dust-noise-monitor", "noise-day").During)
	require.Equal(t, 70.0, rule("dust-noise-monitor", "noise-day").Value)
	require.Equal(t, -15.0, rule("coldchain-logger", "frozen-too-warm").Value)
	require.Equal(t, "critical", rule("gas-detector", "lel-high").Severity)
	require.Equal(t, "threshold", rule("gas-detector", "lel-high").Kind)
	require.Equal(t, 2.0, rule("kitchen-fume-monitor", "fume-over-limit").Value)
	require.Equal(t, "critical", rule("elevator-monitor", "trapped").Severity)
	require.Equal(t, "==", rule("elevator-monitor", "trapped").Op)

	p, _ := r.Get("generic-json")
	require.True(t, p.Decoder.OpenMetrics)
	require.Equal(t, "values", p.Decoder.ValuesPath)
	require.Equal(t, "ts", p.Decoder.TimePath)
}

func TestCheckFirmware(t *testing.T) {
	r, err := profiles.NewRegistry(true, "")
	require.NoError(t, err)
	tests := []struct {
		profile, version, status, reason string
	}{
		{"hikvision-ipc", "V5.7.3", "ok", ""},
		{"hikvision-ipc", "V5.5.0", "bad", "CVE-2021-36260"}, // bad wins over V5.5.*
		{"hikvision-ipc", "V5.4.0", "bad", "CVE-2017-7921"},
		{"hikvision-ipc", "V5.3.9", "unknown", "not among the versions"},
		{"hikvision-ipc", "V5.7", "unknown", ""}, // "V5.7.*" needs the dot
		{"hikvision-ipc", "", "unknown", "no firmware version"},
		{"dahua-ipc", "V2.800.0000000.16.R", "bad", "CVE-2021-33044"},
		{"dahua-ipc", "V2.840.0000000.8.R", "ok", ""},
		{"generic-rtsp", "anything-1.2", "ok", ""},
		{"generic-rtsp", "0.0.0", "bad", "出厂占位"},
		{"gas-detector", "V1.1.7", "bad", "故障"},
		{"no-such-profile", "1.0", "unknown", `no profile "no-such-profile"`},
	}
	for _, tt := range tests {
		t.Run(tt.profile+"/"+tt.version, func(t *testing.T) {
			got := r.CheckFirmware(tt.profile, tt.version)
			require.Equal(t, tt.status, got.Status, got.Reason)
			require.Contains(t, got.Reason, tt.reason)
		})
	}
}

func TestURL(t *testing.T) {
	r, err := profiles.NewRegistry(true, "")
	require.NoError(t, err)
	get := func(id string) profiles.Profile { p, ok := r.Get(id); require.True(t, ok); return p }
	tests := []struct {
		profile, stream, host string
		port, channel         int
		want, err             string
	}{
		{"hikvision-ipc", "main", "10.0.0.5", 0, 1, "rtsp://10.0.0.5:554/Streaming/Channels/101", ""},
		{"hikvision-ipc", "sub", "10.0.0.5", 8554, 2, "rtsp://10.0.0.5:8554/Streaming/Channels/202", ""},
		{"hikvision-ipc", "sub", "10.0.0.5", 0, 0, "rtsp://10.0.0.5:554/Streaming/Channels/102", ""},
		{"dahua-ipc", "main", "cam1.example", 0, 3, "rtsp://cam1.example:554/cam/realmonitor?channel=3&subtype=0", ""},
		{"dahua-ipc", "sub", "fe80::1", 0, 1, "rtsp://[fe80::1]:554/cam/realmonitor?channel=1&subtype=1", ""},
		{"hikvision-ipc", "third", "10.0.0.5", 0, 1, "", `stream "third"`},
		{"hikvision-ipc", "main", "", 0, 1, "", "host is empty"},
		{"hikvision-ipc", "main", "user:pw@10.0.0.5", 0, 1, "", "not a host"},
		{"hikvision-ipc", "main", "10.0.0.5", 70000, 1, "", "not a TCP port"},
		{"generic-rtsp", "main", "10.0.0.9", 0, 1, "", "needs the stream path"},
		{"generic-rtsp", "sub", "10.0.0.9", 0, 1, "", "no sub stream"},
		{"gas-detector", "main", "10.0.0.9", 0, 1, "", "no RTSP templates"},
	}
	for _, tt := range tests {
		t.Run(tt.profile+"/"+tt.stream+"/"+tt.host, func(t *testing.T) {
			got, err := profiles.URL(get(tt.profile), tt.stream, tt.host, tt.port, tt.channel)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
	got, err := profiles.ExpandURL(get("generic-rtsp"), "main", profiles.URLParams{Host: "10.0.0.9", Path: "live/ch00_0"})
	require.NoError(t, err)
	require.Equal(t, "rtsp://10.0.0.9:554/live/ch00_0", got)
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"30s", 30 * time.Second, ""},
		{"10m", 10 * time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"250ms", 250 * time.Millisecond, ""},
		{"10", 0, "duration"}, // no unit
		{"-5m", 0, "negative"},
		{"ten minutes", 0, "invalid duration"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var y struct{ D profiles.Duration }
			yerr := yaml.Unmarshal([]byte("d: "+tt.in), &y)
			var j struct{ D profiles.Duration }
			jerr := json.Unmarshal([]byte(`{"D":"`+tt.in+`"}`), &j)
			if tt.err != "" {
				require.ErrorContains(t, yerr, tt.err)
				require.ErrorContains(t, jerr, tt.err)
				return
			}
			require.NoError(t, yerr)
			require.NoError(t, jerr)
			require.Equal(t, tt.want, y.D.Std())
			require.Equal(t, tt.want, j.D.Std())

			out, err := json.Marshal(j)
			require.NoError(t, err)
			require.JSONEq(t, `{"D":"`+tt.want.String()+`"}`, string(out))
			yout, err := yaml.Marshal(y)
			require.NoError(t, err)
			var back struct{ D profiles.Duration }
			require.NoError(t, yaml.Unmarshal(yout, &back))
			require.Equal(t, y, back)
		})
	}
	// A bare number has no unit: refused rather than guessed.
	var y struct{ D profiles.Duration }
	require.ErrorContains(t, yaml.Unmarshal([]byte("d: 600"), &y), "must be a string")
	var j struct{ D profiles.Duration }
	require.ErrorContains(t, json.Unmarshal([]byte(`{"D":600}`), &j), "must be a string")
}

func TestProfileJSONRoundTrip(t *testing.T) {
	ps, err := profiles.Embedded()
	require.NoError(t, err)
	for _, p := range ps {
		b, err := json.Marshal(p)
		require.NoError(t, err)
		var back profiles.Profile
		require.NoError(t, json.Unmarshal(b, &back))
		b2, err := json.Marshal(back)
		require.NoError(t, err)
		require.JSONEq(t, string(b), string(b2), p.ID)
	}
}

func TestRegistryOverridesAndDuplicates(t *testing.T) {
	dir := t.TempDir()
	hik, err := os.ReadFile("builtin/hikvision-ipc.yml")
	require.NoError(t, err)
	custom := strings.Replace(string(hik), "supported: [", `supported: ["V5.9.*", `, 1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hik.yml"), []byte(custom), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a profile"), 0o644))

	r, err := profiles.NewRegistry(true, dir)
	require.NoError(t, err)
	require.Equal(t, []profiles.Override{{ID: "hikvision-ipc", Embedded: "embedded:hikvision-ipc.yml", User: filepath.Join(dir, "hik.yml")}}, r.Overrides())
	p, ok := r.Get("hikvision-ipc")
	require.True(t, ok)
	require.Equal(t, filepath.Join(dir, "hik.yml"), p.Source)
	require.Equal(t, "ok", r.CheckFirmware("hikvision-ipc", "V5.9.1").Status)
	require.Len(t, r.List(), len(shipped))

	// Copies: changing what Get returned does not change the registry.
	p.Metrics = nil
	p.RTSP.Main = "changed"
	again, _ := r.Get("hikvision-ipc")
	require.NotEqual(t, "changed", again.RTSP.Main)

	// The same id twice in the user folder: an error naming both files.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hik-copy.yaml"), []byte(custom), 0o644))
	_, err = profiles.NewRegistry(true, dir)
	require.ErrorContains(t, err, filepath.Join(dir, "hik.yml")+`:5: duplicate profile id "hikvision-ipc": already defined in `+filepath.Join(dir, "hik-copy.yaml")+":5")

	_, err = profiles.NewRegistry(false, filepath.Join(dir, "missing"))
	require.Error(t, err)

	r, err = profiles.NewRegistry(false, "")
	require.NoError(t, err)
	require.Empty(t, r.List())
	_, ok = r.Get("hikvision-ipc")
	require.False(t, ok)
}

func TestValidateDirCollectsEveryError(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	write("a.yml", strings.Replace(baseSensor, "    max: 1000", "    max: lots", 1))
	write("b.yml", strings.Replace(strings.Replace(baseSensor, "kind: json", "kind: xml", 1), "severity: major", "severity: urgent", 1))
	write("c.yml", baseSensor)
	write(".hidden.yml", "garbage: [")

	errs := profiles.ValidateDir(dir)
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
		var le *profiles.LoadError
		require.ErrorAs(t, e, &le)
	}
	a, b, c := filepath.Join(dir, "a.yml"), filepath.Join(dir, "b.yml"), filepath.Join(dir, "c.yml")
	require.Equal(t, []string{
		a + `:23: metrics[0].max: expected a number, got "lots"`,
		b + `:13: decoder kind "xml" is not one of json, binary, hj212`,
		b + `:32: rule "pm10-high": severity "urgent" is not one of info, minor, major, critical`,
	}, msgs)

	// LoadDir fails on the same folder with the same errors joined; a good folder loads.
	_, err := profiles.LoadDir(dir)
	require.ErrorContains(t, err, b+":13:")
	require.Len(t, profiles.Errors(err), 3)
	require.NoError(t, os.Remove(a))
	require.NoError(t, os.Remove(b))
	ps, err := profiles.LoadDir(dir)
	require.NoError(t, err)
	require.Len(t, ps, 1)
	require.Equal(t, c, ps[0].Source)
	require.Empty(t, profiles.ValidateDir(dir))

	p, err := profiles.LoadFile(c)
	require.NoError(t, err)
	require.Equal(t, "dust-noise", p.ID)
	_, err = profiles.LoadFile(filepath.Join(dir, "none.yml"))
	require.ErrorContains(t, err, "none.yml")
	require.Len(t, profiles.ValidateDir(filepath.Join(dir, "none")), 1)

	empty := t.TempDir()
	errs = profiles.ValidateDir(empty)
	require.Len(t, errs, 1)
	require.ErrorContains(t, errs[0], "no profile files")
	ps, err = profiles.LoadDir(empty)
	require.NoError(t, err, "an empty user folder is fine for a registry")
	require.Empty(t, ps)
}

func TestEmbeddedFilesValidateWithValidateDir(t *testing.T) {
	require.Empty(t, profiles.ValidateDir("builtin"))
}
