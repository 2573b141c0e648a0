package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts every environment override.
const EnvPrefix = "OFFSITE_"

// Load reads path (may be "" for defaults only), applies environment overrides from environ
// (os.Environ() form) and validates. The returned error is an *Error listing every problem.
func Load(path string, environ []string) (Config, error) {
	cfg := Default()
	var data []byte
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		data = b
	}
	return parse(cfg, filepath.Base(path), data, environ)
}

// Parse is Load for bytes; name labels errors (usually the file name).
func Parse(name string, data []byte, environ []string) (Config, error) {
	return parse(Default(), name, data, environ)
}

func parse(cfg Config, name string, data []byte, environ []string) (Config, error) {
	var problems []Problem
	sources := map[string]string{} // key → where its value came from

	if len(bytes.TrimSpace(data)) > 0 {
		var doc yaml.Node
		dec := yaml.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
			return cfg, &Error{Problems: []Problem{{Where: name, Key: "(file)", Reason: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}}
		}
		if len(doc.Content) == 1 && !(doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null") {
			root := doc.Content[0]
			if root.Kind != yaml.MappingNode {
				return cfg, &Error{Problems: []Problem{{Where: fmt.Sprintf("%s:%d", name, root.Line), Key: "(file)", Reason: "the top level must be a mapping of keys"}}}
			}
			walk(name, "", root, reflect.ValueOf(&cfg).Elem(), sources, &problems)
		}
	}

	leaves := leafKeys(reflect.TypeOf(cfg), "")
	byEnv := map[string]string{}
	for _, k := range leaves {
		byEnv[EnvName(k)] = k
	}
	for _, kv := range environ {
		envKey, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(envKey, EnvPrefix) || strings.HasPrefix(envKey, EnvPrefix+"TEST_") {
			continue
		}
		key, known := byEnv[envKey]
		if !known {
			problems = append(problems, Problem{Where: "env " + envKey, Key: envKey, Reason: "unknown setting" + suggestEnv(envKey, byEnv)})
			continue
		}
		field := fieldByPath(reflect.ValueOf(&cfg).Elem(), key)
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(val), &n); err != nil || len(n.Content) == 0 {
			n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: val}
		} else {
			n = *n.Content[0]
		}
		if field.Kind() == reflect.String {
			// A string setting takes the variable verbatim, even if it looks like YAML.
			n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: val}
		}
		if err := decodeLeaf(&n, field); err != nil {
			problems = append(problems, Problem{Where: "env " + envKey, Key: key, Reason: err.Error()})
			continue
		}
		sources[key] = "env " + envKey
	}

	where := func(key string) string {
		if s, ok := sources[key]; ok {
			return s
		}
		return "default"
	}
	problems = append(problems, cfg.validate(where)...)
	if len(problems) > 0 {
		return cfg, &Error{Problems: problems}
	}
	return cfg, nil
}

// EnvName is the environment variable that overrides key.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Keys lists every leaf key of the configuration in dotted form.
func Keys() []string { return leafKeys(reflect.TypeOf(Config{}), "") }

var durationType = reflect.TypeOf(time.Duration(0))

func isLeaf(t reflect.Type) bool {
	return t.Kind() != reflect.Struct || t == durationType
}

// isStructList reports a list of sections (uplinks, webhooks): walked item by item so an
// unknown key inside an item is reported with its line like anywhere else.
func isStructList(t reflect.Type) bool {
	return t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct && t.Elem() != durationType
}

func leafKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := yamlName(f)
		if tag == "" {
			continue
		}
		k := join(prefix, tag)
		if isLeaf(f.Type) {
			out = append(out, k)
		} else {
			out = append(out, leafKeys(f.Type, k)...)
		}
	}
	return out
}

func yamlName(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	return name
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

func fieldByPath(v reflect.Value, key string) reflect.Value {
	for _, part := range strings.Split(key, ".") {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			if yamlName(t.Field(i)) == part {
				v = v.Field(i)
				break
			}
		}
	}
	return v
}

