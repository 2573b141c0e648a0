package ingest

import (
	"bytes"
	"testing"
	"time"
)

// FuzzJournalRecords: a journal segment left by a crash may end in anything. Reading never
// panics, and every complete record written before the damage comes back unchanged, in order.
func FuzzJournalRecords(f *testing.F) {
	good := encodeRecord(nil, &Message{Topic: "offsite/site-1/dust-1/up", Client: "dust-1", Remote: "127.0.0.1:5000",
		Received: time.Unix(0, 1_800_000_000_123_456_789), Payload: []byte(`{"pm10": 1}`)})
	f.Add([]byte("t"), []byte(`{}`), []byte{})
	f.Add([]byte("offsite/a/b/up"), []byte(`{"ts":1}`), good[:len(good)/2])
	f.Add([]byte(""), []byte{}, make([]byte, 64))
	f.Add([]byte("x"), []byte{0xff}, append(append([]byte{}, good...), 1, 2, 3))
	f.Add([]byte("y"), []byte{1}, []byte{0, 0, 0, 9, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, topic, payload, tail []byte) {
		// arbitrary bytes alone
		_ = readRecords(bytes.NewReader(tail), func(Message) {})

		msgs := []Message{
			{Topic: string(topic), Client: "c", Remote: "r", Received: time.Unix(0, int64(len(payload))*1000), Payload: payload},
			{Topic: "second", Payload: tail, Received: time.Unix(1, 0)},
		}
		var seg []byte
		for i := range msgs {
			seg = encodeRecord(seg, &msgs[i])
		}
		if len(seg) != recordSize(&msgs[0])+recordSize(&msgs[1]) {
			t.Fatalf("recordSize disagrees with encodeRecord: %d vs %d", recordSize(&msgs[0])+recordSize(&msgs[1]), len(seg))
		}
		seg = append(seg, tail...)
		var got []Message
		_ = readRecords(bytes.NewReader(seg), func(m Message) { got = append(got, m) })
		if len(got) < len(msgs) {
			t.Fatalf("read %d of %d complete records", len(got), len(msgs))
		}
		for i, m := range msgs {
			g := got[i]
			if g.Topic != m.Topic || g.Client != m.Client || g.Remote != m.Remote || !g.Received.Equal(m.Received) || !bytes.Equal(g.Payload, m.Payload) {
				t.Fatalf("record %d changed: %+v, want %+v", i, g, m)
			}
		}
	})
}
