package profiles

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/offsite-gw/offsite/internal/yamlstrict"
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

func parse(name string, data []byte) (p Profile, errs []error) {
	w := &walker{file: name}
	doc, syn := yamlstrict.Parse(data)
	if syn != nil {
		return Profile{}, []error{w.problem(*syn)}
	}
	if doc.Root == nil {
		return Profile{}, []error{&LoadError{File: name, Msg: "empty file: a profile needs at least id, name, kind, vendor and firmware"}}
	}
	if doc.NextProblem != nil {
		w.errs = append(w.errs, w.problem(*doc.NextProblem))
	} else if doc.Next > 0 {
		w.errAt(doc.Next, "only one profile per file: found a second YAML document")
	}
	w.lines = doc.Lines
	root := doc.Root
	if yamlstrict.IsNull(root) {
		w.errAt(root.Line, "empty document: a profile needs at least id, name, kind, vendor and firmware")
		return Profile{}, w.errs
	}
	if root.Kind != yaml.MappingNode {
		w.errAt(root.Line, "a profile must be a mapping of keys (id, name, kind, …), got %s", kindOf(root))
		return Profile{}, w.errs
	}
	// Aliases are refused: a profile is read by people, who should see each value where it
	// applies.
	doc.NoAliases = true
	for _, pr := range doc.Decode(&p) {
		w.errs = append(w.errs, w.problem(pr))
	}
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

// walker collects the problems of one profile file, each with its line. lines maps a path such
// as "metrics[2].max" to the line of its key; it is also how "was this key given" is answered.
type walker struct {
	file  string
	errs  []error
	lines yamlstrict.Lines
}

func (w *walker) errAt(line int, format string, args ...any) {
	w.errs = append(w.errs, &LoadError{File: w.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// problem words a decoding problem the way the rest of the profile errors read.
func (w *walker) problem(p yamlstrict.Problem) error {
	where := p.Path
	switch p.Kind {
	case yamlstrict.Syntax:
		return &LoadError{File: w.file, Line: p.Line, Msg: "invalid YAML: " + p.Reason}
	case yamlstrict.UnknownKey, yamlstrict.Duplicate:
		where = p.Parent()
		if where == "" {
			where = "profile"
		}
	case yamlstrict.Alias:
		return &LoadError{File: w.file, Line: p.Line, Msg: fmt.Sprintf("%s: YAML aliases (%s) are not supported in profiles; write the value out", where, p.Got)}
	}
	if where == "" {
		where = "profile"
	}
	return &LoadError{File: w.file, Line: p.Line, Msg: where + ": " + p.Reason}
}

// line returns the line of path, or of its nearest ancestor that has one.
func (w *walker) line(path string) int { return w.lines.Line(path) }

func (w *walker) has(path string) bool { return w.lines.Has(path) }

func kindOf(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return fmt.Sprintf("%q", n.Value)
}
