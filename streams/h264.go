package streams

import (
	"github.com/bluenviron/mediacommon/v2/pkg/bits"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// What the relay must know about H.264 that mediacommon does not export: whether the encoder
// uses B-frames, from the slice headers (mediacommon reads slice headers only inside its
// DTSExtractor). Everything else — NAL unit types, keyframes, Annex-B, SPS — is mediacommon's
// h264 package; files are cut into access units by streams/h264file.

// sliceHeaderPrefix bounds the bytes read for first_mb_in_slice and slice_type (two ue(v) of
// at most 32 bits each) plus room for emulation prevention bytes, so a large slice is not
// copied whole.
const sliceHeaderPrefix = 16

// SliceType returns slice_type (0..4: P, B, I, SP, SI) of a slice NAL unit, or -1 if nalu is
// not a slice or its header cannot be read.
func SliceType(nalu []byte) int {
	if len(nalu) < 2 {
		return -1
	}
	switch h264.NALUType(nalu[0] & 0x1f) {
	case h264.NALUTypeNonIDR, h264.NALUTypeDataPartitionA, h264.NALUTypeIDR:
	default:
		return -1
	}
	hdr := h264.EmulationPreventionRemove(nalu[1:min(len(nalu), 1+sliceHeaderPrefix)])
	pos := 0
	if _, err := bits.ReadGolombUnsigned(hdr, &pos); err != nil { // first_mb_in_slice
		return -1
	}
	st, err := bits.ReadGolombUnsigned(hdr, &pos)
	if err != nil || st > 9 {
		return -1
	}
	return int(st % 5)
}

// HasBSlice reports whether an access unit contains a B slice.
func HasBSlice(au [][]byte) bool {
	for _, n := range au {
		if SliceType(n) == 1 {
			return true
		}
	}
	return false
}

// naluType is mediacommon's NAL unit type, 0 for an empty unit: WriteVideo takes units from
// callers other than the depacketizer too, and an empty one must not panic the camera's
// goroutine.
func naluType(n []byte) h264.NALUType {
	if len(n) == 0 {
		return 0
	}
	return h264.NALUType(n[0] & 0x1f)
}
