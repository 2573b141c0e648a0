package decode

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	profiles "github.com/offsite-gw/offsite/firmware-profiles"
)

// The JSON decoder walks the payload once with a small hand-written scanner, guided by a tree
// of the profile's paths: values on a path are parsed, everything else is only checked for
// syntax and skipped. No map[string]any, no reflection; the only allocation of a good
// payload is the slice of readings, and none with DecodeInto once the caller's storage is
// large enough.

// Device times before this are taken for a clock that was never set, or for unix seconds
// sent where milliseconds belong (1e11 ms is March 1973).
const (
	minUnixMilli = 1e11
	maxUnixMilli = 253402300799999 // 9999-12-31T23:59:59.999Z
)

var minDeviceTime = time.UnixMilli(minUnixMilli)

type jsonDecoder struct {
	profile    string
	root       *pathNode
	fields     []jsonField
	open       bool
	valuesPath string
	timePath   string
	declared   map[string]profiles.Metric // open metrics: unit and interned name by metric
	maxSize    int
	nodes      int
}

// maxPathNodes bounds the path tree, so the duplicate-key bitset of a scan fits on the stack.
const maxPathNodes = 1024

type jsonField struct {
	metric, unit, path string
	scale, add         float64
	optional           bool
}

// pathNode is one segment of the profile's paths. A node is a leaf (field ≥ 0, time or
// values) or has children; validation rules out a path that is both.
type pathNode struct {
	id       int // index into scanner.seen
	path     string
	field    int // index into fields, -1 if not a field leaf
	time     bool
	values   bool
	children []pathChild
	arrayOK  bool // some child is a valid array index
}

type pathChild struct {
	key   string
	index int // the key as an array index, -1 if it is not one
	node  *pathNode
}

func (n *pathNode) leaf() bool { return n.field >= 0 || n.time || n.values }

func newJSON(p profiles.Profile, o options) (*jsonDecoder, error) {
	pd := p.Decoder
	d := &jsonDecoder{
		profile:    p.ID,
		root:       &pathNode{field: -1},
		open:       pd.OpenMetrics,
		valuesPath: pd.ValuesPath,
		timePath:   pd.TimePath,
		maxSize:    o.maxSize,
	}
	if len(pd.Fields) > profiles.MaxFields {
		return nil, fmt.Errorf("decode: profile %s: %d fields, at most %d", p.ID, len(pd.Fields), profiles.MaxFields)
	}
	if d.open {
		if len(pd.Fields) > 0 {
			return nil, fmt.Errorf("decode: profile %s: an open_metrics decoder takes no fields", p.ID)
		}
		n, err := d.add(pd.ValuesPath)
		if err != nil {
			return nil, fmt.Errorf("decode: profile %s: values_path: %w", p.ID, err)
		}
		n.values = true
		d.declared = make(map[string]profiles.Metric, len(p.Metrics))
		for _, m := range p.Metrics {
			d.declared[m.Name] = m
		}
	} else if len(pd.Fields) == 0 {
		return nil, fmt.Errorf("decode: profile %s: a json decoder needs fields or open_metrics", p.ID)
	}
	if pd.TimePath != "" {
		n, err := d.add(pd.TimePath)
		if err != nil {
			return nil, fmt.Errorf("decode: profile %s: time_path: %w", p.ID, err)
		}
		n.time = true
	}
	for i, f := range pd.Fields {
		m, ok := p.Metric(f.Metric)
		if !ok {
			return nil, fmt.Errorf("decode: profile %s: field metric %q is not declared", p.ID, f.Metric)
		}
		n, err := d.add(f.Path)
		if err != nil {
			return nil, fmt.Errorf("decode: profile %s: field %s: %w", p.ID, f.Metric, err)
		}
		n.field = i
		scale := f.Scale
		if scale == 0 {
			scale = 1
		}
		d.fields = append(d.fields, jsonField{metric: m.Name, unit: m.Unit, path: f.Path, scale: scale, add: f.Add, optional: f.Optional})
	}
	return d, nil
}

