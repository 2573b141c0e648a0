package ingest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/ingest"
)

// TestBadInputs sends each kind of bad input and checks its outcome — quarantined with a
// reason and the raw payload, or refused by the broker and counted — and that the gateway
// still stores the next good message.
func TestBadInputs(t *testing.T) {
	for _, tr := range []string{"embedded", "mosquitto"} {
		t.Run(tr, func(t *testing.T) {
			tel := openSQLiteTelemetry(t)
			devs := sensorFleet()
			s := newStack(t, devs, tel)
			var (
				url    string
				broker *ingest.Broker
			)
			if tr == "embedded" {
				broker = startBroker(t, s, "127.0.0.1:0")
				url = "tcp://" + broker.Addr()
			} else {
				url, _ = transports("")[1].start(t, s)
			}
			now := time.Now()
			ts := now.UnixMilli()
			dust, err := deviceClient(t, url, "dust-1", "secret-dust-1")
			require.NoError(t, err)
			cases := []struct {
				name, payload, reason, metric string
			}{
				{"malformed JSON", `{"ts": 1, "data": {"pm25": 30.5,`, "malformed_json", ""},
				{"wrong type", fmt.Sprintf(`{"ts": %d, "data": {"pm25": "30.5", "pm10": 80, "noise": 60}}`, ts), "wrong_type", ""},
				{"NaN string", fmt.Sprintf(`{"ts": %d, "data": {"pm25": "NaN", "pm10": 80, "noise": 60}}`, ts), "wrong_type", ""},
				{"Infinity literal", fmt.Sprintf(`{"ts": %d, "data": {"pm25": Infinity, "pm10": 80, "noise": 60}}`, ts), "malformed_json", ""},
				{"huge number", fmt.Sprintf(`{"ts": %d, "data": {"pm25": 1e999, "pm10": 80, "noise": 60}}`, ts), "", ""},
				{"missing field", fmt.Sprintf(`{"ts": %d, "data": {"pm25": 30}}`, ts), "missing_field", ""},
				{"device clock ahead", fmt.Sprintf(`{"ts": %d, "data": {"pm25": 30, "pm10": 80, "noise": 60}}`, now.Add(time.Hour).UnixMilli()), "clock_skew", ""},
				{"one value out of range", fmt.Sprintf(`{"ts": %d, "data": {"pm25": 30, "pm10": 5000, "noise": 60}}`, ts+1), "out_of_range", "pm10"},
			}
			for _, c := range cases {
				require.NoError(t, publish(t, dust, "offsite/site-1/dust-1/up", []byte(c.payload)), c.name)
			}
			// 2 MiB: the embedded broker refuses the packet; behind Mosquitto the decoder does.
			big := []byte(`{"ts": 1, "data": {"pm25": 1, "pad": "` + strings.Repeat("x", 2<<20) + `"}}`)
			bigc, err := oneShotClient(t, url, "big", "dust-1", "secret-dust-1")
			require.NoError(t, err)
			_ = publish(t, bigc, "offsite/site-1/dust-1/up", big)
			// Another device's topic and a topic nobody uses: refused by either broker's ACL.
			other, err := oneShotClient(t, url, "other", "dust-1", "secret-dust-1")
			require.NoError(t, err)
			_ = publish(t, other, "offsite/site-1/gen-1/up", []byte(`{"values": {"temperature": 1}}`))
			unknown, err := oneShotClient(t, url, "unknown", "dust-1", "secret-dust-1")
			require.NoError(t, err)
			_ = publish(t, unknown, "offsite/site-1/dust-1/firmware", []byte(`x`))
			// Wrong password.
			_, err = oneShotClient(t, url, "wrongpw", "dust-1", "not-the-secret")
			require.Error(t, err)
			// A topic no sensor uses, as an external broker without ACL would deliver it.
			s.pipe.Submit(ingest.Message{Topic: "offsite/site-9/ghost/up", Payload: []byte(`{"values": {"x": 1}}`)})

			// The gateway keeps serving: a good message after all that is stored.
			dust2, err := oneShotClient(t, url, "dust-good", "dust-1", "secret-dust-1")
			require.NoError(t, err)
			require.NoError(t, publish(t, dust2, "offsite/site-1/dust-1/up", dustPayload(now, 77)))
			require.Eventually(t, func() bool {
				s.flush(t, tel)
				r, _ := tel.Latest(context.Background(), "dust-1")
				for _, x := range r {
					if x.Metric == "pm10" && x.Value == 77 {
						return true
					}
				}
				return false
			}, 10*time.Second, 20*time.Millisecond)

			q, err := s.quar.List(context.Background(), ingest.QuarantineFilter{Limit: 1000})
			require.NoError(t, err)
			has := func(reason, metric string) *ingest.QuarantineEntry {
				for i := range q {
					if q[i].Reason == reason && (metric == "" || q[i].Metric == metric) {
						return &q[i]
					}
				}
				return nil
			}
			for _, c := range cases {
				if c.reason == "" {
					continue
				}
				e := has(c.reason, c.metric)
				require.NotNil(t, e, "%s: no quarantine entry %s (have %v)", c.name, c.reason, reasons(q))
				require.Equal(t, "dust-1", e.Device)
				require.NotEmpty(t, e.Payload)
				require.NotEmpty(t, e.Detail)
			}
			require.NotNil(t, has("unknown_topic", ""))
			if tr == "embedded" {
				require.Eventually(t, func() bool {
					return broker.Refused(ingest.RefusedTooLarge) == 1 && broker.Refused(ingest.RefusedPublishACL) == 2 &&
						broker.Refused(ingest.RefusedCredentials) == 1
				}, 5*time.Second, 20*time.Millisecond, "too_large=%v publish_denied=%v bad_credentials=%v",
					broker.Refused(ingest.RefusedTooLarge), broker.Refused(ingest.RefusedPublishACL), broker.Refused(ingest.RefusedCredentials))
			} else {
				e := has("too_large", "")
				require.NotNil(t, e, "2 MiB payload quarantined (have %v)", reasons(q))
				require.Len(t, e.Payload, 4096, "payload cut")
				require.Greater(t, e.PayloadSize, 2<<20)
			}
			// Nothing of the refused or quarantined messages reached the store except the
			// valid values of the partly bad one.
			for _, r := range mustLatest(t, tel, "gen-1") {
				t.Fatalf("gen-1 got a reading from another device's login: %+v", r)
			}
		})
	}
}

func reasons(q []ingest.QuarantineEntry) []string {
	var out []string
	for _, e := range q {
		out = append(out, e.Reason+":"+e.Metric)
	}
	return out
}

func mustLatest(t *testing.T, tel ingest.Telemetry, device string) []ingest.Reading {
	rs, err := tel.Latest(context.Background(), device)
	require.NoError(t, err)
	return rs
}
