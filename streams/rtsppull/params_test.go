package rtsppull

import (
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/stretchr/testify/require"
)

var (
	sdpSPS = []byte{0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x47, 0xfe, 0xc8}
	sdpPPS = []byte{0x68, 0xce, 0x3c, 0x80}
	idr    = []byte{0x65, 0x88, 0x84}
	nonIDR = []byte{0x41, 0x9a}
)

func TestInBand(t *testing.T) {
	p := params{sps: sdpSPS, pps: sdpPPS}
	require.Equal(t, [][]byte{sdpSPS, sdpPPS, idr}, p.inBand([][]byte{idr}), "SDP parameters before an IDR")
	au := [][]byte{nonIDR}
	require.Equal(t, au, p.inBand(au), "a P unit stays as it is")

	// in-band parameter sets win over the SDP's and are used for later IDRs
	sps2 := []byte{0x67, 0x64, 0x00, 0x1f}
	require.Equal(t, [][]byte{sps2, sdpPPS, idr}, p.inBand([][]byte{sps2, idr}))
	require.Equal(t, [][]byte{sps2, sdpPPS, idr}, p.inBand([][]byte{idr}))

	// an access unit delimiter stays first
	aud := []byte{0x09, 0xf0}
	require.Equal(t, [][]byte{aud, sps2, sdpPPS, idr}, p.inBand([][]byte{aud, idr}))

	// no parameters known, or empty ones from a broken SDP: nothing is added
	require.Equal(t, [][]byte{idr}, (&params{}).inBand([][]byte{idr}))
	require.Equal(t, [][]byte{idr}, (&params{sps: []byte{}, pps: []byte{}}).inBand([][]byte{idr}))
}

// FuzzInBand feeds access units made of camera bytes: the unit comes back unchanged at the
// end, and an IDR unit has SPS and PPS somewhere before its slices.
func FuzzInBand(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0x65, 0x88})
	f.Add([]byte{0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x65, 0x88, 0, 0, 1, 0x41})
	f.Add([]byte{0, 0, 1, 0x68, 0, 0, 1, 0x65})
	f.Add([]byte{0, 0, 1, 0x25, 0x30, 0x01, 0x30, 0, 0, 1, 0x27}) // SPS after the slice
	f.Add([]byte{0, 0, 1, 0x68, 0, 0, 1, 0x27, 0, 0, 1, 0x25})    // the camera's PPS before its SPS
	f.Fuzz(func(t *testing.T, b []byte) {
		var au h264.AnnexB
		if au.Unmarshal(b) != nil {
			return
		}
		p := params{sps: sdpSPS, pps: sdpPPS}
		out := p.inBand(au)
		require.LessOrEqual(t, len(au), len(out))
		require.LessOrEqual(t, len(out), len(au)+2)
		if !h264.IsRandomAccess(out) {
			require.Equal(t, [][]byte(au), out, "only IDR units change")
			return
		}
		sps, pps := false, false
		for _, n := range out {
			switch h264.NALUType(n[0] & 0x1f) {
			case h264.NALUTypeSPS:
				sps = true
			case h264.NALUTypePPS:
				pps = true
			case h264.NALUTypeNonIDR, h264.NALUTypeIDR, h264.NALUTypeDataPartitionA:
				require.True(t, sps && pps, "a slice before the parameter sets: %x", out)
			}
		}
		if spsFirst(au) {
			require.True(t, spsFirst(out), "an added PPS before the SPS: %x", out)
		}
	})
}

// spsFirst reports whether no PPS comes before the first SPS.
func spsFirst(au [][]byte) bool {
	for _, n := range au {
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			return true
		case h264.NALUTypePPS:
			return false
		}
	}
	return true
}

// BenchmarkInBand is the pull's per-unit cost over the depacketizer: a P unit (most units)
// and an IDR unit that gets the SDP's parameter sets.
func BenchmarkInBand(b *testing.B) {
	p := params{sps: sdpSPS, pps: sdpPPS}
	b.Run("P", func(b *testing.B) {
		au := [][]byte{nonIDR}
		b.ReportAllocs()
		for b.Loop() {
			_ = p.inBand(au)
		}
	})
	b.Run("IDR", func(b *testing.B) {
		au := [][]byte{idr, idr}
		b.ReportAllocs()
		for b.Loop() {
			_ = p.inBand(au)
		}
	})
}