// add creates the nodes of a dotted path and returns its (new, childless) leaf.
func (d *jsonDecoder) add(path string) (*pathNode, error) {
	n := d.root
	for seg := range strings.SplitSeq(path, ".") {
		if seg == "" {
			return nil, fmt.Errorf("path %q has an empty segment", path)
		}
		if n.leaf() {
			return nil, fmt.Errorf("path %q runs through another path's value", path)
		}
		var next *pathNode
		for _, c := range n.children {
			if c.key == seg {
				next = c.node
			}
		}
		if next == nil {
			sub := seg
			if n.path != "" {
				sub = n.path + "." + seg
			}
			if d.nodes == maxPathNodes {
				return nil, fmt.Errorf("more than %d path segments in one decoder", maxPathNodes)
			}
			d.nodes++
			next = &pathNode{id: d.nodes, path: sub, field: -1}
			idx := -1
			if len(seg) <= 9 && (seg == "0" || seg[0] != '0') {
				if v, err := strconv.Atoi(seg); err == nil && v >= 0 {
					idx = v
					n.arrayOK = true
				}
			}
			n.children = append(n.children, pathChild{key: seg, index: idx, node: next})
		}
		n = next
	}
	if n.leaf() || len(n.children) > 0 {
		return nil, fmt.Errorf("path %q overlaps another path", path)
	}
	return n, nil
}

// Decode reads one payload.
func (d *jsonDecoder) Decode(payload []byte) (Decoded, error) { return d.DecodeInto(nil, payload) }

// DecodeInto implements Decoder.
func (d *jsonDecoder) DecodeInto(dst []Reading, payload []byte) (Decoded, error) {
	if len(payload) > d.maxSize {
		return Decoded{}, &Error{Reason: ReasonTooLarge, Msg: fmt.Sprintf("payload is %d bytes, the limit is %d", len(payload), d.maxSize)}
	}
	s := scanner{d: d, buf: payload, dst: dst}
	if !d.open {
		s.out = readings(dst, len(d.fields))
	}
	s.skipWS()
	if s.pos == len(s.buf) {
		return Decoded{}, &Error{Reason: ReasonMalformedJSON, Msg: "empty payload"}
	}
	if err := s.value(d.root); err != nil {
		return Decoded{}, err
	}
	s.skipWS()
	if s.pos != len(s.buf) {
		return Decoded{}, s.malformed("unexpected data after the JSON value")
	}
	if d.open {
		if !s.valuesSeen {
			return Decoded{}, &Error{Reason: ReasonMissingField, Field: d.valuesPath, Msg: "no values object"}
		}
		return Decoded{Values: s.out, DeviceTime: s.devTime}, nil
	}
	n := 0
	for i, f := range d.fields {
		if s.out[i].Metric != "" {
			s.out[n] = s.out[i]
			n++
		} else if !f.optional {
			return Decoded{}, &Error{Reason: ReasonMissingField, Field: f.path, Msg: fmt.Sprintf("required field for metric %s is missing or null", f.metric)}
		}
	}
	return Decoded{Values: s.out[:n], DeviceTime: s.devTime}, nil
}

// scanner is the state of one Decode call.
type scanner struct {
	d          *jsonDecoder
	buf        []byte
	pos        int
	depth      int
	out        []Reading
	dst        []Reading                        // the caller's storage for out
	seen       [(maxPathNodes + 64) / 64]uint64 // path nodes met, to refuse duplicate keys
	valuesSeen bool
	devTime    time.Time
	names      map[string]struct{} // open metrics, once there are many
}

func (s *scanner) peek() byte {
	if s.pos < len(s.buf) {
		return s.buf[s.pos]
	}
	return 0
}

func (s *scanner) skipWS() {
	for s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) malformed(msg string) *Error {
	if s.pos >= len(s.buf) {
		return &Error{Reason: ReasonMalformedJSON, Msg: msg + " (at end of payload)"}
	}
	return &Error{Reason: ReasonMalformedJSON, Msg: fmt.Sprintf("%s (at byte %d, %q)", msg, s.pos, s.buf[s.pos])}
}

