package hj212_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/offsite-gw/offsite/ingest/hj212"
)

// FuzzReader: whatever the bytes, the reader ends, never returns more bytes than it got, and
// every good frame it returns has a correct CRC; good frames appended after the input are found.
func FuzzReader(f *testing.F) {
	f.Add([]byte(stdFrame))
	for _, s := range stdSegments {
		f.Add(hj212.AppendFrame([]byte("junk##"), []byte(s)))
	}
	f.Add([]byte("##9999"))
	f.Add([]byte("##0005abcde0000\r\n##00"))
	f.Add([]byte("##0010\r\n##0101"))
	f.Fuzz(func(t *testing.T, in []byte) {
		tail := hj212.AppendFrame(nil, []byte(stdSegments[0]))
		stream := append(append(append([]byte{}, in...), "\r\n"...), tail...)
		fr := hj212.NewReader(bytes.NewReader(stream), 0)
		var out int
		lastGood := ""
		for range len(stream) + 2 {
			d, err := fr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			var fe *hj212.FrameError
			if errors.As(err, &fe) {
				out += len(fe.Raw)
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			out += len(d)
			lastGood = string(d)
		}
		if out > len(stream) {
			t.Fatalf("reader gave %d bytes out of %d", out, len(stream))
		}
		if lastGood != stdSegments[0] {
			t.Fatalf("the good frame after the input was lost (last good %q)", lastGood)
		}
	})
}

// FuzzParseSegment: parsing never panics, a parsed segment re-encodes to one that parses to
// the same fields, and its CP parses or fails with a SegmentError.
func FuzzParseSegment(f *testing.F) {
	f.Add([]byte(stdFrame[6 : len(stdFrame)-6]))
	for _, s := range stdSegments {
		f.Add([]byte(s))
	}
	f.Add([]byte("CN=2011;PW=1;MN=A1;Flag=7;PNUM=2;PNO=1;CP=&&DataTime=20160801085857;a-Rtd=1e3,a-Flag=D&&"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := hj212.ParseSegment(in)
		if err != nil {
			var se *hj212.SegmentError
			if !errors.As(err, &se) {
				t.Fatalf("error of the wrong type: %v", err)
			}
			return
		}
		again, err := hj212.ParseSegment(hj212.AppendSegment(nil, s))
		if err != nil {
			t.Fatalf("re-encoded segment refused: %v", err)
		}
		if again != s {
			t.Fatalf("round trip changed the segment: %+v -> %+v", s, again)
		}
		if _, err := hj212.ParseCP(s.CP, nil); err != nil {
			var se *hj212.SegmentError
			if !errors.As(err, &se) {
				t.Fatalf("CP error of the wrong type: %v", err)
			}
		}
	})
}
