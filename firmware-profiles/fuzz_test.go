package profiles_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	profiles "github.com/offsite-gw/offsite/firmware-profiles"
	"github.com/offsite-gw/offsite/ingest/decode"
)

// FuzzLoadProfile parses arbitrary YAML as a profile. It must not panic; every error must be
// a *LoadError naming the file; and whatever is accepted must be usable: a sensor profile
// gets a decoder, a camera profile builds its main URL.
func FuzzLoadProfile(f *testing.F) {
	files, err := filepath.Glob("builtin/*.yml")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{baseSensor, baseBinary, baseCamera, "", "---\n---\n", "a: &x [*x]", "id: [", "\t", "~", "- 1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := profiles.Parse("fuzz.yml", data)
		if err != nil {
			for _, e := range profiles.Errors(err) {
				var le *profiles.LoadError
				if !errors.As(e, &le) || le.File != "fuzz.yml" || le.Msg == "" {
					t.Fatalf("error without file or reason: %#v", e)
				}
			}
			return
		}
		switch p.Kind {
		case "sensor":
			if _, err := decode.New(p); err != nil {
				t.Fatalf("valid profile, but no decoder: %v\n%s", err, data)
			}
		case "camera":
			if _, err := profiles.URL(p, "main", "10.0.0.1", 0, 1); err != nil && !strings.Contains(p.RTSP.Main, "{path}") {
				t.Fatalf("valid camera profile, but no URL: %v\n%s", err, data)
			}
		}
		_ = p.Clone()
	})
}