// wrongType describes what is at pos, for "expected X, got Y".
func (s *scanner) wrongType(field, want string) *Error {
	got := "nothing"
	switch c := s.peek(); {
	case c == '"':
		got = "a string"
		if raw, _, err := s.str(); err == nil {
			if len(raw) > 32 {
				raw = append(raw[:32:32], "…"...)
			}
			got = fmt.Sprintf("the string %q", raw)
		}
	case c == '{':
		got = "an object"
	case c == '[':
		got = "a list"
	case c == 't' || c == 'f':
		got = "a boolean"
	case c == 'n':
		got = "null"
	case c == '-' || isDigit(c):
		got = "a number"
	}
	return &Error{Reason: ReasonWrongType, Field: field, Msg: fmt.Sprintf("expected %s, got %s", want, got)}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// value reads the value at pos; n is the path node it sits on, nil if no path goes there.
func (s *scanner) value(n *pathNode) error {
	if n != nil {
		// A key given twice on a path is refused, not merged or last-wins: the device and
		// other JSON readers could disagree on which one counts.
		if s.seen[n.id/64]&(1<<(n.id%64)) != 0 {
			return &Error{Reason: ReasonDuplicateKey, Field: n.path, Msg: "given twice"}
		}
		s.seen[n.id/64] |= 1 << (n.id % 64)
		switch {
		case n.field >= 0:
			return s.field(n)
		case n.time:
			return s.deviceTime(n)
		case n.values:
			return s.openValues(n)
		}
	}
	switch c := s.peek(); {
	case c == '{':
		return s.object(n)
	case c == '[':
		if n != nil && !n.arrayOK {
			return s.wrongType(n.path, "an object")
		}
		return s.array(n)
	case n != nil && c != 'n':
		if c == '"' || c == 't' || c == 'f' || c == '-' || isDigit(c) {
			return s.wrongType(n.path, "an object")
		}
		return s.malformed("expected a JSON value")
	case c == '"':
		_, _, err := s.str()
		return err
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || isDigit(c):
		_, err := s.number()
		return err
	}
	return s.malformed("expected a JSON value")
}

func (s *scanner) enter() error {
	s.depth++
	if s.depth > MaxDepth {
		return &Error{Reason: ReasonTooDeep, Msg: fmt.Sprintf("JSON nested deeper than %d levels", MaxDepth)}
	}
	return nil
}

func (s *scanner) object(n *pathNode) error {
	s.pos++ // {
	if err := s.enter(); err != nil {
		return err
	}
	s.skipWS()
	if s.peek() == '}' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		s.skipWS()
		if s.peek() != '"' {
			return s.malformed("expected a key in double quotes")
		}
		var child *pathNode
		if n == nil {
			if _, _, err := s.str(); err != nil {
				return err
			}
		} else {
			key, err := s.key()
			if err != nil {
				return err
			}
			for i := range n.children {
				if n.children[i].key == key {
					child = n.children[i].node
					break
				}
			}
		}
		s.skipWS()
		if s.peek() != ':' {
			return s.malformed("expected ':' after the key")
		}
		s.pos++
		s.skipWS()
		if err := s.value(child); err != nil {
			return err
		}
		s.skipWS()
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			s.depth--
			return nil
		default:
			return s.malformed("expected ',' or '}' in object")
		}
	}
}

func (s *scanner) array(n *pathNode) error {
	s.pos++ // [
	if err := s.enter(); err != nil {
		return err
	}
	s.skipWS()
	if s.peek() == ']' {
		s.pos++
		s.depth--
		return nil
	}
	for i := 0; ; i++ {
		var child *pathNode
		if n != nil {
			for _, c := range n.children {
				if c.index == i {
					child = c.node
					break
				}
			}
		}
		s.skipWS()
		if err := s.value(child); err != nil {
			return err
		}
		s.skipWS()
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			s.depth--
			return nil
		default:
			return s.malformed("expected ',' or ']' in list")
		}
	}
}

// key reads an object key. The common key without escapes is returned without copying; it
// is only compared, never kept.
func (s *scanner) key() (string, error) {
	start := s.pos
	raw, escaped, err := s.str()
	if err != nil {
		return "", err
	}
	if !escaped {
		if len(raw) == 0 {
			return "", nil
		}
		return unsafe.String(&raw[0], len(raw)), nil
	}
	var k string
	if err := json.Unmarshal(s.buf[start:s.pos], &k); err != nil {
		return "", &Error{Reason: ReasonMalformedJSON, Msg: "bad string escape"}
	}
	return k, nil
}

