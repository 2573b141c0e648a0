package yamlstrict_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/internal/yamlstrict"
)

type item struct {
	Name  string   `yaml:"name"`
	Limit *float64 `yaml:"limit"`
	Count int      `yaml:"count"`
}

type doc struct {
	Title   string        `yaml:"title"`
	Timeout time.Duration `yaml:"timeout"`
	Items   []item        `yaml:"items"`
	Named   map[string]item
	Inner   struct {
		On bool `yaml:"on"`
	} `yaml:"inner"`
}

func decode(t *testing.T, src string, v any) ([]string, yamlstrict.Lines) {
	t.Helper()
	d, syn := yamlstrict.Parse([]byte(src))
	require.Nil(t, syn)
	var out []string
	for _, p := range d.Decode(v) {
		out = append(out, fmt.Sprintf("%d %s: %s", p.Line, p.Path, p.Reason))
	}
	return out, d.Lines
}

func TestEveryProblemWithLineAndPath(t *testing.T) {
	src := `title: t
timeout: forever
items:
  - name: a
    limt: 3
    limit: lots
  - name: b
    count: 1.5
    name: c
inner: {on: yes}
named:
  x: {nme: 1}
extra: 1
`
	v := doc{Timeout: time.Minute}
	got, lines := decode(t, src, &v)
	require.Equal(t, []string{
		`2 timeout: expected a duration such as 30s, 10m, 1h30m, got "forever"`,
		`5 items[0].limt: unknown key "limt" (did you mean "limit"?)`,
		`6 items[0].limit: expected a number, got "lots"`,
		`8 items[1].count: expected an integer, got "1.5"`,
		`9 items[1].name: key "name" given twice (first on line 7)`,
		`10 inner.on: expected true or false, got "yes"`,
		`12 named.x.nme: unknown key "nme" (did you mean "name"?)`,
		`13 extra: unknown key "extra" (known keys: inner, items, named, timeout, title)`,
	}, got)
	require.Equal(t, time.Minute, v.Timeout, "a refused value keeps what was there")
	require.Nil(t, v.Items[0].Limit, "a refused pointer stays nil")
	require.Equal(t, 4, lines.Line("items[0].nothing"), "the nearest ancestor: the item")
	require.Equal(t, 7, lines.Line("items[1].name"))
	require.True(t, lines.Has("items[1].count"))
	require.False(t, lines.Has("items[1].limit"))
}

func TestAliasesAndNonFiniteNumbers(t *testing.T) {
	src := "items:\n  - {name: &n a, limit: .inf}\n  - {name: *n}\n"
	var v doc
	got, _ := decode(t, src, &v)
	require.Equal(t, []string{`2 items[0].limit: must be a finite number, got .inf`}, got, "aliases are allowed unless refused")
	require.Equal(t, "a", v.Items[1].Name)

	d, _ := yamlstrict.Parse([]byte(src))
	d.NoAliases = true
	v = doc{}
	ps := d.Decode(&v)
	require.Len(t, ps, 2)
	require.Equal(t, yamlstrict.Alias, ps[1].Kind)
	require.Equal(t, "items[1].name", ps[1].Path)
	require.Equal(t, "*n", ps[1].Got)
	require.Empty(t, v.Items[1].Name)
}

func TestSyntaxAndEmpty(t *testing.T) {
	_, syn := yamlstrict.Parse([]byte("a: 1\n\tb: 2\n"))
	require.NotNil(t, syn)
	require.Equal(t, yamlstrict.Syntax, syn.Kind)
	require.Equal(t, 2, syn.Line)
	require.Contains(t, syn.Reason, "tab")

	for _, src := range []string{"", "# nothing\n"} {
		d, syn := yamlstrict.Parse([]byte(src))
		require.Nil(t, syn)
		require.Nil(t, d.Root)
		var v doc
		require.Empty(t, d.Decode(&v))
	}
	d, _ := yamlstrict.Parse([]byte("a: 1\n---\nb: 2\n"))
	require.Equal(t, 2, d.Next, "the line of ---")
	require.Nil(t, d.NextProblem)
	d, _ = yamlstrict.Parse([]byte("a: 1\n"))
	require.Zero(t, d.Next)
	d, _ = yamlstrict.Parse([]byte("a: 1\n---\nb: [\n"))
	require.NotNil(t, d.NextProblem)
}

// FuzzDecode: any input gives problems with a reason (and a line when tied to one), never a
// panic, and the lines of a good document are those of its keys.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{"title: t\nitems:\n  - {name: a, limit: 1}\n", "items: [{limit: x}]", "a: &x [*x]", "- 1", "~", "named: {a: {count: 1.5}}", "inner: 5"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, syn := yamlstrict.Parse(data)
		if syn != nil {
			if syn.Reason == "" {
				t.Fatalf("syntax problem without reason")
			}
			return
		}
		d.NoAliases = strings.Contains(string(data), "x")
		var v doc
		for _, p := range d.Decode(&v) {
			if p.Reason == "" {
				t.Fatalf("problem without reason: %#v", p)
			}
		}
	})
}
