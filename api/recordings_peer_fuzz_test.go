package api_test

import (
	"testing"

	"github.com/offsite-gw/offsite/api"
	"github.com/offsite-gw/offsite/internal/errs"
)

// FuzzParsePeerRecordingRequest feeds the body of a forwarded recording (signed by the centre,
// but still bytes from another machine) to its parser: it never panics, refuses with
// errs.KindInvalid invalid_body, and what it accepts names a user and a centre within bounds.
func FuzzParsePeerRecordingRequest(f *testing.F) {
	f.Add([]byte(`{"minutes":5,"reason":"中心值班：远程取证","user":"admin","name":"值班员","centre":"demo-centre"}`))
	f.Add([]byte(`{"minutes":1,"reason":"x","alert_event_id":"01J0000000000000000000000","user":"u","centre":"c"}`))
	f.Add([]byte(`{"minutes":1,"reason":"x","user":"u"}`))
	f.Add([]byte(`{"minutes":"five","user":"u","centre":"c"}`))
	f.Add([]byte(`{"user":"u","centre":"c","admin":true}`))
	f.Add([]byte(`{"user":"u","centre":"c"} {}`))
	f.Add([]byte(`[]`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := api.ParsePeerRecordingRequest(body)
		if err != nil {
			if !errs.Is(err, errs.KindInvalid) || errs.CodeOf(err) != "invalid_body" {
				t.Fatalf("refusal is not invalid_body: %v", err)
			}
			return
		}
		if r.User == "" || r.Centre == "" || len(r.User) > 200 || len(r.Centre) > 200 || len(r.Name) > 200 {
			t.Fatalf("accepted %+v", r)
		}
	})
}

func TestParsePeerRecordingRequest(t *testing.T) {
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{`{"minutes":5,"reason":"r","user":" admin ","centre":"demo-centre"}`, true},
		{`{"minutes":5,"reason":"r","user":"admin"}`, false},                // no centre
		{`{"minutes":5,"reason":"r","centre":"c"}`, false},                  // no user
		{`{"minutes":5,"reason":"r","user":"a","centre":"c","x":1}`, false}, // unknown field
		{`{"minutes":5,"reason":"r","user":"a","centre":"c"}{}`, false},     // trailing data
		{`not json`, false},
	} {
		r, err := api.ParsePeerRecordingRequest([]byte(tc.body))
		if tc.ok != (err == nil) {
			t.Fatalf("%s: err = %v", tc.body, err)
		}
		if tc.ok && r.User != "admin" {
			t.Fatalf("%s: user %q not trimmed", tc.body, r.User)
		}
	}
}
