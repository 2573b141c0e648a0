package dashboard_test

import (
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/api/dashboard"
)

var (
	reImport   = regexp.MustCompile(`(?m)(?:^|[;\s])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|(?m)^\s*import\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)`)
	reURLMeta  = regexp.MustCompile(`new URL\(\s*[` + "`" + `'"]([^` + "`" + `'"$]+)`)
	reSrcHref  = regexp.MustCompile(`(?:src|href)\s*=\s*["']([^"']+)["']`)
	reExternal = regexp.MustCompile(`(?i)\b(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s'"]*`)
	reT        = regexp.MustCompile(`\bt\(\s*'([^']+)'`)
	reTDynamic = regexp.MustCompile("\\bt(?:Or)?\\(\\s*`([a-z_]+)\\.\\$\\{")
	// Keys are written t('…') so that the test above sees them; t("…") or t(`…`) without a
	// placeholder would hide a key from it.
	reTOther = regexp.MustCompile("\\bt\\(\\s*(?:\"|`[^`$]*`)")
)

// namespaces are URIs that name XML vocabularies; browsers never fetch them.
var namespaces = []string{"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}

func files(t *testing.T, ext string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := fs.WalkDir(dashboard.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (ext != "" && path.Ext(p) != ext) {
			return err
		}
		b, err := fs.ReadFile(dashboard.FS(), p)
		out[p] = string(b)
		return err
	})
	require.NoError(t, err)
	return out
}

func exists(name string) bool {
	_, err := fs.Stat(dashboard.FS(), name)
	return err == nil
}

func TestReferencedFilesExist(t *testing.T) {
	index, err := fs.ReadFile(dashboard.FS(), "index.html")
	require.NoError(t, err)
	for _, m := range reSrcHref.FindAllStringSubmatch(string(index), -1) {
		ref := m[1]
		ref = strings.TrimPrefix(ref, "{{ASSETS}}/")
		ref = strings.TrimPrefix(ref, "/")
		require.True(t, exists(ref), "index.html references %q, which is not embedded", m[1])
	}
	js := files(t, ".js")
	require.Contains(t, js, "js/app.js")
	for name, src := range js {
		dir := path.Dir(name)
		for _, m := range reImport.FindAllStringSubmatch(src, -1) {
			ref := m[1] + m[2] + m[3]
			require.True(t, strings.HasPrefix(ref, "./") || strings.HasPrefix(ref, "../"),
				"%s imports %q: only relative imports of embedded modules are allowed", name, ref)
			require.True(t, exists(path.Join(dir, ref)), "%s imports %q, which is not embedded", name, ref)
		}
		for _, m := range reURLMeta.FindAllStringSubmatch(src, -1) {
			if strings.HasPrefix(m[1], "/") {
				continue // a URL of the API, not a file
			}
			// Template parts (${lang}) are cut off by the pattern; check the folder exists.
			ref := path.Join(dir, m[1])
			if strings.HasSuffix(m[1], "/") {
				_, err := fs.Stat(dashboard.FS(), strings.TrimSuffix(ref, "/"))
				require.NoError(t, err, "%s refers to %q", name, m[1])
				continue
			}
			require.True(t, exists(ref), "%s refers to %q, which is not embedded", name, m[1])
		}
	}
	// Every module is reachable: no stale files left behind.
	reached := map[string]bool{"js/app.js": true}
	queue := []string{"js/app.js"}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, m := range reImport.FindAllStringSubmatch(js[cur], -1) {
			ref := path.Join(path.Dir(cur), m[1]+m[2]+m[3])
			if !reached[ref] {
				reached[ref] = true
				queue = append(queue, ref)
			}
		}
	}
	for name := range js {
		require.True(t, reached[name], "%s is embedded but never imported", name)
	}
}

func TestNoExternalURLs(t *testing.T) {
	for name, src := range files(t, "") {
		for _, ns := range namespaces {
			src = strings.ReplaceAll(src, ns, "")
		}
		for _, line := range strings.Split(src, "\n") {
			if m := reExternal.FindString(line); m != "" {
				t.Errorf("%s: external URL %q (the dashboard must work without internet): %s", name, m, strings.TrimSpace(line))
			}
		}
	}
}

func dict(t *testing.T, lang string) map[string]string {
	t.Helper()
	b, err := fs.ReadFile(dashboard.FS(), "i18n/"+lang+".json")
	require.NoError(t, err)
	d := map[string]string{}
	require.NoError(t, json.Unmarshal(b, &d), "i18n/%s.json", lang)
	return d
}

