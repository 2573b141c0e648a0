// Package yamlstrict decodes one YAML document into a Go value with yaml.v3's strict decoding
// (KnownFields) and turns what goes wrong into problems with a line, a key path and a plain
// reason, for loaders that must tell a person "file:line: key: what is wrong" — every problem
// of a file at once, not only the first.
//
// yaml.v3 does the decoding; this package adds what its errors lack: the key path of each
// problem (metrics[0].max), the keys allowed where an unknown one was found (with the nearest
// as a suggestion), the line of each key for the caller's own checks (Lines), and a few checks
// yaml.v3 does not make: a key given twice (with both lines), a float where an integer is
// expected (yaml.v3 would truncate it), a value that is not a finite number, and, on request,
// aliases. It is a ground-floor package: it imports no domain folder.
package yamlstrict

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Kind classifies a Problem.
type Kind int

const (
	// Syntax: the text is not YAML.
	Syntax Kind = iota
	// UnknownKey: a key the target has no field for (Key, Known, Suggest say more).
	UnknownKey
	// Duplicate: a key given twice in one mapping (Key, FirstLine).
	Duplicate
	// WrongType: a value that does not fit its field (Want, Got), or that the field's own
	// UnmarshalYAML refused (Reason).
	WrongType
	// Alias: a YAML alias where Document.NoAliases forbids them (Got is "*name").
	Alias
)

// Problem is one thing wrong in a document.
type Problem struct {
	Kind Kind
	Line int    // 1-based; 0 when not tied to a line
	Path string // dotted key path with list indexes, e.g. "metrics[0].max"; "" is the document
	// Reason is a ready English phrase without the path, e.g. `unknown key "units" (did you
	// mean "unit"?)` or `expected a number, got "lots"`.
	Reason string

	Key       string   // UnknownKey, Duplicate: the key as written
	Known     []string // UnknownKey: the keys allowed there, sorted
	Suggest   string   // UnknownKey: the known key nearest to Key, if near enough
	FirstLine int      // Duplicate: where the key was given first
	Want      string   // WrongType: what fits, e.g. "a number", "a mapping of keys"
	Got       string   // WrongType, Alias: what was given, e.g. `"lots"`, "a list", "*top"
}

// Parent is the path of the mapping Path is a key of ("" for a top-level key).
func (p Problem) Parent() string { return parent(p.Path) }

// Lines maps the key paths of a document to the line of their key (list items: the line of
// the item; "": the document). It answers "where is this" and "was this given".
type Lines map[string]int

// Line returns the line of path, or of its nearest ancestor that has one.
func (l Lines) Line(path string) int {
	for {
		if n, ok := l[path]; ok {
			return n
		}
		if path == "" {
			return 0
		}
		path = parent(path)
	}
}

// Has reports whether path was given in the document.
func (l Lines) Has(path string) bool { _, ok := l[path]; return ok }

// Document is one YAML document, parsed and ready to decode.
type Document struct {
	// Root is the document's top node (a mapping, usually), nil when the text holds no
	// document at all (empty, or only comments).
	Root *yaml.Node
	// Lines of every key, filled by Parse.
	Lines Lines
	// Next is the line where a second document starts (its "---"), 0 if there is none;
	// Decode reads only the first. NextProblem is that document's syntax error, if any.
	Next        int
	NextProblem *Problem
	// NoAliases makes Decode refuse YAML aliases (*name): each is a problem and its field
	// keeps what it held before.
	NoAliases bool

	data []byte
	keys []keyAt // every key and list item, in document order
}

// keyAt is where one path is given.
type keyAt struct {
	path    string
	key     *yaml.Node // nil for list items and the document
	value   *yaml.Node
	dupOf   int  // line of the first occurrence when this key repeats one, else 0
	badKey  bool // a key that is not a plain scalar
	aliased bool // value is an alias
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// Parse reads the first YAML document of data. A syntax error in it is returned as a Problem
// of kind Syntax. Whether a second document follows is in Document.Next.
func Parse(data []byte) (*Document, *Problem) {
	d := &Document{data: data, Lines: Lines{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return d, nil
		}
		p := syntaxProblem(err)
		return nil, &p
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		d.Next = next.Line
	case !errors.Is(err, io.EOF):
		p := syntaxProblem(err)
		d.Next, d.NextProblem = p.Line, &p
	}
	if len(doc.Content) == 0 {
		return d, nil
	}
	d.Root = doc.Content[0]
	d.index("", nil, d.Root)
	return d, nil
}

func syntaxProblem(err error) Problem {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{Kind: Syntax, Line: line, Reason: m[2]}
	}
	return Problem{Kind: Syntax, Reason: strings.TrimPrefix(msg, "yaml: ")}
}

