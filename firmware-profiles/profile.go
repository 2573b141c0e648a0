// Package profiles (folder firmware-profiles/) owns the device models Offsite knows: one YAML
// file per model or firmware family saying how to read it (MQTT topics, payload decoder, RTSP
// URL templates), its metrics with units and valid ranges, its heartbeat, its default rules,
// and which firmware versions it covers and which are known to be bad. Profiles are data: a
// new model is a file, validated with file, line and reason when loaded.
package profiles

import "time"

// Profile describes one device model / firmware family.
type Profile struct {
	ID          string   `yaml:"id" json:"id"`
	Name        string   `yaml:"name" json:"name"` // human name, Chinese allowed
	Kind        string   `yaml:"kind" json:"kind"` // camera | sensor | gateway
	Vendor      string   `yaml:"vendor" json:"vendor"`
	Models      []string `yaml:"models" json:"models"`
	Description string   `yaml:"description,omitempty" json:"description,omitempty"`

	Firmware Firmware `yaml:"firmware" json:"firmware"`

	// Sensors
	MQTT      *MQTTSpec `yaml:"mqtt,omitempty" json:"mqtt,omitempty"`
	Decoder   *Decoder  `yaml:"decoder,omitempty" json:"decoder,omitempty"`
	Metrics   []Metric  `yaml:"metrics,omitempty" json:"metrics,omitempty"`
	Heartbeat Duration  `yaml:"heartbeat,omitempty" json:"heartbeat,omitempty"` // expected max gap between messages
	// Interval is the normal gap between two messages (the device's normal rate); ingest drops
	// a device's messages beyond a configurable multiple of this rate. 0: the gateway's default.
	Interval Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	Rules    []Rule   `yaml:"rules,omitempty" json:"rules,omitempty"` // default rules for analytics

	// Cameras
	RTSP *RTSPSpec `yaml:"rtsp,omitempty" json:"rtsp,omitempty"`

	// Source is where the profile was loaded from ("embedded:NAME.yml" or a file path).
	Source string `yaml:"-" json:"source"`

	idLine int // line of the id key in Source, for duplicate-id errors
}

// Firmware lists the versions a profile covers. A device whose version is in Bad, or matches
// none of Supported, is flagged to maintainers.
type Firmware struct {
	// Supported are version patterns: exact ("V5.7.3") or with a trailing * ("V5.7.*").
	Supported []string     `yaml:"supported" json:"supported"`
	Bad       []BadVersion `yaml:"bad,omitempty" json:"bad,omitempty"`
}

// BadVersion is a firmware version known to misbehave, and why.
type BadVersion struct {
	Version string `yaml:"version" json:"version"`
	Reason  string `yaml:"reason" json:"reason"`
}

// MQTTSpec names the topics a sensor uses. {site} and {device} are replaced by ids.
type MQTTSpec struct {
	Up     string `yaml:"up" json:"up"`                             // readings
	Status string `yaml:"status,omitempty" json:"status,omitempty"` // retained online/offline, also the will
}

// Decoder says how to turn a payload into metric values.
type Decoder struct {
	Kind string `yaml:"kind" json:"kind"` // "json", "binary" or "hj212" (HJ 212-2017 over TCP)
	// JSON: path of the device timestamp (RFC 3339 or unix ms), optional.
	TimePath string `yaml:"time_path,omitempty" json:"time_path,omitempty"`
	// Binary: byte order of multi-byte fields, "big" (default) or "little"; fixed length.
	ByteOrder string  `yaml:"byte_order,omitempty" json:"byte_order,omitempty"`
	Length    int     `yaml:"length,omitempty" json:"length,omitempty"`
	Fields    []Field `yaml:"fields" json:"fields"`

	// Magic is the hex of bytes every binary frame starts with (e.g. "aa55"), optional.
	Magic string `yaml:"magic,omitempty" json:"magic,omitempty"`
	// OpenMetrics (JSON only) takes every numeric entry of the object at ValuesPath as a
	// reading named by its key, instead of a fixed list of Fields. Used by generic-json, whose
	// metric names are chosen by the device; metrics the profile declares still get their
	// unit and range.
	OpenMetrics bool   `yaml:"open_metrics,omitempty" json:"open_metrics,omitempty"`
	ValuesPath  string `yaml:"values_path,omitempty" json:"values_path,omitempty"`
}

