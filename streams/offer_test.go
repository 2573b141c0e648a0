package streams

import (
	"strings"
	"testing"
)

func TestInspectOffer(t *testing.T) {
	offer := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:102 H264/90000\r\n"
	oi, err := inspectOffer(offer)
	if err != nil || !oi.H264 || !oi.Audio["audio/PCMU"] || oi.Audio["audio/PCMA"] {
		t.Fatalf("%+v %v", oi, err)
	}
	if _, err := inspectOffer("hello"); err == nil {
		t.Fatal("non-SDP accepted")
	}
	oi, _ = inspectOffer(strings.ReplaceAll(offer, "H264", "VP9"))
	if oi.H264 {
		t.Fatal("VP9-only offer taken for H.264")
	}
}

// FuzzInspectOffer: the relay's own look at outside SDP never panics and never reports H.264
// unless an H264 rtpmap is in a video section.
func FuzzInspectOffer(f *testing.F) {
	f.Add("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n")
	f.Add("v=0\nm=audio 9 RTP/AVP 0\na=rtpmap:0 PCMU/8000\nm=\na=rtpmap:\n")
	f.Add("v=0\r\na=rtpmap:1 H264\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		oi, err := inspectOffer(s)
		if err == nil && oi.H264 && !strings.Contains(strings.ToUpper(s), "H264") {
			t.Fatal("H.264 from nowhere")
		}
	})
}
