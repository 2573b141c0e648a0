package config_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/offsite-gw/offsite/gateway/config"
	"github.com/stretchr/testify/require"
)

const refPath = "../../deploy/offsite.yml"

func TestReferenceConfigLoadsAndEqualsDefaults(t *testing.T) {
	cfg, err := config.Load(refPath, nil)
	require.NoError(t, err)
	require.Equal(t, config.Default(), cfg, "the reference file must state the defaults")
}

func TestReferenceConfigDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile(refPath)
	require.NoError(t, err)
	text := string(b)
	for _, key := range config.Keys() {
		parts := strings.Split(key, ".")
		leaf := parts[len(parts)-1]
		re := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(leaf) + `:`)
		require.Truef(t, re.MatchString(text), "deploy/offsite.yml does not mention key %s", key)
		// and the line before it is a comment, so the key is explained
		loc := re.FindStringIndex(text)
		before := strings.TrimRight(text[:loc[0]], "\n ")
		lastLine := before[strings.LastIndex(before, "\n")+1:]
		if len(parts) == 1 || !strings.HasSuffix(strings.TrimSpace(lastLine), ":") {
			require.Truef(t, strings.HasPrefix(strings.TrimSpace(lastLine), "#"), "key %s has no comment above it", key)
		}
	}
}

func TestMisspeltKeyStopsWithFileLineAndSuggestion(t *testing.T) {
	_, err := config.Parse("offsite.yml", []byte("gateway_id: gw1\nhttp:\n  lisen: \":9090\"\n"), nil)
	require.Error(t, err)
	msg := err.Error()
	require.Contains(t, msg, "offsite.yml:3")
	require.Contains(t, msg, "http.lisen")
	require.Contains(t, msg, "unknown key")
	require.Contains(t, msg, `did you mean "listen"`)
}

func TestBadValuesAreAllReported(t *testing.T) {
	src := "log:\n  level: loud\nauth:\n  token_ttl: forever\n  lockout_after: 0\nhttp:\n  listen: 8080\n"
	_, err := config.Parse("x.yml", []byte(src), nil)
	var cerr *config.Error
	require.ErrorAs(t, err, &cerr)
	got := map[string]string{}
	for _, p := range cerr.Problems {
		got[p.Key] = p.Where + " " + p.Reason
	}
	require.Contains(t, got["log.level"], "x.yml:2")
	require.Contains(t, got["auth.token_ttl"], "x.yml:4")
	require.Contains(t, got["auth.token_ttl"], "duration")
	require.Contains(t, got["auth.lockout_after"], "between 1 and 100")
	require.Contains(t, got["http.listen"], "host:port")
}

func TestEnvironmentOverrides(t *testing.T) {
	env := []string{"OFFSITE_HTTP_LISTEN=127.0.0.1:9999", "OFFSITE_AUTH_TOKEN_TTL=1h", "OFFSITE_HTTP_TRUSTED_PROXIES=[10.0.0.1, 10.1.0.0/16]",
		"OFFSITE_PROFILES_EMBEDDED=false", "PATH=/bin", "OFFSITE_TEST_WHATEVER=ignored"}
	cfg, err := config.Parse("f.yml", []byte("http:\n  listen: \":8081\"\n"), env)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9999", cfg.HTTP.Listen, "env wins over the file")
	require.Equal(t, time.Hour, cfg.Auth.TokenTTL)
	require.Equal(t, []string{"10.0.0.1", "10.1.0.0/16"}, cfg.HTTP.TrustedProxies)
	require.False(t, cfg.Profiles.Embedded)
}

func TestBadEnvironmentNamesTheVariable(t *testing.T) {
	_, err := config.Parse("", nil, []string{"OFFSITE_HTTP_LISTN=:1", "OFFSITE_AUTH_LOCKOUT_AFTER=many"})
	require.Error(t, err)
	require.Contains(t, err.Error(), "env OFFSITE_HTTP_LISTN")
	require.Contains(t, err.Error(), "did you mean OFFSITE_HTTP_LISTEN")
	require.Contains(t, err.Error(), "env OFFSITE_AUTH_LOCKOUT_AFTER")
}

func TestDuplicateAndStructuralErrors(t *testing.T) {
	_, err := config.Parse("d.yml", []byte("log:\n  level: info\n  level: debug\nhttp: 5\n"), nil)
	require.Error(t, err)
	require.Contains(t, err.Error(), "given twice")
	require.Contains(t, err.Error(), "http: must be a mapping")
	_, err = config.Parse("e.yml", []byte("a: [\n"), nil)
	require.ErrorContains(t, err, "not valid YAML")
}

func TestLoadMissingFile(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "nope.yml"), nil)
	require.ErrorContains(t, err, "nope.yml")
}

func FuzzParse(f *testing.F) {
	ref, _ := os.ReadFile(refPath)
	f.Add(ref)
	f.Add([]byte("http:\n  listen: :1\n"))
	f.Add([]byte("- a\n- b\n"))
	f.Add([]byte("auth: {token_ttl: 5m, lockout_after: [1]}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse("fuzz.yml", data, nil)
		if err == nil && cfg.GatewayID == "" {
			t.Fatal("accepted a config without gateway_id")
		}
	})
}

func TestUplinkListsAreCheckedItemByItem(t *testing.T) {
	src := "uplinks:\n  - name: province\n    base_url: http://127.0.0.1:9\n    secret: s\n    batch_sise: 10\n  - name: province\n    base_url: http://127.0.0.1:9\n    secret: s\nwebhooks:\n  - name: ding\n    kind: dingtalk\n"
	_, err := config.Parse("u.yml", []byte(src), nil)
	require.Error(t, err)
	msg := err.Error()
	require.Contains(t, msg, "u.yml:5: uplinks[0].batch_sise: unknown key (did you mean \"batch_size\"?)")
	require.Contains(t, msg, "uplinks[1].name")
	require.Contains(t, msg, "webhooks[0]")
	require.Contains(t, msg, "url")

	cfg, err := config.Parse("ok.yml", []byte("uplinks:\n  - name: core\n    base_url: http://127.0.0.1:9\n    secret: s\n    alg: hmac-sha256\n    filter: {types: [alert.], min_severity: major}\n"), nil)
	require.NoError(t, err)
	require.Len(t, cfg.Uplinks, 1)
	require.Equal(t, "hmac-sha256", cfg.Uplinks[0].Alg)
	require.Equal(t, []string{"alert."}, cfg.Uplinks[0].Filter.Types)
}

func TestRulesSection(t *testing.T) {
	src := "rules:\n  schedules:\n    office: {windows: [\"08:30-12:00\"], calendar: working}\n  overrides:\n    - {site: s1, rule: pm10-high, value: 120, for: 5m}\n  cooldown: 2m\n"
	cfg, err := config.Parse("r.yml", []byte(src), nil)
	require.NoError(t, err)
	require.Equal(t, []string{"08:30-12:00"}, cfg.Rules.Schedules["office"].Windows)
	require.Len(t, cfg.Rules.Overrides, 1)

	_, err = config.Parse("r.yml", []byte("rules:\n  schedules:\n    office: {windws: [\"08:30-12:00\"]}\n"), nil)
	require.ErrorContains(t, err, "windws")
	_, err = config.Parse("r.yml", []byte("rules:\n  overrides:\n    - {site: s1, rule: x, op: \"=>\"}\n"), nil)
	require.ErrorContains(t, err, "rules")
}
