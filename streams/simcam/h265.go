package simcam

import (
	"errors"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"

	"github.com/offsite-gw/offsite/streams/h264file"
)

// parseH265 splits an H.265 Annex-B clip into access units (ITU-T H.265 7.4.2.4.4: a new unit
// begins at an access unit delimiter, at a VPS, SPS, PPS or prefix SEI after a picture's slices,
// or at a slice with first_slice_segment_in_pic_flag) and moves VPS/SPS/PPS out of band.
func (k *cam) parseH265() error {
	var cur [][]byte
	vcl := false
	flush := func() {
		if vcl && len(cur) > 0 {
			k.aus = append(k.aus, cur)
		}
		cur, vcl = nil, false
	}
	for _, n := range h264file.NALUs(k.cfg.Clip) {
		if len(n) < 3 {
			continue
		}
		t := h265.NALUType((n[0] >> 1) & 0x3f)
		switch {
		case t == h265.NALUType_AUD_NUT:
			flush()
			continue
		case t == h265.NALUType_VPS_NUT || t == h265.NALUType_SPS_NUT || t == h265.NALUType_PPS_NUT:
			if vcl {
				flush()
			}
			switch t {
			case h265.NALUType_VPS_NUT:
				if k.vps == nil {
					k.vps = n
				}
			case h265.NALUType_SPS_NUT:
				if k.sps == nil {
					k.sps = n
				}
			default:
				if k.pps == nil {
					k.pps = n
				}
			}
			continue
		case t == h265.NALUType_PREFIX_SEI_NUT:
			if vcl {
				flush()
			}
		case t < 32:
			if vcl && n[2]&0x80 != 0 { // first_slice_segment_in_pic_flag
				flush()
			}
			vcl = true
		}
		cur = append(cur, n)
	}
	flush()
	if len(k.aus) == 0 || k.vps == nil || k.sps == nil || k.pps == nil {
		return errors.New("H.265 clip has no access units or no VPS/SPS/PPS")
	}
	for len(k.aus) > 0 && !h265.IsRandomAccess(k.aus[0]) {
		k.aus = k.aus[1:]
	}
	if len(k.aus) == 0 {
		return errors.New("H.265 clip has no IRAP picture")
	}
	return nil
}
