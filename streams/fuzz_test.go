package streams_test

import (
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
