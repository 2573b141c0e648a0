package streams

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// FuzzDigestAuthorization feeds the re-serve's login check any Authorization header: it
// never panics, and it lets a request in only with the response the secret gives.
func FuzzDigestAuthorization(f *testing.F) {
	const nonce, uri = "0123456789abcdef0123456789abcdef", "rtsp://127.0.0.1:8554/cam1"
	good := md5hex(md5hex("worker:"+RTSPRealm+":w0rk3r") + ":" + nonce + ":" + md5hex("DESCRIBE:"+uri))
	f.Add(fmt.Sprintf(`Digest username="worker", realm="offsite", nonce="%s", uri="%s", response="%s"`, nonce, uri, good))
	f.Add(fmt.Sprintf(`Digest username="worker", realm="offsite", nonce="%s", uri="%s", response="%s", algorithm="MD5"`, nonce, uri, good))
	f.Add(`Digest username="worker", realm="offsite", nonce="x", uri="rtsp://h/c", response="00", algorithm="SHA-256"`)
	f.Add(`Basic d29ya2VyOncwcmszcg==`)
	f.Add(`Digest username="", realm=""`)
	f.Add(`Digest ,,,=""""`)
	f.Add(``)
	s := &Reserve{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		sources: []CredentialSource{StaticCredential{Username: "worker", Password: "w0rk3r"}}}
	u, err := base.ParseURL(uri)
	if err != nil {
		f.Fatal(err)
	}
	seed := &base.Request{Method: base.Describe, URL: u, Header: base.Header{"Authorization": base.HeaderValue{
		fmt.Sprintf(`Digest username="worker", realm="offsite", nonce="%s", uri="%s", response="%s"`, nonce, uri, good)}}}
	if c, ok := s.verifyDigest(seed, nonce); !ok || c != "worker" {
		f.Fatalf("the right Digest response is refused")
	}
	f.Fuzz(func(t *testing.T, header string) {
		req := &base.Request{Method: base.Describe, URL: u, Header: base.Header{"Authorization": base.HeaderValue{header}}}
		consumer, ok := s.verifyDigest(req, nonce)
		if ok && consumer != "worker" {
			t.Fatalf("accepted as %q: %q", consumer, header)
		}
		if ok && !strings.Contains(header, good) {
			t.Fatalf("accepted without the right response: %q", header)
		}
	})
}
