package streams

import (
	"encoding/base64"
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

func TestRTSPUser(t *testing.T) {
	for h, want := range map[string]string{
		`Digest username="worker-1", realm="offsite", nonce="n", uri="rtsp://x/cam", response="r"`: "worker-1",
		"Basic " + base64.StdEncoding.EncodeToString([]byte("rec:pa:ss")):                          "rec",
		"Basic !!!": "",
		"Bearer x":  "",
		"":          "",
	} {
		req := &base.Request{Header: base.Header{"Authorization": base.HeaderValue{h}}}
		if got := rtspUser(req); got != want {
			t.Errorf("%q: got %q, want %q", h, got, want)
		}
	}
}

// FuzzRTSPUser: the Authorization header of an RTSP request comes from anyone who reaches the
// port; reading the username for the audit log never panics and never invents one.
func FuzzRTSPUser(f *testing.F) {
	f.Add(`Digest username="worker-1", realm="offsite"`)
	f.Add("Basic " + base64.StdEncoding.EncodeToString([]byte("u:p")))
	f.Add(`Digest username=`)
	f.Fuzz(func(t *testing.T, h string) {
		u := rtspUser(&base.Request{Header: base.Header{"Authorization": base.HeaderValue{h}}})
		if u != "" && len(u) > len(h) {
			t.Fatalf("username %q longer than the header %q", u, h)
		}
	})
}