// Field maps one part of a payload to a metric: value = raw*scale + offset.
type Field struct {
	Metric string `yaml:"metric" json:"metric"`
	// JSON decoder: dotted path, e.g. "values.pm10" or "data.0.v".
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
	// Binary decoder: byte offset and type (u8 i8 u16 i16 u32 i32 f32 f64).
	Offset int    `yaml:"offset,omitempty" json:"offset,omitempty"`
	Type   string `yaml:"type,omitempty" json:"type,omitempty"`
	// Scale defaults to 1.
	Scale    float64 `yaml:"scale,omitempty" json:"scale,omitempty"`
	Add      float64 `yaml:"add,omitempty" json:"add,omitempty"`
	Optional bool    `yaml:"optional,omitempty" json:"optional,omitempty"`
	// Bit (binary decoder) takes one bit of the raw integer, 0 = least significant, so a
	// flags byte can feed one 0/1 metric per flag. Scale and Add apply after.
	Bit *int `yaml:"bit,omitempty" json:"bit,omitempty"`
	// Code (hj212 decoder) is the HJ 212 pollutant code the field reads, e.g. w01018 (COD).
	Code string `yaml:"code,omitempty" json:"code,omitempty"`
	// Value (hj212 decoder): "" reads the measured value (Rtd in real-time data, Avg in
	// minute, hour and day data), "zs" the converted one (ZsRtd / ZsAvg, flue gas 折算).
	Value string `yaml:"value,omitempty" json:"value,omitempty"`
}

// Metric is one measured quantity with its unit and valid range.
type Metric struct {
	Name  string   `yaml:"name" json:"name"`   // e.g. pm10
	Label string   `yaml:"label" json:"label"` // e.g. PM10
	Unit  string   `yaml:"unit" json:"unit"`   // e.g. µg/m³
	Min   *float64 `yaml:"min" json:"min"`     // readings outside [Min, Max] are quarantined
	Max   *float64 `yaml:"max" json:"max"`
}

// Rule is a default rule the analytics issue evaluates. Kinds: threshold, duration, rate,
// silence.
type Rule struct {
	ID         string   `yaml:"id" json:"id"`
	Kind       string   `yaml:"kind" json:"kind"`
	Metric     string   `yaml:"metric,omitempty" json:"metric,omitempty"`
	Op         string   `yaml:"op,omitempty" json:"op,omitempty"` // > >= < <=
	Value      float64  `yaml:"value,omitempty" json:"value,omitempty"`
	Hysteresis float64  `yaml:"hysteresis,omitempty" json:"hysteresis,omitempty"`
	For        Duration `yaml:"for,omitempty" json:"for,omitempty"` // duration rules, silence
	Per        Duration `yaml:"per,omitempty" json:"per,omitempty"` // rate rules: change per this window
	Severity   string   `yaml:"severity" json:"severity"`           // info minor major critical
	Department string   `yaml:"department,omitempty" json:"department,omitempty"`
	Message    string   `yaml:"message,omitempty" json:"message,omitempty"`
	// During limits the rule to a daily local-time window "HH:MM-HH:MM" (may wrap midnight,
	// e.g. "22:00-06:00"); empty means all day.
	During string `yaml:"during,omitempty" json:"during,omitempty"`
}

// RTSPSpec holds a camera model's URL templates. Placeholders: {host} {port} {channel}
// {path}. Credentials are never part of a template; streams/ adds them.
type RTSPSpec struct {
	Main        string `yaml:"main" json:"main"`
	Sub         string `yaml:"sub,omitempty" json:"sub,omitempty"`
	DefaultPort int    `yaml:"default_port,omitempty" json:"default_port,omitempty"`
	Codec       string `yaml:"codec,omitempty" json:"codec,omitempty"` // typical codec of the main stream
}

// Duration is a time.Duration written as "30s", "10m" in YAML and JSON.
type Duration time.Duration
