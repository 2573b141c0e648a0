// Package h264file cuts H.264 elementary-stream files (Annex-B, as ffmpeg -f h264 writes them)
// into access units, for the simulated cameras, the analytics worker's tests and the
// benchmarks. mediacommon's h264.AnnexB reads one access unit of at most 8 MiB and does not
// find access unit boundaries; a file is many units and often larger, which is all this
// package adds. It imports only mediacommon and the standard library.
package h264file

import (
	"errors"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// ErrNoNALUs is returned for data without a single start code.
var ErrNoNALUs = errors.New("no H.264 NAL units (not Annex-B?)")

// AccessUnits splits an Annex-B elementary stream of any length into access units, in stream
// order. The NAL units alias data.
func AccessUnits(data []byte) ([][][]byte, error) {
	nalus := NALUs(data)
	if len(nalus) == 0 {
		return nil, ErrNoNALUs
	}
	return Group(nalus), nil
}

// NALUs splits an Annex-B byte stream (NAL units after 00 00 01 or 00 00 00 01 start codes)
// into NAL units. Bytes before the first start code are ignored, trailing zero bytes (of a
// 4-byte start code or trailing_zero_8bits) are trimmed, empty units are dropped. The units
// alias data.
func NALUs(data []byte) [][]byte {
	var out [][]byte
	start := -1
	add := func(n []byte) {
		for len(n) > 0 && n[len(n)-1] == 0 {
			n = n[:len(n)-1]
		}
		if len(n) > 0 {
			out = append(out, n)
		}
	}
	for i := 0; i+2 < len(data); {
		if data[i] == 0 && data[i+1] == 0 && data[i+2] == 1 {
			if start >= 0 {
				add(data[start:i])
			}
			i += 3
			start = i
			continue
		}
		i++
	}
	if start >= 0 && start < len(data) {
		out = append(out, data[start:])
	}
	return out
}

// Group gathers NAL units into access units (ITU-T H.264 7.4.1.2.3): a new unit begins at an
// access unit delimiter, at an SPS, PPS or SEI after a slice, or at a slice whose
// first_mb_in_slice is 0 when the current unit already has one. NAL units before the first
// slice without a slice after them are dropped.
func Group(nalus [][]byte) [][][]byte {
	var aus [][][]byte
	var cur [][]byte
	hasSlice := false
	flush := func() {
		if hasSlice {
			aus = append(aus, cur)
		}
		cur, hasSlice = nil, false
	}
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		switch t := h264.NALUType(n[0] & 0x1f); t {
		case h264.NALUTypeAccessUnitDelimiter:
			flush()
		case h264.NALUTypeSEI, h264.NALUTypeSPS, h264.NALUTypePPS:
			if hasSlice {
				flush()
			}
		case h264.NALUTypeNonIDR, h264.NALUTypeDataPartitionA, h264.NALUTypeIDR:
			// first_mb_in_slice is ue(v): 0 is the single bit 1
			if hasSlice && len(n) > 1 && n[1]&0x80 != 0 {
				flush()
			}
			hasSlice = true
		}
		cur = append(cur, n)
	}
	flush()
	return aus
}
