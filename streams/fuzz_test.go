package streams_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/streams"
)

func TestSplitAnnexB(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want [][]byte
	}{
		{nil, nil},
		{[]byte{0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3}, [][]byte{{0x67, 1, 2}, {0x68, 3}}},
		{[]byte{9, 9, 0, 0, 1, 0x65}, [][]byte{{0x65}}},
		{[]byte{0, 0, 1, 0, 0, 1, 0x41}, [][]byte{{0x41}}},
		{[]byte{0x41, 0x42}, nil},
	} {
		require.Equal(t, tc.want, streams.SplitAnnexB(tc.in))
	}
}

func TestSliceType(t *testing.T) {
	// first_mb_in_slice=0 (1), slice_type ue: P=0 "1", B=1 "010", I=2 "011", B=6 "00111"
	require.Equal(t, 0, streams.SliceType([]byte{0x41, 0b1_1_000000}))
	require.Equal(t, 1, streams.SliceType([]byte{0x01, 0b1_010_0000}))
	require.Equal(t, 2, streams.SliceType([]byte{0x65, 0b1_011_0000}))
	require.Equal(t, 1, streams.SliceType([]byte{0x01, 0b1_00111_00}))
	require.Equal(t, -1, streams.SliceType([]byte{0x67, 0xff}))
	require.Equal(t, -1, streams.SliceType([]byte{0x41}))
}

func FuzzSplitAnnexB(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 0x88})
	f.Add([]byte{0, 0, 1})
	f.Add([]byte{0, 0, 0, 0, 0, 1, 1, 0, 0, 3, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		nalus := streams.SplitAnnexB(b)
		total := 0
		for _, n := range nalus {
			if len(n) == 0 {
				t.Fatal("empty NAL unit")
			}
			if bytes.Contains(n, []byte{0, 0, 1}) {
				t.Fatal("start code inside a NAL unit")
			}
			total += len(n)
		}
		if total > len(b) {
			t.Fatal("more bytes out than in")
		}
		// a joined stream splits back into the same units (units ending in 0 lose those bytes,
		// as trailing zeros are indistinguishable from the next start code)
		again := streams.SplitAnnexB(streams.JoinAnnexB(nil, nalus))
		if len(again) > len(nalus) {
			t.Fatalf("round trip grew: %d → %d", len(nalus), len(again))
		}
		for _, au := range streams.SplitAccessUnits(nalus) {
			_ = streams.IsKeyframe(au)
			_ = streams.HasBSlice(au)
		}
	})
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
		_ = streams.SPSProfile(b)
	})
}
