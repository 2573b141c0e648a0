package profiles

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// LoadError is one problem in one profile file. Error() reads "FILE:LINE: reason", e.g.
// `dust-noise.yml:14: metric "pm10": max (50) must be greater than min (100)`.
type LoadError struct {
	File string
	Line int // 0 when the problem is not tied to a line (unreadable file, empty file)
	Msg  string
}

func (e *LoadError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Parse reads one profile from data. name is used in errors and as the profile's Source.
// A non-nil error joins one *LoadError per problem found (errors.Join), so a maintainer sees
// them all at once; use Errors to list them.
func Parse(name string, data []byte) (Profile, error) {
	p, errs := parse(name, data)
	if len(errs) > 0 {
		return Profile{}, errors.Join(errs...)
	}
	return p, nil
}

// LoadFile reads and validates one profile file.
func LoadFile(path string) (Profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Profile{}, &LoadError{File: path, Msg: err.Error()}
	}
	return Parse(path, data)
}

// LoadDir reads and validates every *.yml and *.yaml file directly in dir (hidden files and
// subfolders are skipped), sorted by id. Two files with the same id are an error naming both.
func LoadDir(dir string) ([]Profile, error) {
	ps, errs := loadDir(dir)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return ps, nil
}

// ValidateDir checks every profile file in dir and returns all problems of all files, one
// error per problem (each a *LoadError), in file order. It is what `offsite profiles validate
// DIR` prints. An empty result means the folder is good.
func ValidateDir(dir string) []error {
	ps, errs := loadDir(dir)
	if len(ps) == 0 && len(errs) == 0 {
		// Most likely the wrong folder; "all valid" would mislead.
		return []error{&LoadError{File: dir, Msg: "no profile files (*.yml, *.yaml) in this folder"}}
	}
	return errs
}

// Errors lists the individual errors inside an error returned by this package (which joins
// them), or err itself.
func Errors(err error) []error {
	if err == nil {
		return nil
	}
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		return joined.Unwrap()
	}
	return []error{err}
}

func loadDir(dir string) ([]Profile, []error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, []error{&LoadError{File: dir, Msg: err.Error()}}
	}
	var (
		out  []Profile
		errs []error
	)
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !isProfileFile(name) {
			continue
		}
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, &LoadError{File: path, Msg: err.Error()})
			continue
		}
		p, perrs := parse(path, data)
		if len(perrs) > 0 {
			errs = append(errs, perrs...)
			continue
		}
		out = append(out, p)
	}
	out, derrs := checkDuplicates(out)
	errs = append(errs, derrs...)
	return out, errs
}

func isProfileFile(name string) bool {
	return strings.HasSuffix(name, ".yml") || strings.HasSuffix(name, ".yaml")
}

