// Package dashboard owns the web UI that the gateway serves to browsers: the video wall,
// alerts, devices and uplinks pages. It is plain HTML, CSS and JavaScript ES modules embedded
// in the binary — no build step, no CDN, no web fonts — so it works on networks without
// internet access. It calls only the HTTP API under /api/v1 (docs/contracts.md §3).
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"
)

//go:embed static
var embedded embed.FS

// assetsPlaceholder is replaced in index.html by the versioned asset prefix, so that every
// asset URL changes when any asset changes and assets can be cached for a year.
const assetsPlaceholder = "{{ASSETS}}"

// FS returns the dashboard's files (index.html, js/, css/, i18n/) rooted at the static folder.
func FS() fs.FS {
	sub, err := fs.Sub(embedded, "static")
	if err != nil {
		panic(err) // the embed directive guarantees the folder
	}
	return sub
}

// Handler serves the dashboard. Mount it at the root of the gateway's HTTP server, after the
// /api routes:
//
//	/                     index.html (no-cache)
//	/assets/VERSION/...   files of FS(), cached for a year (VERSION is a hash of all of them)
//	/favicon.svg          the icon
//	anything else         index.html, so that deep links work; /api/... answers a JSON 404
func Handler() http.Handler {
	h := &handler{files: FS()}
	h.version = contentVersion(h.files)
	h.prefix = "/assets/" + h.version + "/"
	raw, err := fs.ReadFile(h.files, "index.html")
	if err != nil {
		panic(err)
	}
	h.index = bytes.ReplaceAll(raw, []byte(assetsPlaceholder), []byte(strings.TrimSuffix(h.prefix, "/")))
	return h
}

type handler struct {
	files   fs.FS
	version string
	prefix  string
	index   []byte
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		// The API's error shape, so a client that sent a wrong method to an API path reads it
		// like every other error answer.
		w.Header().Set("Allow", "GET, HEAD")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusMethodNotAllowed)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": "method_not_allowed",
			"message": "this path does not take " + r.Method + "; the allowed methods are in the Allow header and the API document (/api/v1/openapi.json)"}})
		return
	}
	p := r.URL.Path
	switch {
	case p == "/api" || strings.HasPrefix(p, "/api/"):
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"no such API route"}}`))
		return
	case p == "/favicon.svg" || p == "/favicon.ico":
		h.serveFile(w, r, "favicon.svg", "public, max-age=86400")
		return
	case strings.HasPrefix(p, "/assets/"):
		rest := strings.TrimPrefix(p, "/assets/")
		ver, name, ok := strings.Cut(rest, "/")
		if !ok || name == "" || name == "index.html" {
			break
		}
		cache := "public, max-age=31536000, immutable"
		if ver != h.version {
			// An old page asking for an old version gets today's file, but must not keep it.
			cache = "no-cache"
		}
		if h.serveFile(w, r, path.Clean(name), cache) {
			return
		}
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'self'; frame-ancestors 'self'")
	_, _ = w.Write(h.index)
}

// serveFile writes one embedded file; false when it does not exist.
func (h *handler) serveFile(w http.ResponseWriter, r *http.Request, name, cache string) bool {
	name = strings.TrimPrefix(name, "/")
	if name == "" || strings.HasPrefix(name, "..") {
		return false
	}
	b, err := fs.ReadFile(h.files, name)
	if err != nil {
		return false
	}
	w.Header().Set("Content-Type", ContentType(name))
	w.Header().Set("Cache-Control", cache)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("ETag", `"`+h.version+`"`)
	if r.Header.Get("If-None-Match") == `"`+h.version+`"` {
		w.WriteHeader(http.StatusNotModified)
		return true
	}
	if r.Method == http.MethodHead {
		return true
	}
	_, _ = w.Write(b)
	return true
}

// ContentType is the MIME type the handler sends for a file name. It does not depend on the
// host's /etc/mime.types, which differs between distributions (a wrong type for .js stops ES
// modules from loading).
func ContentType(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".json":
		return "application/json; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	case ".txt", ".md":
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

// contentVersion hashes every file, so the asset prefix changes whenever one does.
func contentVersion(files fs.FS) string {
	var names []string
	_ = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, p)
		}
		return nil
	})
	sort.Strings(names)
	sum := sha256.New()
	for _, n := range names {
		b, _ := fs.ReadFile(files, n)
		sum.Write([]byte(n))
		sum.Write([]byte{0})
		sum.Write(b)
	}
	return hex.EncodeToString(sum.Sum(nil))[:12]
}