// str reads a string at pos (which holds '"') and returns its raw bytes between the quotes.
func (s *scanner) str() (raw []byte, escaped bool, err error) {
	start := s.pos + 1
	b := s.buf
	for i := start; i < len(b); {
		c := b[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return b[start:i], escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				s.pos = i
				return nil, false, s.malformed("unterminated string")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					s.pos = i
					return nil, false, s.malformed(`bad \u escape in string`)
				}
				i += 6
			default:
				s.pos = i
				return nil, false, s.malformed("bad escape in string")
			}
		case c < 0x20:
			s.pos = i
			return nil, false, s.malformed("control character in string")
		default:
			i++
		}
	}
	s.pos = len(b)
	return nil, false, s.malformed("unterminated string")
}

func isHex(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func (s *scanner) literal(lit string) error {
	if len(s.buf)-s.pos < len(lit) || string(s.buf[s.pos:s.pos+len(lit)]) != lit {
		return s.malformed("expected " + lit)
	}
	s.pos += len(lit)
	return nil
}

// number reads a JSON number (strict grammar: no leading +, no leading zeros, no NaN, no hex).
func (s *scanner) number() ([]byte, error) {
	b := s.buf
	start, i := s.pos, s.pos
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		s.pos = i
		return nil, s.malformed("bad number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			s.pos = i
			return nil, s.malformed("bad number: digits must follow '.'")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			s.pos = i
			return nil, s.malformed("bad number: digits must follow the exponent")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	s.pos = i
	return b[start:i], nil
}

// float reads a number at pos as a float64.
func (s *scanner) float(field string) (float64, error) {
	raw, err := s.number()
	if err != nil {
		return 0, err
	}
	if v, ok := exactDecimal(raw); ok {
		return v, nil
	}
	// The string does not outlive the call: ParseFloat copies what it keeps in its error.
	v, err := strconv.ParseFloat(unsafe.String(&raw[0], len(raw)), 64)
	if err != nil || math.IsInf(v, 0) {
		return 0, &Error{Reason: ReasonOutOfRange, Field: field, Msg: fmt.Sprintf("number %.40s does not fit a float64", raw)}
	}
	return v, nil
}

// pow10 are the powers of ten a float64 holds exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// exactDecimal is the common case of a sensor value or a time in unix ms, a valid JSON
// number without exponent whose digits make an integer below 2^53 ("35.5", "-12",
// "1764210904123.456"): digits/10^decimals, both exact in a float64, so one correctly
// rounded division gives what ParseFloat would. ok is false for anything else.
func exactDecimal(raw []byte) (float64, bool) {
	neg := len(raw) > 0 && raw[0] == '-'
	if neg {
		raw = raw[1:]
	}
	var mant uint64
	digits, decimals, point := 0, 0, false
	for _, c := range raw {
		switch {
		case c >= '0' && c <= '9':
			mant = mant*10 + uint64(c-'0')
			digits++
			if point {
				decimals++
			}
		case c == '.' && !point:
			point = true
		default:
			return 0, false // an exponent
		}
	}
	if digits == 0 || digits > 19 || mant >= 1<<53 { // 19 digits cannot overflow a uint64
		return 0, false
	}
	v := float64(mant) / pow10[decimals]
	if neg {
		v = -v
	}
	return v, true
}

// scalar reads a reading's value: a number, or true/false as 1/0. ok is false for null.
func (s *scanner) scalar(field string) (v float64, ok bool, err error) {
	switch c := s.peek(); {
	case c == '-' || isDigit(c):
		v, err = s.float(field)
		return v, err == nil, err
	case c == 't':
		return 1, true, s.literal("true")
	case c == 'f':
		return 0, true, s.literal("false")
	case c == 'n':
		return 0, false, s.literal("null")
	case c == '"' || c == '{' || c == '[':
		return 0, false, s.wrongType(field, "a number")
	}
	return 0, false, s.malformed("expected a JSON value")
}

func (s *scanner) field(n *pathNode) error {
	i := n.field
	f := &s.d.fields[i]
	v, ok, err := s.scalar(f.path)
	if err != nil || !ok {
		return err
	}
	s.out[i] = Reading{Metric: f.metric, Value: v*f.scale + f.add, Unit: f.unit}
	return nil
}

func (s *scanner) deviceTime(n *pathNode) error {
	var t time.Time
	switch c := s.peek(); {
	case c == '"':
		start := s.pos
		raw, escaped, err := s.str()
		if err != nil {
			return err
		}
		// Parsed in place; neither the time nor our error message keeps the string.
		str := ""
		if len(raw) > 0 {
			str = unsafe.String(&raw[0], len(raw))
		}
		if escaped {
			if err := json.Unmarshal(s.buf[start:s.pos], &str); err != nil {
				return &Error{Reason: ReasonMalformedJSON, Field: n.path, Msg: "bad string escape"}
			}
		}
		t, err = time.Parse(time.RFC3339Nano, str)
		if err != nil {
			return &Error{Reason: ReasonBadTime, Field: n.path, Msg: fmt.Sprintf("%.40q is not an RFC 3339 time such as 2026-11-27T10:15:04+08:00", str)}
		}
	case c == '-' || isDigit(c):
		ms, err := s.float(n.path)
		if err != nil {
			return err
		}
		if ms < minUnixMilli || ms > maxUnixMilli {
			return &Error{Reason: ReasonBadTime, Field: n.path, Msg: fmt.Sprintf("%.0f is not a plausible unix time in milliseconds (seconds sent by mistake, or the device clock is not set)", ms)}
		}
		whole := math.Floor(ms)
		t = time.UnixMilli(int64(whole)).Add(time.Duration((ms - whole) * 1e6))
	case c == 'n':
		return s.literal("null")
	default:
		return s.wrongType(n.path, "an RFC 3339 string or unix milliseconds")
	}
	if t.Before(minDeviceTime) {
		return &Error{Reason: ReasonBadTime, Field: n.path, Msg: fmt.Sprintf("%s is not plausible: the device clock is not set", t.Format(time.RFC3339))}
	}
	s.devTime = t.UTC()
	return nil
}

// openValues reads the values object of an open-metrics decoder: every entry is a reading.
func (s *scanner) openValues(n *pathNode) error {
	switch s.peek() {
	case 'n':
		return s.literal("null") // reported as missing at the end
	case '{':
	default:
		return s.wrongType(n.path, "an object of metric: number")
	}
	s.valuesSeen = true
	s.pos++
	if err := s.enter(); err != nil {
		return err
	}
	s.out = s.dst[:0]
	if s.out == nil {
		s.out = make([]Reading, 0, 8)
	}
	s.skipWS()
	if s.peek() == '}' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		s.skipWS()
		if s.peek() != '"' {
			return s.malformed("expected a key in double quotes")
		}
		key, err := s.key()
		if err != nil {
			return err
		}
		var r Reading
		if m, ok := s.d.declared[key]; ok {
			r.Metric, r.Unit = m.Name, m.Unit
		} else if utf8.ValidString(key) {
			r.Metric = strings.Clone(key)
		} else {
			// As encoding/json does: the name reaches logs, stores and the quarantine.
			r.Metric = validUTF8(key)
		}
		s.skipWS()
		if s.peek() != ':' {
			return s.malformed("expected ':' after the key")
		}
		s.pos++
		s.skipWS()
		v, ok, err := s.scalar("")
		if err != nil {
			if e, isErr := err.(*Error); isErr && e.Field == "" && e.Reason != ReasonMalformedJSON {
				e.Field = n.path + "." + r.Metric
			}
			return err
		}
		if ok {
			if s.has(r.Metric) {
				return &Error{Reason: ReasonDuplicateKey, Field: n.path + "." + r.Metric, Msg: "given twice"}
			}
			if len(s.out) == MaxValues {
				return &Error{Reason: ReasonTooManyValues, Field: n.path, Msg: fmt.Sprintf("more than %d values in one message", MaxValues)}
			}
			r.Value = v
			s.out = append(s.out, r)
		}
		s.skipWS()
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			s.depth--
			return nil
		default:
			return s.malformed("expected ',' or '}' in object")
		}
	}
}

// has reports whether metric was already read from the open values object.
func (s *scanner) has(metric string) bool {
	if len(s.out) < 16 {
		for _, r := range s.out {
			if r.Metric == metric {
				return true
			}
		}
		return false
	}
	if s.names == nil {
		s.names = make(map[string]struct{}, 2*len(s.out))
		for _, r := range s.out {
			s.names[r.Metric] = struct{}{}
		}
	}
	if _, ok := s.names[metric]; ok {
		return true
	}
	s.names[metric] = struct{}{}
	return false
}

// validUTF8 replaces each invalid byte by U+FFFD, as encoding/json does.
func validUTF8(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
