package profiles

import (
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
)

// Allowed values of the enumerated keys.
var (
	kinds        = []string{"camera", "sensor", "gateway"}
	decoderKinds = []string{"json", "binary", "hj212"}
	binaryTypes  = []string{"u8", "i8", "u16", "i16", "u32", "i32", "f32", "f64"}
	ruleKinds    = []string{"threshold", "duration", "rate", "silence"}
	ops          = []string{">", ">=", "<", "<=", "==", "!="}
	severities   = []string{"info", "minor", "major", "critical"}
)

// MaxFields bounds the fields of one decoder.
const MaxFields = 256

var (
	idRE         = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	hj212CodeRE  = regexp.MustCompile(`^[A-Za-z0-9]{1,16}$`)
	metricNameRE = regexp.MustCompile(`^[a-z0-9_]+$`)
	duringRE     = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$`)
	placeholdRE  = regexp.MustCompile(`\{[^{}]*\}`)
)

// ValidMetricName reports whether s can name a metric: [a-z0-9_]+, at most 64 bytes.
func ValidMetricName(s string) bool { return len(s) <= 64 && metricNameRE.MatchString(s) }

// TypeSize is the size in bytes of a binary field type, 0 if the type is unknown.
func TypeSize(t string) int {
	switch t {
	case "u8", "i8":
		return 1
	case "u16", "i16":
		return 2
	case "u32", "i32", "f32":
		return 4
	case "f64":
		return 8
	}
	return 0
}

func oneOf(s string, set []string) bool {
	for _, v := range set {
		if s == v {
			return true
		}
	}
	return false
}

func (w *walker) required(path, value string) bool {
	if value != "" {
		return true
	}
	key := path[strings.LastIndexAny(path, ".")+1:]
	w.errAt(w.line(path), "missing required key %q%s", key, parentName(path))
	return false
}

func parentName(path string) string {
	i := strings.LastIndex(path, ".")
	if i < 0 {
		return ""
	}
	return " in " + path[:i]
}

func (w *walker) enum(path, value, what string, set []string) {
	if !w.required(path, value) {
		return
	}
	if !oneOf(value, set) {
		w.errAt(w.line(path), "%s %q is not one of %s", what, value, strings.Join(set, ", "))
	}
}

func (w *walker) notFor(path, why string) {
	if w.has(path) {
		w.errAt(w.line(path), "%s: %s", path, why)
	}
}

func (w *walker) validate(p *Profile) {
	if w.required("id", p.ID) && !idRE.MatchString(p.ID) {
		w.errAt(w.line("id"), "id %q: use lower-case letters, digits, '-', '_' and '.' (e.g. dust-noise-monitor)", p.ID)
	}
	w.required("name", p.Name)
	w.required("vendor", p.Vendor)
	w.enum("kind", p.Kind, "kind", kinds)
	w.validateFirmware(p)

	metrics := w.validateMetrics(p)
	switch p.Kind {
	case "sensor":
		if p.Decoder != nil && p.Decoder.Kind == "hj212" {
			// HJ 212 stations connect over TCP to ingest.hj212.listen, not to the broker.
			w.notFor("mqtt", "an hj212 profile's stations connect over TCP (ingest.hj212.listen), not MQTT")
		} else {
			w.validateMQTT(p)
		}
		if p.Decoder == nil {
			w.errAt(w.line(""), "missing required key \"decoder\": a sensor profile says how to read its payload")
		} else {
			w.validateDecoder(p.Decoder, metrics)
		}
		if len(p.Metrics) == 0 {
			w.errAt(w.line("metrics"), "a sensor profile needs at least one metric under \"metrics\"")
		}
		if p.Heartbeat <= 0 {
			w.errAt(w.line("heartbeat"), "heartbeat must be greater than 0 for a sensor (the longest normal gap between two messages, e.g. 5m)")
		}
		if p.Interval < 0 || (p.Interval > 0 && p.Heartbeat > 0 && p.Interval > p.Heartbeat) {
			w.errAt(w.line("interval"), "interval must be between 0 and the heartbeat (the normal gap between two messages, e.g. 30s)")
		}
		w.notFor("rtsp", "only camera profiles have RTSP templates")
	case "camera":
		w.validateRTSP(p)
		w.notFor("mqtt", "only sensor profiles have MQTT topics")
		w.notFor("decoder", "only sensor profiles have a payload decoder")
		w.notFor("interval", "only sensor profiles have a message interval")
	}
	w.validateRules(p, metrics)
}

func (w *walker) validateFirmware(p *Profile) {
	if !w.has("firmware") {
		w.errAt(w.line(""), "missing required key \"firmware\": list the supported versions (\"V5.7.*\", or \"*\" for any)")
		return
	}
	if len(p.Firmware.Supported) == 0 {
		w.errAt(w.line("firmware.supported"), "firmware.supported needs at least one version pattern (\"*\" for any)")
	}
	for i, s := range p.Firmware.Supported {
		w.versionPattern(fmt.Sprintf("firmware.supported[%d]", i), s)
	}
	for i, b := range p.Firmware.Bad {
		path := fmt.Sprintf("firmware.bad[%d]", i)
		if w.required(path+".version", b.Version) {
			w.versionPattern(path+".version", b.Version)
		}
		w.required(path+".reason", b.Reason)
	}
}

func (w *walker) versionPattern(path, s string) {
	switch {
	case strings.TrimSpace(s) == "":
		w.errAt(w.line(path), "empty firmware version pattern")
	case strings.ContainsAny(s, " \t\n"):
		w.errAt(w.line(path), "firmware version pattern %q contains white space", s)
	case strings.Contains(strings.TrimSuffix(s, "*"), "*"):
		w.errAt(w.line(path), "firmware version pattern %q: '*' is only allowed at the end", s)
	}
}

// validateMetrics checks the metric list and returns it by name.
func (w *walker) validateMetrics(p *Profile) map[string]Metric {
	byName := map[string]Metric{}
	firstLine := map[string]int{}
	for i, m := range p.Metrics {
		path := fmt.Sprintf("metrics[%d]", i)
		if w.required(path+".name", m.Name) {
			if !ValidMetricName(m.Name) {
				w.errAt(w.line(path+".name"), "metric name %q: use [a-z0-9_]+ (at most 64), e.g. pm10, wind_speed", m.Name)
			}
			if first, dup := firstLine[m.Name]; dup {
				w.errAt(w.line(path+".name"), "metric %q declared twice (first on line %d)", m.Name, first)
			} else {
				firstLine[m.Name] = w.line(path + ".name")
				byName[m.Name] = m
			}
		}
		w.required(path+".label", m.Label)
		if m.Min == nil && !w.has(path+".min") {
			w.errAt(w.line(path), "metric %q: missing required key \"min\" (the lowest valid reading)", m.Name)
		}
		if m.Max == nil && !w.has(path+".max") {
			w.errAt(w.line(path), "metric %q: missing required key \"max\" (the highest valid reading)", m.Name)
		}
		if m.Min != nil && m.Max != nil && *m.Max <= *m.Min {
			w.errAt(w.line(path+".max"), "metric %q: max (%g) must be greater than min (%g)", m.Name, *m.Max, *m.Min)
		}
	}
	return byName
}

func (w *walker) validateMQTT(p *Profile) {
	if p.MQTT == nil {
		w.errAt(w.line(""), "missing required key \"mqtt\": a sensor profile names its topics (up: offsite/{site}/{device}/up)")
		return
	}
	if w.required("mqtt.up", p.MQTT.Up) {
		w.topic("mqtt.up", p.MQTT.Up)
	}
	if p.MQTT.Status != "" {
		w.topic("mqtt.status", p.MQTT.Status)
	}
}

func (w *walker) topic(path, t string) {
	line := w.line(path)
	for _, ph := range []string{"{site}", "{device}"} {
		if !strings.Contains(t, ph) {
			w.errAt(line, "%s topic %q must contain %s, so each device publishes only under its own topics", path, t, ph)
		}
	}
	if strings.ContainsAny(t, "+#") {
		w.errAt(line, "%s topic %q: wildcards + and # are not allowed", path, t)
	}
	if strings.HasPrefix(t, "/") || strings.HasSuffix(t, "/") || strings.Contains(t, "//") {
		w.errAt(line, "%s topic %q has an empty level", path, t)
	}
	for _, ph := range placeholdRE.FindAllString(t, -1) {
		if ph != "{site}" && ph != "{device}" {
			w.errAt(line, "%s topic %q: unknown placeholder %s (use {site} and {device})", path, t, ph)
		}
	}
}

func (w *walker) validateRTSP(p *Profile) {
	if p.RTSP == nil {
		w.errAt(w.line(""), "missing required key \"rtsp\": a camera profile gives its URL templates (main: rtsp://{host}:{port}/…)")
		return
	}
	if w.required("rtsp.main", p.RTSP.Main) {
		w.rtspTemplate("rtsp.main", p.RTSP.Main)
	}
	if p.RTSP.Sub != "" {
		w.rtspTemplate("rtsp.sub", p.RTSP.Sub)
	}
	if p.RTSP.DefaultPort < 0 || p.RTSP.DefaultPort > 65535 {
		w.errAt(w.line("rtsp.default_port"), "rtsp.default_port %d is not a TCP port (1-65535)", p.RTSP.DefaultPort)
	}
}

func (w *walker) rtspTemplate(path, t string) {
	line := w.line(path)
	if !strings.Contains(t, "{host}") {
		w.errAt(line, "%s template %q must contain {host}", path, t)
	}
	if !strings.HasPrefix(t, "rtsp://") && !strings.HasPrefix(t, "rtsps://") {
		w.errAt(line, "%s template %q must start with rtsp:// or rtsps://", path, t)
	}
	if strings.Contains(t, "@") {
		w.errAt(line, "%s template %q must not carry credentials; they come from the device", path, t)
	}
	for _, ph := range placeholdRE.FindAllString(t, -1) {
		switch ph {
		case "{host}", "{port}", "{channel}", "{path}":
		default:
			w.errAt(line, "%s template %q: unknown placeholder %s (use {host} {port} {channel} {path})", path, t, ph)
		}
	}
}

func (w *walker) validateDecoder(d *Decoder, metrics map[string]Metric) {
	w.enum("decoder.kind", d.Kind, "decoder kind", decoderKinds)
	if len(d.Fields) > MaxFields {
		w.errAt(w.line("decoder.fields"), "decoder has %d fields, at most %d are allowed", len(d.Fields), MaxFields)
	}
	seenMetric := map[string]int{}
	for i, f := range d.Fields {
		path := fmt.Sprintf("decoder.fields[%d]", i)
		if w.required(path+".metric", f.Metric) {
			if _, ok := metrics[f.Metric]; !ok {
				w.errAt(w.line(path+".metric"), "decoder field metric %q is not declared under metrics", f.Metric)
			}
			if first, dup := seenMetric[f.Metric]; dup {
				w.errAt(w.line(path+".metric"), "decoder field metric %q is read twice (first on line %d)", f.Metric, first)
			} else {
				seenMetric[f.Metric] = w.line(path + ".metric")
			}
		}
		if w.has(path+".scale") && f.Scale == 0 {
			w.errAt(w.line(path+".scale"), "field %q: scale must not be 0 (leave it out for 1)", f.Metric)
		}
	}
	switch d.Kind {
	case "json":
		w.validateJSONDecoder(d)
	case "binary":
		w.validateBinaryDecoder(d)
	case "hj212":
		w.validateHJ212Decoder(d)
	}
}

// validateHJ212Decoder: each field reads one pollutant code (w01018, a21026, LA) of the CP,
// its plain value or (value: zs) its converted 折算 value; a code and value are read once.
func (w *walker) validateHJ212Decoder(d *Decoder) {
	for _, k := range []string{"time_path", "open_metrics", "values_path", "byte_order", "length", "magic"} {
		w.notFor("decoder."+k, "hj212 decoders read the CP of HJ 212 frames")
	}
	if len(d.Fields) == 0 {
		w.errAt(w.line("decoder"), "an hj212 decoder needs at least one field under \"fields\" ({metric: cod, code: w01018})")
	}
	seen := map[string]int{}
	for i, f := range d.Fields {
		path := fmt.Sprintf("decoder.fields[%d]", i)
		for _, k := range []string{"path", "offset", "type", "bit", "optional"} {
			w.notFor(path+"."+k, "hj212 fields have code (and value), every pollutant is optional")
		}
		if w.required(path+".code", f.Code) && !hj212CodeRE.MatchString(f.Code) {
			w.errAt(w.line(path+".code"), "field %q: code %q must be an HJ 212 pollutant code (letters and digits, e.g. w01018)", f.Metric, f.Code)
		}
		if f.Value != "" && f.Value != "zs" {
			w.errAt(w.line(path+".value"), "field %q: value %q is not one of zs (leave it out for the measured value)", f.Metric, f.Value)
		}
		key := f.Code + "/" + f.Value
		if first, dup := seen[key]; dup {
			w.errAt(w.line(path+".code"), "field %q: code %s (value %q) is already read on line %d", f.Metric, f.Code, f.Value, first)
		} else {
			seen[key] = w.line(path + ".code")
		}
	}
}

func (w *walker) validateJSONDecoder(d *Decoder) {
	for _, k := range []string{"byte_order", "length", "magic"} {
		w.notFor("decoder."+k, "only binary decoders have it")
	}
	type named struct{ path, key string }
	var paths []named
	if d.TimePath != "" {
		if w.jsonPath("decoder.time_path", d.TimePath) {
			paths = append(paths, named{d.TimePath, "decoder.time_path"})
		}
	}
	if d.OpenMetrics {
		if w.required("decoder.values_path", d.ValuesPath) && w.jsonPath("decoder.values_path", d.ValuesPath) {
			paths = append(paths, named{d.ValuesPath, "decoder.values_path"})
		}
		if len(d.Fields) > 0 {
			w.errAt(w.line("decoder.fields"), "an open_metrics decoder takes no fields: every number under %q is a reading, and declared metrics get their unit and range by name", d.ValuesPath)
		}
	} else {
		w.notFor("decoder.values_path", "only open_metrics decoders have it")
		if len(d.Fields) == 0 {
			w.errAt(w.line("decoder"), "a json decoder needs at least one field under \"fields\" (or open_metrics: true)")
		}
	}
	for i, f := range d.Fields {
		path := fmt.Sprintf("decoder.fields[%d]", i)
		for _, k := range []string{"offset", "type", "bit"} {
			w.notFor(path+"."+k, "only binary decoder fields have it")
		}
		for _, k := range []string{"code", "value"} {
			w.notFor(path+"."+k, "only hj212 decoder fields have it")
		}
		if w.required(path+".path", f.Path) && w.jsonPath(path+".path", f.Path) {
			paths = append(paths, named{f.Path, path + ".path"})
		}
	}
	// A path that is a prefix of another would need one value to be both a number and an
	// object.
	for i, a := range paths {
		for _, b := range paths[:i] {
			if a.path == b.path || strings.HasPrefix(a.path, b.path+".") || strings.HasPrefix(b.path, a.path+".") {
				w.errAt(w.line(a.key), "%s %q overlaps %q (line %d): one JSON value cannot be read twice or be both a number and an object", a.key, a.path, b.path, w.line(b.key))
			}
		}
	}
}

func (w *walker) jsonPath(path, p string) bool {
	for _, seg := range strings.Split(p, ".") {
		if seg == "" || strings.ContainsAny(seg, " \t\n\"") {
			w.errAt(w.line(path), "%s %q: write a dotted path such as values.pm10 or data.0.v", path, p)
			return false
		}
	}
	return true
}

func (w *walker) validateBinaryDecoder(d *Decoder) {
	for _, k := range []string{"time_path", "open_metrics", "values_path"} {
		w.notFor("decoder."+k, "only json decoders have it")
	}
	if d.Length <= 0 || d.Length > 65535 {
		w.errAt(w.line("decoder.length"), "a binary decoder needs length: the frame size in bytes (1-65535)")
	}
	if d.ByteOrder != "" && d.ByteOrder != "big" && d.ByteOrder != "little" {
		w.errAt(w.line("decoder.byte_order"), "byte_order %q is not one of big, little", d.ByteOrder)
	}
	if d.Magic != "" {
		m, err := hex.DecodeString(d.Magic)
		switch {
		case err != nil:
			w.errAt(w.line("decoder.magic"), "magic %q is not hex bytes (e.g. aa55)", d.Magic)
		case d.Length > 0 && len(m) > d.Length:
			w.errAt(w.line("decoder.magic"), "magic is %d bytes, longer than the frame length %d", len(m), d.Length)
		}
	}
	if len(d.Fields) == 0 {
		w.errAt(w.line("decoder"), "a binary decoder needs at least one field under \"fields\"")
	}
	for i, f := range d.Fields {
		path := fmt.Sprintf("decoder.fields[%d]", i)
		w.notFor(path+".path", "binary decoder fields use offset and type, not path")
		w.notFor(path+".optional", "a fixed-length frame always carries every field")
		for _, k := range []string{"code", "value"} {
			w.notFor(path+"."+k, "only hj212 decoder fields have it")
		}
		w.enum(path+".type", f.Type, fmt.Sprintf("field %q: type", f.Metric), binaryTypes)
		size := TypeSize(f.Type)
		if f.Offset < 0 {
			w.errAt(w.line(path+".offset"), "field %q: offset %d must not be negative", f.Metric, f.Offset)
		} else if size > 0 && d.Length > 0 && f.Offset+size > d.Length {
			w.errAt(w.line(path+".offset"), "field %q: %s at offset %d ends at byte %d, past the frame length %d", f.Metric, f.Type, f.Offset, f.Offset+size, d.Length)
		}
		if f.Bit != nil {
			switch {
			case f.Type == "f32" || f.Type == "f64":
				w.errAt(w.line(path+".bit"), "field %q: bit needs an integer type, not %s", f.Metric, f.Type)
			case size > 0 && (*f.Bit < 0 || *f.Bit >= size*8):
				w.errAt(w.line(path+".bit"), "field %q: bit %d is outside a %s (0-%d)", f.Metric, *f.Bit, f.Type, size*8-1)
			}
		}
	}
}

func (w *walker) validateRules(p *Profile, metrics map[string]Metric) {
	firstLine := map[string]int{}
	for i, r := range p.Rules {
		path := fmt.Sprintf("rules[%d]", i)
		name := r.ID
		if w.required(path+".id", r.ID) {
			if !idRE.MatchString(r.ID) {
				w.errAt(w.line(path+".id"), "rule id %q: use lower-case letters, digits, '-', '_' and '.'", r.ID)
			}
			if first, dup := firstLine[r.ID]; dup {
				w.errAt(w.line(path+".id"), "rule %q defined twice (first on line %d)", r.ID, first)
			} else {
				firstLine[r.ID] = w.line(path + ".id")
			}
		} else {
			name = path
		}
		what := fmt.Sprintf("rule %q", name)
		w.enum(path+".kind", r.Kind, what+": kind", ruleKinds)
		w.enum(path+".severity", r.Severity, what+": severity", severities)

		compares := r.Kind == "threshold" || r.Kind == "duration" || r.Kind == "rate"
		var m Metric
		var known bool
		if r.Metric != "" {
			if m, known = metrics[r.Metric]; !known {
				w.errAt(w.line(path+".metric"), "%s: metric %q is not declared under metrics", what, r.Metric)
			}
		} else if compares {
			w.errAt(w.line(path), "%s: a %s rule needs a metric", what, r.Kind)
		}
		if compares {
			if r.Op == "" {
				w.errAt(w.line(path), "%s: a %s rule needs op (one of %s)", what, r.Kind, strings.Join(ops, " "))
			} else if !oneOf(r.Op, ops) {
				w.errAt(w.line(path+".op"), "%s: op %q is not one of %s", what, r.Op, strings.Join(ops, " "))
			}
			if !w.has(path + ".value") {
				w.errAt(w.line(path), "%s: a %s rule needs value (the limit)", what, r.Kind)
			} else if known && r.Kind != "rate" {
				w.reachable(path, what, r, m)
			}
		} else if r.Kind == "silence" {
			w.notFor(path+".op", "a silence rule fires when no reading arrives; it has no op")
			w.notFor(path+".value", "a silence rule fires when no reading arrives; it has no value")
		}
		switch r.Kind {
		case "duration", "silence":
			if r.For <= 0 {
				w.errAt(w.line(path+".for"), "%s: a %s rule needs for > 0 (e.g. for: 10m)", what, r.Kind)
			}
		default:
			w.notFor(path+".for", "only duration and silence rules have it (use kind: duration)")
		}
		if r.Kind == "rate" {
			if r.Per <= 0 {
				w.errAt(w.line(path+".per"), "%s: a rate rule needs per > 0 (the window of the change, e.g. per: 10m)", what)
			}
		} else {
			w.notFor(path+".per", "only rate rules have it")
		}
		if r.Hysteresis < 0 {
			w.errAt(w.line(path+".hysteresis"), "%s: hysteresis must not be negative", what)
		}
		if r.During != "" && !duringRE.MatchString(r.During) {
			w.errAt(w.line(path+".during"), "%s: during %q: write a daily window HH:MM-HH:MM, e.g. 06:00-22:00", what, r.During)
		}
	}
}

// reachable reports a comparison that no valid reading could ever satisfy.
func (w *walker) reachable(path, what string, r Rule, m Metric) {
	line := w.line(path + ".value")
	switch {
	case m.Max != nil && (r.Op == ">" && r.Value >= *m.Max || r.Op == ">=" && r.Value > *m.Max):
		w.errAt(line, "%s: %s %g can never fire: metric %q max is %g", what, r.Op, r.Value, m.Name, *m.Max)
	case m.Min != nil && (r.Op == "<" && r.Value <= *m.Min || r.Op == "<=" && r.Value < *m.Min):
		w.errAt(line, "%s: %s %g can never fire: metric %q min is %g", what, r.Op, r.Value, m.Name, *m.Min)
	case r.Op == "==" && (m.Max != nil && r.Value > *m.Max || m.Min != nil && r.Value < *m.Min):
		w.errAt(line, "%s: == %g can never fire: outside metric %q range", what, r.Value, m.Name)
	}
}