// checkDuplicates sorts ps by id and reports ids defined twice, naming both files.
func checkDuplicates(ps []Profile) ([]Profile, []error) {
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].ID < ps[j].ID })
	var errs []error
	out := ps[:0]
	for i, p := range ps {
		if i > 0 && ps[i-1].ID == p.ID {
			errs = append(errs, &LoadError{File: p.Source, Line: p.idLine,
				Msg: fmt.Sprintf("duplicate profile id %q: already defined in %s:%d", p.ID, ps[i-1].Source, ps[i-1].idLine)})
			continue
		}
		out = append(out, p)
	}
	return out, errs
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func parse(name string, data []byte) (p Profile, errs []error) {
	w := &walker{file: name, lines: map[string]int{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return Profile{}, []error{&LoadError{File: name, Msg: "empty file: a profile needs at least id, name, kind, vendor and firmware"}}
		}
		return Profile{}, []error{w.yamlError(err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		w.errAt(extra.Line, "only one profile per file: found a second YAML document")
	} else if !errors.Is(err, io.EOF) {
		w.errs = append(w.errs, w.yamlError(err))
	}
	if len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
		w.errAt(doc.Line, "empty document: a profile needs at least id, name, kind, vendor and firmware")
		return Profile{}, w.errs
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		w.errAt(root.Line, "a profile must be a mapping of keys (id, name, kind, …), got %s", nodeKind(root))
		return Profile{}, w.errs
	}
	w.lines[""] = root.Line
	w.decode(root, reflect.ValueOf(&p).Elem(), "")
	p.Source = name
	p.idLine = w.line("id")
	w.validate(&p)
	if len(w.errs) > 0 {
		sort.SliceStable(w.errs, func(i, j int) bool {
			return w.errs[i].(*LoadError).Line < w.errs[j].(*LoadError).Line
		})
		return Profile{}, w.errs
	}
	return p, nil
}

// walker decodes a yaml.Node tree into a Profile by hand so that every problem — unknown key,
// wrong type, failed rule — carries the line it is on. lines maps a path such as
// "metrics[2].max" to the line of its key; it is also how "was this key given" is answered.
type walker struct {
	file  string
	errs  []error
	lines map[string]int
}

func (w *walker) errAt(line int, format string, args ...any) {
	w.errs = append(w.errs, &LoadError{File: w.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (w *walker) yamlError(err error) error {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &LoadError{File: w.file, Line: line, Msg: "invalid YAML: " + m[2]}
	}
	return &LoadError{File: w.file, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// line returns the line of path, or of its nearest ancestor that has one.
func (w *walker) line(path string) int {
	for {
		if l, ok := w.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return w.lines[""]
		}
		path = path[:i]
	}
}

func (w *walker) has(path string) bool { _, ok := w.lines[path]; return ok }

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Tag == "!!null" {
		return "nothing"
	}
	return strconv.Quote(n.Value)
}

var durationType = reflect.TypeFor[Duration]()

// decode fills v from n, recording lines and collecting errors; it never stops at the first.
func (w *walker) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		w.errAt(n.Line, "%s: YAML aliases (*%s) are not supported in profiles; write the value out", path, n.Value)
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // zero value; required-key checks report it if it matters
	}
	if v.Type() == durationType {
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			w.errAt(n.Line, "%s: expected a duration such as 30s, 10m, 1h30m, got %s", path, nodeKind(n))
			return
		}
		d, err := ParseDuration(n.Value)
		if err != nil {
			w.errAt(n.Line, "%s: %v", path, err)
			return
		}
		v.Set(reflect.ValueOf(d))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		e := reflect.New(v.Type().Elem())
		before := len(w.errs)
		w.decode(n, e.Elem(), path)
		if len(w.errs) == before || v.Type().Elem().Kind() == reflect.Struct {
			// A scalar that failed to decode stays nil, so later checks do not judge a
			// made-up zero; a struct keeps what did decode, for its own checks.
			v.Set(e)
		}
	case reflect.Struct:
		w.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.errAt(n.Line, "%s: expected a list, got %s", path, nodeKind(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			w.lines[p] = c.Line
			w.decode(c, s.Index(i), p)
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			w.errAt(n.Line, "%s: expected a string, got %s", path, nodeKind(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		var i int
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil {
			w.errAt(n.Line, "%s: expected an integer, got %s", path, nodeKind(n))
			return
		}
		v.SetInt(int64(i))
	case reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || n.Decode(&f) != nil {
			w.errAt(n.Line, "%s: expected a number, got %s", path, nodeKind(n))
			return
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			w.errAt(n.Line, "%s: must be a finite number, got %s", path, n.Value)
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
			w.errAt(n.Line, "%s: expected true or false, got %s", path, nodeKind(n))
			return
		}
		v.SetBool(b)
	default:
		panic("profiles: no YAML decoding for " + v.Type().String())
	}
}

func (w *walker) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	where := path
	if where == "" {
		where = "profile"
	}
	if n.Kind != yaml.MappingNode {
		w.errAt(n.Line, "%s: expected a mapping of keys, got %s", where, nodeKind(n))
		return
	}
	t := v.Type()
	var known []string
	fieldByKey := map[string]int{}
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		known = append(known, tag)
		fieldByKey[tag] = i
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			w.errAt(k.Line, "%s: keys must be plain words, got %s", where, nodeKind(k))
			continue
		}
		key := k.Value
		if first, dup := seen[key]; dup {
			w.errAt(k.Line, "%s: key %q given twice (first on line %d)", where, key, first)
			continue
		}
		seen[key] = k.Line
		fi, ok := fieldByKey[key]
		if !ok {
			msg := fmt.Sprintf("%s: unknown key %q", where, key)
			if s := closest(key, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += " (known keys: " + strings.Join(known, ", ") + ")"
			}
			w.errAt(k.Line, "%s", msg)
			continue
		}
		p := key
		if path != "" {
			p = path + "." + key
		}
		w.lines[p] = k.Line
		w.decode(val, v.Field(fi), p)
	}
}

// closest suggests the known key nearest to a misspelt one, if any is near enough.
func closest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
