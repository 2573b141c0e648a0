package streams_test

import (
	"testing"

	"github.com/offsite-gw/offsite/streams"
)

func TestExplainReason(t *testing.T) {
	for _, tc := range []struct{ in, code string }{
		{"describe: bad status code: 503 (Service Unavailable); retrying in 4s", "camera_refused"},
		{"stream lost: EOF; retrying in 1s", "stream_lost"},
		{"dial tcp 10.0.0.5:554: connect: connection refused", "camera_unreachable"},
		{"bad status code: 401 (Unauthorized)", "auth_failed"},
		{"no packets for 5s", "no_data"},
		{"something new", "signal_lost"},
		{"", ""},
	} {
		code, text := streams.ExplainReason(tc.in)
		if code != tc.code || (tc.in != "" && text == "") {
			t.Errorf("ExplainReason(%q) = %q, %q; want code %q and a sentence", tc.in, code, text, tc.code)
		}
	}
}
