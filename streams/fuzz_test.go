package streams_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/streams"
)

func TestSliceType(t *testing.T) {
	// first_mb_in_slice=0 (1), slice_type ue: P=0 "1", B=1 "010", I=2 "011", B=6 "00111"
	require.Equal(t, 0, streams.SliceType([]byte{0x41, 0b1_1_000000}))
	require.Equal(t, 1, streams.SliceType([]byte{0x01, 0b1_010_0000}))
	require.Equal(t, 2, streams.SliceType([]byte{0x65, 0b1_011_0000}))
	require.Equal(t, 1, streams.SliceType([]byte{0x01, 0b1_00111_00}))
	require.Equal(t, -1, streams.SliceType([]byte{0x67, 0xff}))
	require.Equal(t, -1, streams.SliceType([]byte{0x41}))
	// an emulation prevention byte inside the header: 00 00 03 01 reads as 00 00 01, so
	// first_mb_in_slice has 23 leading zeros and 23 more bits, then slice_type B "010"
	require.Equal(t, 1, streams.SliceType([]byte{0x41, 0x00, 0x00, 0x03, 0x01, 0x80, 0x80, 0b1000000_0, 0b10_100000}))
	require.False(t, streams.HasBSlice([][]byte{{0x67, 0x42}, {0x65, 0b1_011_0000}}))
	require.True(t, streams.HasBSlice([][]byte{{0x01, 0b1_010_0000}}))
}

func FuzzSliceType(f *testing.F) {
	f.Add([]byte{0x41, 0x9a})
	f.Add([]byte{0x65, 0x88, 0x84})
	f.Add([]byte{0x01, 0, 0, 3, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		st := streams.SliceType(b)
		if st < -1 || st > 4 {
			t.Fatalf("slice type %d", st)
		}
	})
}

// FuzzScanMP4Boxes: the top-level box scan that cuts a clip left by a killed process back to
// its last complete fragment never reads outside the file and returns boxes in order.
func FuzzScanMP4Boxes(f *testing.F) {
	f.Add([]byte{0, 0, 0, 8, 'f', 't', 'y', 'p', 0, 0, 0, 8, 'm', 'o', 'o', 'v'})
	f.Add([]byte{0, 0, 0, 1, 'm', 'd', 'a', 't', 0, 0, 0, 0, 0, 0, 0, 16})
	f.Add([]byte{0, 0, 0, 0, 'm', 'o', 'o', 'f'})
	f.Add([]byte{0, 0, 0, 9, 'm', 'o', 'o'})
	f.Fuzz(func(t *testing.T, b []byte) {
		boxes, end := streams.ScanMP4Boxes(bytes.NewReader(b), int64(len(b)))
		var off int64
		for _, bx := range boxes {
			if bx.Offset != off || bx.Size < 8 || bx.Offset+bx.Size > int64(len(b)) {
				t.Fatalf("box %+v out of place (expected at %d, file %d bytes)", bx, off, len(b))
			}
			off += bx.Size
		}
		if end != off {
			t.Fatalf("end %d, boxes end at %d", end, off)
		}
	})
}

// FuzzMoofDuration: reading a fragment's sample durations from a recovered clip never panics,
// whatever the box holds.
func FuzzMoofDuration(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x20moof\x00\x00\x00\x18trun\x00\x00\x01\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x0e\x10"))
	f.Add([]byte("trun"))
	f.Add([]byte("xxxxtrun\xff\xff\xff\xff\x7f\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if d := streams.MoofDurationForTest(b); d < 0 {
			t.Fatalf("negative duration %d", d)
		}
	})
}