// walk decodes a mapping node into struct v, reporting unknown keys and bad values with line.
func walk(file, prefix string, node *yaml.Node, v reflect.Value, sources map[string]string, problems *[]Problem) {
	t := v.Type()
	fields := map[string]int{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		if n := yamlName(t.Field(i)); n != "" {
			fields[n] = i
			names = append(names, n)
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		kn, vn := node.Content[i], node.Content[i+1]
		key := join(prefix, kn.Value)
		where := fmt.Sprintf("%s:%d", file, kn.Line)
		if prev, dup := seen[kn.Value]; dup {
			*problems = append(*problems, Problem{Where: where, Key: key, Reason: fmt.Sprintf("given twice (first on line %d)", prev)})
			continue
		}
		seen[kn.Value] = kn.Line
		idx, ok := fields[kn.Value]
		if !ok {
			*problems = append(*problems, Problem{Where: where, Key: key, Reason: "unknown key" + suggest(kn.Value, names)})
			continue
		}
		fv := v.Field(idx)
		if isStructList(fv.Type()) && vn.Kind == yaml.SequenceNode {
			list := reflect.MakeSlice(fv.Type(), 0, len(vn.Content))
			for j, item := range vn.Content {
				ikey := fmt.Sprintf("%s[%d]", key, j)
				if item.Kind != yaml.MappingNode {
					*problems = append(*problems, Problem{Where: fmt.Sprintf("%s:%d", file, item.Line), Key: ikey, Reason: "each item must be a mapping of keys"})
					continue
				}
				elem := reflect.New(fv.Type().Elem()).Elem()
				walk(file, ikey, item, elem, sources, problems)
				list = reflect.Append(list, elem)
			}
			fv.Set(list)
			sources[key] = fmt.Sprintf("%s:%d", file, vn.Line)
			continue
		}
		if isLeaf(fv.Type()) {
			if err := decodeLeaf(vn, fv); err != nil {
				*problems = append(*problems, Problem{Where: fmt.Sprintf("%s:%d", file, vn.Line), Key: key, Reason: err.Error()})
				continue
			}
			sources[key] = fmt.Sprintf("%s:%d", file, vn.Line)
			continue
		}
		if vn.Kind == yaml.ScalarNode && vn.Tag == "!!null" {
			continue // "http:" with nothing under it keeps the defaults
		}
		if vn.Kind != yaml.MappingNode {
			*problems = append(*problems, Problem{Where: fmt.Sprintf("%s:%d", file, vn.Line), Key: key, Reason: "must be a mapping of keys"})
			continue
		}
		walk(file, key, vn, fv, sources, problems)
	}
}

func decodeLeaf(n *yaml.Node, fv reflect.Value) error {
	if n.Kind == yaml.MappingNode && fv.Kind() != reflect.Map {
		return errors.New("must be a single value, not a mapping")
	}
	tmp := reflect.New(fv.Type())
	var err error
	if fv.Kind() == reflect.Map {
		// A mapping of named sections (rules.schedules): decode strictly so a misspelt key
		// inside an entry is still an error.
		var b []byte
		if b, err = yaml.Marshal(n); err == nil {
			dec := yaml.NewDecoder(bytes.NewReader(b))
			dec.KnownFields(true)
			err = dec.Decode(tmp.Interface())
		}
	} else {
		err = n.Decode(tmp.Interface())
	}
	if err != nil {
		msg := err.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 && strings.HasPrefix(msg, "yaml:") {
			msg = msg[i+2:]
		}
		return fmt.Errorf("%s (expected %s)", msg, typeName(fv.Type()))
	}
	fv.Set(tmp.Elem())
	return nil
}

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration such as 30s or 10m"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.Int:
		return "a whole number"
	case t.Kind() == reflect.Slice:
		return "a list"
	default:
		return "a " + t.Kind().String()
	}
}

func suggest(got string, names []string) string {
	best, bestD := "", 4
	for _, n := range names {
		if d := distance(got, n); d < bestD {
			best, bestD = n, d
		}
	}
	if best == "" {
		sort.Strings(names)
		return "; known keys here: " + strings.Join(names, ", ")
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func suggestEnv(got string, byEnv map[string]string) string {
	best, bestD := "", 4
	for n := range byEnv {
		if d := distance(got, n); d < bestD || (d == bestD && n < best) {
			best, bestD = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// distance is the Levenshtein edit distance.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
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
