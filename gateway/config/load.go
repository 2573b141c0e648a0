package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/offsite-gw/offsite/internal/yamlstrict"
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
	var lines yamlstrict.Lines
	sources := map[string]string{} // key → the environment variable that set it

	if len(bytes.TrimSpace(data)) > 0 {
		doc, syn := yamlstrict.Parse(data)
		if syn != nil {
			return cfg, &Error{Problems: []Problem{{Where: at(name, syn.Line), Key: "(file)", Reason: "not valid YAML: " + syn.Reason}}}
		}
		if doc.Root != nil && !yamlstrict.IsNull(doc.Root) {
			if doc.Root.Kind != yaml.MappingNode {
				return cfg, &Error{Problems: []Problem{{Where: at(name, doc.Root.Line), Key: "(file)", Reason: "the top level must be a mapping of keys"}}}
			}
			lines = doc.Lines
			for _, p := range doc.Decode(&cfg) {
				problems = append(problems, Problem{Where: at(name, p.Line), Key: keyOf(p), Reason: reason(p)})
			}
		}
	}

	leaves := leafKeys(reflect.TypeOf(cfg), "")
	byEnv := map[string]string{}
	envNames := make([]string, 0, len(leaves))
	for _, k := range leaves {
		byEnv[EnvName(k)] = k
		envNames = append(envNames, EnvName(k))
	}
	sort.Strings(envNames)
	for _, kv := range environ {
		envKey, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(envKey, EnvPrefix) || strings.HasPrefix(envKey, EnvPrefix+"TEST_") {
			continue
		}
		key, known := byEnv[envKey]
		if !known {
			reason := "unknown setting"
			if s := yamlstrict.Nearest(envKey, envNames, 3); s != "" {
				reason += fmt.Sprintf(" (did you mean %s?)", s)
			}
			problems = append(problems, Problem{Where: "env " + envKey, Key: envKey, Reason: reason})
			continue
		}
		ps, err := override(&cfg, key, val)
		if err != nil {
			problems = append(problems, Problem{Where: "env " + envKey, Key: key, Reason: err.Error()})
			continue
		}
		for _, p := range ps {
			problems = append(problems, Problem{Where: "env " + envKey, Key: key, Reason: reason(p)})
		}
		if len(ps) == 0 {
			sources[key] = "env " + envKey
		}
	}

	where := func(key string) string {
		if s, ok := sources[key]; ok {
			return s
		}
		if lines.Has(key) {
			return at(name, lines.Line(key))
		}
		return "default"
	}
	problems = append(problems, cfg.validate(where)...)
	if len(problems) > 0 {
		return cfg, &Error{Problems: problems}
	}
	return cfg, nil
}

// override sets key from an environment value: the value is read as YAML (a list, a number,
// a duration…) except for string settings, which take it verbatim, and decoded with the same
// strict decoder as the file, as if the file said "key: value".
func override(cfg *Config, key, val string) ([]yamlstrict.Problem, error) {
	var leaf yaml.Node
	var doc yaml.Node
	t := yamlstrict.TypeAt(reflect.TypeOf(*cfg), key)
	if err := yaml.Unmarshal([]byte(val), &doc); err != nil || len(doc.Content) == 0 || (t != nil && t.Kind() == reflect.String) {
		leaf = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: val, Style: yaml.DoubleQuotedStyle}
	} else {
		leaf = *doc.Content[0]
	}
	root := &leaf
	parts := strings.Split(key, ".")
	for i := len(parts) - 1; i >= 0; i-- {
		root = &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: parts[i]}, root}}
	}
	b, err := yaml.Marshal(root)
	if err != nil {
		return nil, fmt.Errorf("cannot be read: %w", err)
	}
	d, syn := yamlstrict.Parse(b)
	if syn != nil {
		return []yamlstrict.Problem{*syn}, nil
	}
	return d.Decode(cfg), nil
}

func at(file string, line int) string {
	if line <= 0 {
		return file
	}
	return fmt.Sprintf("%s:%d", file, line)
}

func keyOf(p yamlstrict.Problem) string {
	if p.Path == "" {
		return "(file)"
	}
	return p.Path
}

// reason words a decoding problem for Problem.Reason (the key is printed before it).
func reason(p yamlstrict.Problem) string {
	switch p.Kind {
	case yamlstrict.Syntax:
		return "not valid YAML: " + p.Reason
	case yamlstrict.UnknownKey:
		// Configuration keys are longer than a profile's: a suggestion may be 3 edits away.
		switch s := yamlstrict.Nearest(p.Key, p.Known, 3); {
		case s != "":
			return fmt.Sprintf("unknown key (did you mean %q?)", s)
		case len(p.Known) > 0:
			return "unknown key; known keys here: " + strings.Join(p.Known, ", ")
		}
		return "unknown key"
	case yamlstrict.Duplicate:
		return fmt.Sprintf("given twice (first on line %d)", p.FirstLine)
	case yamlstrict.WrongType:
		if p.Want == "a mapping of keys" {
			return "must be a mapping of keys, got " + p.Got
		}
	}
	return p.Reason
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
