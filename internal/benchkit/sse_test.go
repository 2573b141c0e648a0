package benchkit

import (
	"strings"
	"testing"
	"time"
)

// A benchmark's latency figures come from the frames this reader hands over: every frame
// with data, in order, with multi-line data joined and keep-alives skipped.
func TestReadFrames(t *testing.T) {
	in := ": keep-alive\n\nid: 1\nevent: alert.opened\ndata: {\"a\":\ndata: 1}\n\nid: 2\r\nevent: x.y\r\ndata: {}\r\n\n"
	var got []string
	err := ReadFrames(strings.NewReader(in), func(f Frame) error {
		got = append(got, f.ID+"|"+f.Type+"|"+string(f.Data))
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "ended") {
		t.Fatalf("end of input: %v", err)
	}
	want := []string{"1|alert.opened|{\"a\":\n1}", "2|x.y|{}"}
	if strings.Join(got, ";") != strings.Join(want, ";") {
		t.Fatalf("frames %q, want %q", got, want)
	}
}

func TestPct(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	if Pct(ds, 50) != 5 || Pct(ds, 99) != 10 || Pct(ds, 10) != 1 || Pct(nil, 50) != 0 {
		t.Fatalf("p50 %v p99 %v p10 %v", Pct(ds, 50), Pct(ds, 99), Pct(ds, 10))
	}
	if ds[0] != 5 {
		t.Fatal("Pct sorted its input")
	}
}
