package h264file_test

import (
	"bytes"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/streams/h264file"
)

func TestNALUs(t *testing.T) {
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
		require.Equal(t, tc.want, h264file.NALUs(tc.in))
	}
}

func TestAccessUnits(t *testing.T) {
	sps, pps, sei := []byte{0x67, 0x42}, []byte{0x68, 0xce}, []byte{0x06, 0x05}
	idr := []byte{0x65, 0x88}  // first_mb_in_slice 0
	idr2 := []byte{0x65, 0x40} // a second slice of the same picture
	p1, p2 := []byte{0x41, 0x9a}, []byte{0x41, 0x9b}
	aud := []byte{0x09, 0xf0}
	var in []byte
	for _, n := range [][]byte{aud, sps, pps, sei, idr, idr2, p1, aud, p2, sps, pps, idr} {
		in = append(in, 0, 0, 0, 1)
		in = append(in, n...)
	}
	aus, err := h264file.AccessUnits(in)
	require.NoError(t, err)
	require.Equal(t, [][][]byte{{aud, sps, pps, sei, idr, idr2}, {p1}, {aud, p2}, {sps, pps, idr}}, aus)

	_, err = h264file.AccessUnits([]byte("not h264"))
	require.ErrorIs(t, err, h264file.ErrNoNALUs)
}

// FuzzAccessUnits: whatever the bytes, units are non-empty, hold no start code, and a
// joined stream splits back into no more units.
func FuzzAccessUnits(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 0x88})
	f.Add([]byte{0, 0, 1})
	f.Add([]byte{0, 0, 0, 0, 0, 1, 1, 0, 0, 3, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		nalus := h264file.NALUs(b)
		total := 0
		for _, n := range nalus {
			require.NotEmpty(t, n)
			require.False(t, bytes.Contains(n, []byte{0, 0, 1}), "start code inside a NAL unit")
			total += len(n)
		}
		require.LessOrEqual(t, total, len(b))
		joined, err := h264.AnnexB(nalus).Marshal()
		require.NoError(t, err)
		require.LessOrEqual(t, len(h264file.NALUs(joined)), len(nalus))
		n := 0
		for _, au := range h264file.Group(nalus) {
			require.NotEmpty(t, au)
			n += len(au)
			_ = h264.IsRandomAccess(au)
		}
		require.LessOrEqual(t, n, len(nalus))
	})
}
