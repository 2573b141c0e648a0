package streams

// H.264 helpers for what the relay must know about a stream without decoding it: where NAL
// units start, which access units are keyframes, and whether the encoder uses B-frames.

// H.264 NAL unit types the relay cares about.
const (
	naluNonIDR = 1
	naluIDR    = 5
	naluSEI    = 6
	naluSPS    = 7
	naluPPS    = 8
	naluAUD    = 9
)

// NALUType returns the type of an H.264 NAL unit (0 for an empty one).
func NALUType(nalu []byte) int {
	if len(nalu) == 0 {
		return 0
	}
	return int(nalu[0] & 0x1f)
}

// SplitAnnexB splits an Annex-B byte stream (NAL units separated by 00 00 01 or 00 00 00 01
// start codes) into NAL units. Bytes before the first start code are ignored, and empty units
// are dropped. The returned slices alias buf.
func SplitAnnexB(buf []byte) [][]byte {
	var out [][]byte
	start := -1
	i := 0
	for i+2 < len(buf) {
		if buf[i] == 0 && buf[i+1] == 0 && buf[i+2] == 1 {
			if start >= 0 {
				out = appendNALU(out, trimZeros(buf[start:i]))
			}
			i += 3
			start = i
			continue
		}
		i++
	}
	if start >= 0 && start <= len(buf) {
		out = appendNALU(out, buf[start:])
	}
	return out
}

func appendNALU(out [][]byte, n []byte) [][]byte {
	if len(n) == 0 {
		return out
	}
	return append(out, n)
}

// trimZeros removes the trailing zero bytes that belong to the next (4-byte) start code.
func trimZeros(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// JoinAnnexB writes NAL units as an Annex-B byte stream with 4-byte start codes.
func JoinAnnexB(dst []byte, nalus [][]byte) []byte {
	for _, n := range nalus {
		dst = append(dst, 0, 0, 0, 1)
		dst = append(dst, n...)
	}
	return dst
}

// IsKeyframe reports whether an access unit contains an IDR slice.
func IsKeyframe(au [][]byte) bool {
	for _, n := range au {
		if NALUType(n) == naluIDR {
			return true
		}
	}
	return false
}

// SplitAccessUnits groups the NAL units of an Annex-B elementary stream into access units
// (ITU-T H.264 7.4.1.2.3): a new unit begins at an access unit delimiter, at SPS/PPS/SEI after
// a slice, or at a slice whose first_mb_in_slice is 0 when the current unit already has one.
func SplitAccessUnits(nalus [][]byte) [][][]byte {
	var aus [][][]byte
	var cur [][]byte
	hasVCL := false
	flush := func() {
		if len(cur) > 0 && hasVCL {
			aus = append(aus, cur)
		}
		cur, hasVCL = nil, false
	}
	for _, n := range nalus {
		switch t := NALUType(n); t {
		case naluAUD:
			flush()
			cur = append(cur, n)
		case naluSEI, naluSPS, naluPPS:
			if hasVCL {
				flush()
			}
			cur = append(cur, n)
		case naluNonIDR, naluIDR, 2:
			if hasVCL && len(n) > 1 && n[1]&0x80 != 0 { // ue(v) first_mb_in_slice == 0
				flush()
			}
			cur = append(cur, n)
			hasVCL = true
		default:
			cur = append(cur, n)
		}
	}
	flush()
	return aus
}

// bitReader reads an RBSP (emulation prevention bytes are skipped on the fly).
type bitReader struct {
	buf   []byte
	pos   int // byte position
	bit   uint
	zeros int
}

func (r *bitReader) readBit() (uint, bool) {
	if r.pos >= len(r.buf) {
		return 0, false
	}
	if r.bit == 0 {
		// skip emulation prevention byte 0x03 after two zero bytes
		if r.zeros >= 2 && r.buf[r.pos] == 3 {
			r.pos++
			r.zeros = 0
			if r.pos >= len(r.buf) {
				return 0, false
			}
		}
		if r.buf[r.pos] == 0 {
			r.zeros++
		} else {
			r.zeros = 0
		}
	}
	v := uint(r.buf[r.pos]>>(7-r.bit)) & 1
	r.bit++
	if r.bit == 8 {
		r.bit = 0
		r.pos++
	}
	return v, true
}

// readUE reads an unsigned Exp-Golomb code.
func (r *bitReader) readUE() (uint, bool) {
	lead := 0
	for {
		b, ok := r.readBit()
		if !ok {
			return 0, false
		}
		if b == 1 {
			break
		}
		lead++
		if lead > 31 {
			return 0, false
		}
	}
	v := uint(0)
	for i := 0; i < lead; i++ {
		b, ok := r.readBit()
		if !ok {
			return 0, false
		}
		v = v<<1 | b
	}
	return (1<<lead - 1) + v, true
}

// SliceType returns slice_type (0..4: P, B, I, SP, SI) of a slice NAL unit, or -1 if nalu is
// not a slice or its header cannot be read.
func SliceType(nalu []byte) int {
	t := NALUType(nalu)
	if t != naluNonIDR && t != naluIDR && t != 2 {
		return -1
	}
	r := bitReader{buf: nalu[1:]}
	if _, ok := r.readUE(); !ok { // first_mb_in_slice
		return -1
	}
	st, ok := r.readUE()
	if !ok || st > 9 {
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

// SPSProfile returns profile_idc of an SPS NAL unit (66 baseline, 77 main, 100 high), or 0.
func SPSProfile(sps []byte) int {
	if len(sps) < 2 || NALUType(sps) != naluSPS {
		return 0
	}
	return int(sps[1])
}