// IsNull reports whether n is empty: no node, "~", "null" or nothing after the key.
func IsNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// index records the lines of path and everything under n.
func (d *Document) index(path string, key, n *yaml.Node) {
	k := keyAt{path: path, key: key, value: n}
	line := n.Line
	if key != nil {
		line = key.Line
	}
	if first, dup := d.Lines[path]; dup {
		k.dupOf = first
	} else {
		d.Lines[path] = line
	}
	if n.Kind == yaml.AliasNode {
		k.aliased = true
	}
	d.keys = append(d.keys, k)
	if k.dupOf != 0 {
		return // yaml.v3 decodes the later one; its children's lines are the first's
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			if kn.Kind != yaml.ScalarNode {
				d.keys = append(d.keys, keyAt{path: path, key: kn, value: vn, badKey: true})
				continue
			}
			d.index(join(path, kn.Value), kn, vn)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			d.index(fmt.Sprintf("%s[%d]", path, i), nil, c)
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// parent cuts the last key or index off path.
func parent(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

var (
	notFoundRE = regexp.MustCompile("^field (.+) not found in type (.+)$")
	alreadyRE  = regexp.MustCompile("^(?:field (.+) already set in type|mapping key .+ already defined at line)")
	cannotRE   = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into (.+)$")
)

// Decode decodes the document into v (a pointer; fields it already holds stay unless the
// document sets them) with unknown keys refused, and returns every problem found, in line
// order. A field whose value was refused keeps what it held before (a default, or the zero
// value: a pointer stays nil), so the caller's own checks do not judge a made-up value.
func (d *Document) Decode(v any) []Problem {
	var ps []Problem
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		panic("yamlstrict: Decode needs a non-nil pointer")
	}
	target := rv.Elem().Type()
	before := reflect.New(target).Elem()
	before.Set(rv.Elem())
	if d.Root != nil {
		dec := yaml.NewDecoder(bytes.NewReader(d.data))
		dec.KnownFields(true)
		err := dec.Decode(v)
		var te *yaml.TypeError
		switch {
		case err == nil || errors.Is(err, io.EOF):
		case errors.As(err, &te):
			for _, msg := range te.Errors {
				if p, ok := d.translate(target, msg); ok {
					ps = append(ps, p)
				}
			}
		default:
			// A field's UnmarshalYAML failed with a plain error: yaml.v3 stops there.
			if p, ok := d.translate(target, err.Error()); ok {
				ps = append(ps, p)
			}
		}
	}
	ps = append(ps, d.check(target)...)
	for _, p := range ps {
		if p.Kind == WrongType || p.Kind == Alias {
			resetAt(rv.Elem(), before, p.Path)
		}
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
	// One problem a place: yaml.v3 and check may both object to the same value.
	out := ps[:0]
	for i, p := range ps {
		if i > 0 && p.Line == out[len(out)-1].Line && p.Path == out[len(out)-1].Path && p.Kind == out[len(out)-1].Kind {
			continue
		}
		out = append(out, p)
	}
	return out
}

// check finds what yaml.v3 lets through: keys given twice, keys that are not words, aliases
// (when refused), non-finite numbers, fractions where an integer is expected (yaml.v3 cuts
// them) and yes/no/on/off where true or false is (yaml.v3 takes YAML 1.1's words there).
func (d *Document) check(target reflect.Type) []Problem {
	var ps []Problem
	for _, k := range d.keys {
		switch {
		case k.badKey:
			ps = append(ps, Problem{Kind: WrongType, Line: k.key.Line, Path: k.path, Want: "a plain word as key", Got: describe(k.key),
				Reason: "keys must be plain words, got " + describe(k.key)})
			continue
		case k.dupOf != 0:
			key := k.key.Value
			ps = append(ps, Problem{Kind: Duplicate, Line: k.key.Line, Path: k.path, Key: key, FirstLine: k.dupOf,
				Reason: fmt.Sprintf("key %q given twice (first on line %d)", key, k.dupOf)})
			continue
		case k.aliased:
			if d.NoAliases {
				ps = append(ps, Problem{Kind: Alias, Line: k.value.Line, Path: k.path, Got: "*" + k.value.Value,
					Reason: fmt.Sprintf("YAML aliases (*%s) are not supported; write the value out", k.value.Value)})
			}
			continue
		}
		n := k.value
		tag := n.ShortTag()
		if n.Kind != yaml.ScalarNode || (tag != "!!float" && tag != "!!str") {
			continue
		}
		t := typeAt(target, k.path)
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t == nil || isCustom(t) {
			continue
		}
		switch t.Kind() {
		case reflect.Float32, reflect.Float64:
			var f float64
			if tag == "!!float" && n.Decode(&f) == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
				ps = append(ps, Problem{Kind: WrongType, Line: n.Line, Path: k.path, Want: "a finite number", Got: n.Value,
					Reason: "must be a finite number, got " + n.Value})
			}
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			if tag == "!!float" && t != durationType { // yaml.v3 would cut 1.5 to 1
				ps = append(ps, Problem{Kind: WrongType, Line: n.Line, Path: k.path, Want: "an integer", Got: strconv.Quote(n.Value),
					Reason: "expected an integer, got " + strconv.Quote(n.Value)})
			}
		case reflect.Bool:
			if tag == "!!str" { // yaml.v3 would take YAML 1.1's yes, no, on, off
				ps = append(ps, Problem{Kind: WrongType, Line: n.Line, Path: k.path, Want: "true or false", Got: strconv.Quote(n.Value),
					Reason: "expected true or false, got " + strconv.Quote(n.Value)})
			}
		}
	}
	return ps
}

// translate turns one of yaml.v3's messages into a Problem; ok is false for the ones check
// reports better (keys given twice).
func (d *Document) translate(target reflect.Type, msg string) (Problem, bool) {
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if alreadyRE.MatchString(msg) {
		return Problem{}, false
	}
	if m := notFoundRE.FindStringSubmatch(msg); m != nil {
		key := m[1]
		path := key
		for _, k := range d.keys {
			if k.key != nil && k.key.Line == line && k.key.Value == key && !k.badKey {
				path = k.path
				break
			}
		}
		p := Problem{Kind: UnknownKey, Line: line, Path: path, Key: key, Known: KnownKeys(typeAt(target, parent(path)))}
		p.Suggest = Nearest(key, p.Known, 2)
		p.Reason = fmt.Sprintf("unknown key %q", key)
		switch {
		case p.Suggest != "":
			p.Reason += fmt.Sprintf(" (did you mean %q?)", p.Suggest)
		case len(p.Known) > 0:
			p.Reason += " (known keys: " + strings.Join(p.Known, ", ") + ")"
		}
		return p, true
	}
	if m := cannotRE.FindStringSubmatch(msg); m != nil {
		k := d.valueAt(line, func(n *yaml.Node) bool {
			return n.ShortTag() == m[1] && (m[2] == "" || strings.HasPrefix(n.Value, strings.TrimSuffix(m[2], "...")))
		})
		p := Problem{Kind: WrongType, Line: line, Want: wantName(typeAt(target, k.path), m[3])}
		if k.value != nil {
			p.Path, p.Got = k.path, describe(k.value)
		} else {
			p.Got = m[1]
			if m[2] != "" {
				p.Got = strconv.Quote(m[2])
			}
		}
		p.Reason = fmt.Sprintf("expected %s, got %s", p.Want, p.Got)
		return p, true
	}
	// A field's own UnmarshalYAML: its message as it is, on the value it names.
	k := d.valueAt(line, func(n *yaml.Node) bool {
		return n.Kind == yaml.ScalarNode && strings.Contains(msg, strconv.Quote(n.Value))
	})
	return Problem{Kind: WrongType, Line: line, Path: k.path, Reason: msg, Got: describe(k.value)}, true
}

// valueAt finds the value on line that match prefers (else the first value on line).
func (d *Document) valueAt(line int, match func(*yaml.Node) bool) keyAt {
	var first keyAt
	found := false
	for _, k := range d.keys {
		if k.badKey || k.dupOf != 0 || k.value == nil || k.value.Line != line {
			continue
		}
		if match(k.value) {
			return k
		}
		if !found {
			first, found = k, true
		}
	}
	return first
}

// describe names what a node holds, for "got …".
func describe(n *yaml.Node) string {
	switch {
	case n == nil:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.AliasNode:
		return "an alias"
	case IsNull(n):
		return "nothing"
	}
	return strconv.Quote(n.Value)
}

var durationType = reflect.TypeFor[time.Duration]()

// wantName says in words what fits type t (goName is yaml.v3's name for it, when t is unknown).
func wantName(t reflect.Type, goName string) string {
	if t == nil {
		switch {
		case goName == "time.Duration":
			return "a duration such as 30s, 10m, 1h30m"
		case strings.HasPrefix(goName, "[]"):
			return "a list"
		case strings.HasPrefix(goName, "map["):
			return "a mapping"
		case strings.HasPrefix(goName, "float"):
			return "a number"
		case strings.HasPrefix(goName, "int"), strings.HasPrefix(goName, "uint"):
			return "an integer"
		case goName == "bool":
			return "true or false"
		case goName == "string":
			return "a string"
		}
		return "a mapping of keys"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == durationType {
		return "a duration such as 30s, 10m, 1h30m"
	}
	switch t.Kind() {
	case reflect.Struct:
		return "a mapping of keys"
	case reflect.Map:
		return "a mapping"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	}
	return "a " + t.String()
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// isCustom reports a type that decodes itself.
func isCustom(t reflect.Type) bool {
	return t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType)
}

// segments splits "a.b[2].c" into "a", "b", "[2]", "c".
func segments(path string) []string {
	var out []string
	for _, part := range strings.Split(path, ".") {
		if part == "" {
			continue
		}
		name, rest, _ := strings.Cut(part, "[")
		if name != "" {
			out = append(out, name)
		}
		for rest != "" {
			idx, after, _ := strings.Cut(rest, "]")
			out = append(out, "["+idx+"]")
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return out
}

// field finds the struct field of t that key decodes into (yaml tags, as yaml.v3 reads them,
// inline structs included).
func field(t reflect.Type, key string) (reflect.StructField, []int, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if strings.Contains(","+opts+",", ",inline,") && f.Type.Kind() == reflect.Struct {
			if sf, idx, ok := field(f.Type, key); ok {
				return sf, append([]int{i}, idx...), true
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if name == key {
			return f, []int{i}, true
		}
	}
	return reflect.StructField{}, nil, false
}

// typeAt is the Go type path decodes into, or nil when it cannot be told.
func typeAt(t reflect.Type, path string) reflect.Type {
	for _, s := range segments(path) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch {
		case strings.HasPrefix(s, "["):
			if t.Kind() != reflect.Slice && t.Kind() != reflect.Array {
				return nil
			}
			t = t.Elem()
		case t.Kind() == reflect.Map:
			t = t.Elem()
		case t.Kind() == reflect.Struct && !isCustom(t):
			f, _, ok := field(t, s)
			if !ok {
				return nil
			}
			t = f.Type
		default:
			return nil
		}
	}
	return t
}

// KnownKeys lists the keys a mapping decoded into t accepts, sorted; nil when t is not a
// struct that yaml.v3 decodes field by field.
func KnownKeys(t reflect.Type) []string {
	if t == nil {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || isCustom(t) {
		return nil
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if strings.Contains(","+opts+",", ",inline,") && f.Type.Kind() == reflect.Struct {
			out = append(out, KnownKeys(f.Type)...)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// resetAt sets the value at path inside v back to what it is in before (the zero value where
// before has nothing there), where it can be reached: not inside a map, whose values cannot be
// set in place.
func resetAt(v, before reflect.Value, path string) {
	segs := segments(path)
	if len(segs) == 0 {
		return
	}
	for _, s := range segs {
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return
			}
			v = v.Elem()
			if before.IsValid() {
				if before.IsNil() {
					before = reflect.Value{}
				} else {
					before = before.Elem()
				}
			}
		}
		switch {
		case strings.HasPrefix(s, "["):
			i, err := strconv.Atoi(strings.Trim(s, "[]"))
			if err != nil || (v.Kind() != reflect.Slice && v.Kind() != reflect.Array) || i < 0 || i >= v.Len() {
				return
			}
			v = v.Index(i)
			if before.IsValid() && i < before.Len() {
				before = before.Index(i)
			} else {
				before = reflect.Value{}
			}
		case v.Kind() == reflect.Struct:
			_, idx, ok := field(v.Type(), s)
			if !ok {
				return
			}
			v = v.FieldByIndex(idx)
			if before.IsValid() {
				before = before.FieldByIndex(idx)
			}
		default:
			return
		}
	}
	switch {
	case !v.CanSet():
	case before.IsValid():
		v.Set(before)
	default:
		v.SetZero()
	}
}

// TypeAt is the Go type that path (as in Problem.Path) decodes into inside a t, or nil when it
// cannot be told (a custom decoder, a key t does not have).
func TypeAt(t reflect.Type, path string) reflect.Type { return typeAt(t, path) }

// Nearest returns the candidate closest to s by edit distance, if at most maxDist edits away
// (ties: the first in candidates).
func Nearest(s string, candidates []string, maxDist int) string {
	best, bestD := "", maxDist+1
	for _, c := range candidates {
		if d := distance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// distance is the Levenshtein edit distance between a and b, in runes.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		return 64
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