func TestI18nKeys(t *testing.T) {
	zh, en := dict(t, "zh-CN"), dict(t, "en")
	keys := func(d map[string]string) []string {
		var k []string
		for key := range d {
			k = append(k, key)
		}
		sort.Strings(k)
		return k
	}
	require.Equal(t, keys(zh), keys(en), "zh-CN and en must have the same keys")
	prefixes := map[string]bool{}
	for name, src := range files(t, ".js") {
		for _, m := range reT.FindAllStringSubmatch(src, -1) {
			_, inZh := zh[m[1]]
			_, inEn := en[m[1]]
			require.True(t, inZh, "%s uses t('%s'), missing from i18n/zh-CN.json", name, m[1])
			require.True(t, inEn, "%s uses t('%s'), missing from i18n/en.json", name, m[1])
		}
		if m := reTOther.FindString(src); m != "" {
			t.Errorf("%s: write i18n keys as t('key'), found %q", name, m)
		}
		for _, m := range reTDynamic.FindAllStringSubmatch(src, -1) {
			prefixes[m[1]] = true
		}
	}
	// A dynamic key (t(`severity.${s}`)) needs at least one entry under its prefix.
	for p := range prefixes {
		found := false
		for k := range zh {
			if strings.HasPrefix(k, p+".") {
				found = true
				break
			}
		}
		require.True(t, found, "dynamic keys %s.* have no entry in the dictionaries", p)
	}
	for k, v := range zh {
		require.NotEmpty(t, strings.TrimSpace(v), "zh-CN %s is empty", k)
		require.NotEmpty(t, strings.TrimSpace(en[k]), "en %s is empty", k)
	}
}

func get(t *testing.T, h http.Handler, target string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec.Result()
}

func TestHandler(t *testing.T) {
	h := dashboard.Handler()

	root := get(t, h, "/")
	require.Equal(t, http.StatusOK, root.StatusCode)
	require.Equal(t, "text/html; charset=utf-8", root.Header.Get("Content-Type"))
	require.Equal(t, "no-cache", root.Header.Get("Cache-Control"))
	body, _ := io.ReadAll(root.Body)
	require.NotContains(t, string(body), "{{ASSETS}}")
	assets := regexp.MustCompile(`/assets/([0-9a-f]+)/js/app\.js`).FindStringSubmatch(string(body))
	require.NotNil(t, assets, "index.html loads the versioned app.js")

	for _, deep := range []string{"/alerts/01JDABC", "/wall", "/devices/cam-1/extra"} {
		res := get(t, h, deep)
		require.Equal(t, http.StatusOK, res.StatusCode, deep)
		b, _ := io.ReadAll(res.Body)
		require.Equal(t, string(body), string(b), "deep link %s serves index.html", deep)
		require.Equal(t, "no-cache", res.Header.Get("Cache-Control"))
	}

	prefix := "/assets/" + assets[1] + "/"
	for file, ct := range map[string]string{
		"js/app.js":       "text/javascript; charset=utf-8",
		"css/app.css":     "text/css; charset=utf-8",
		"i18n/en.json":    "application/json; charset=utf-8",
		"i18n/zh-CN.json": "application/json; charset=utf-8",
	} {
		res := get(t, h, prefix+file)
		require.Equal(t, http.StatusOK, res.StatusCode, file)
		require.Equal(t, ct, res.Header.Get("Content-Type"), file)
		require.Contains(t, res.Header.Get("Cache-Control"), "max-age=31536000", file)
	}
	old := get(t, h, "/assets/000000000000/js/app.js")
	require.Equal(t, http.StatusOK, old.StatusCode)
	require.Equal(t, "no-cache", old.Header.Get("Cache-Control"), "an asset of another version must not be cached")

	require.Equal(t, http.StatusNotFound, get(t, h, prefix+"js/missing.js").StatusCode)
	require.Equal(t, http.StatusNotFound, get(t, h, prefix+"../dashboard.go").StatusCode)
	api := get(t, h, "/api/v1/nothing")
	require.Equal(t, http.StatusNotFound, api.StatusCode)
	require.Contains(t, api.Header.Get("Content-Type"), "application/json")

	fav := get(t, h, "/favicon.svg")
	require.Equal(t, "image/svg+xml", fav.Header.Get("Content-Type"))

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
}
