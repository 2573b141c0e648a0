package uplink

import (
	"net/http"
	"testing"

	"github.com/offsite-gw/offsite/events/event"
)

// FuzzVerdict feeds every protocol's answer decoder (province platform, webhook, DingTalk and
// WeCom robots) bytes from the other side: it never panics, and a rejection it reports names
// one of the events sent.
func FuzzVerdict(f *testing.F) {
	f.Add(200, []byte(`{"accepted":["01A"],"rejected":[{"id":"01B","reason":"bad"}]}`))
	f.Add(200, []byte(`{"errcode":0,"errmsg":"ok"}`))
	f.Add(200, []byte(`{"errcode":310000,"errmsg":"sign not match"}`))
	f.Add(500, []byte(`<html>`))
	f.Add(200, []byte(`{"duplicates":null}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		evs := []event.Event{{ID: "01A"}, {ID: "01B"}}
		for _, kind := range []string{KindOffsite, KindWebhook, KindDingTalk, KindWeCom} {
			resp := &http.Response{StatusCode: status, Status: http.StatusText(status)}
			rej, err := protocolFor(kind).verdict(resp, body, evs)
			if err != nil {
				continue
			}
			for _, r := range rej {
				if r.ID != "01A" && r.ID != "01B" {
					t.Fatalf("%s: rejection of an event not sent: %+v", kind, r)
				}
			}
		}
	})
}
