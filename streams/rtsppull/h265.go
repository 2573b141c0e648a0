package rtsppull

import (
	"errors"
	"fmt"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
)

// startH265 sets up and plays a camera's H.265 video (Session.H265).
func (s *Session) startH265(desc *description.Session, m *description.Media, f *format.H265) error {
	c := s.client
	if _, err := c.Setup(desc.BaseURL, m, 0, 0); err != nil {
		return fmt.Errorf("setup video: %w", err)
	}
	vps, sps, pps := f.SafeParams()
	p := &params265{vps: vps, sps: sps, pps: pps}
	tr := Tracks{Codec: "H265", VPS: vps, SPS: sps, PPS: pps}
	var parsed h265.SPS
	if sps != nil && parsed.Unmarshal(sps) == nil {
		tr.Width, tr.Height = parsed.Width(), parsed.Height()
	}
	if s.OnTracks != nil {
		s.OnTracks(tr)
	}
	dec, err := f.CreateDecoder()
	if err != nil {
		return fmt.Errorf("h265 depacketizer: %w", err)
	}
	s.onVideo(m, f, dec.Decode, func(err error) bool {
		return errors.Is(err, rtph265.ErrMorePacketsNeeded) || errors.Is(err, rtph265.ErrNonStartingPacketAndNoPrevious)
	}, p.inBand)
	if _, err := c.Play(nil); err != nil {
		return fmt.Errorf("play: %w", err)
	}
	return nil
}

// params265 keeps the stream's latest VPS, SPS and PPS and puts them in front of IRAP access
// units that lack them (MP4 writers and decoders need them).
type params265 struct {
	vps, sps, pps []byte
}

func (p *params265) inBand(au [][]byte) [][]byte {
	var has [3]bool
	for _, n := range au {
		if len(n) < 2 {
			continue
		}
		switch h265.NALUType((n[0] >> 1) & 0x3f) {
		case h265.NALUType_VPS_NUT:
			has[0] = true
			p.vps = append(p.vps[:0:0], n...)
		case h265.NALUType_SPS_NUT:
			has[1] = true
			p.sps = append(p.sps[:0:0], n...)
		case h265.NALUType_PPS_NUT:
			has[2] = true
			p.pps = append(p.pps[:0:0], n...)
		}
	}
	if !h265.IsRandomAccess(au) {
		return au
	}
	out := make([][]byte, 0, len(au)+3)
	for i, ps := range [][]byte{p.vps, p.sps, p.pps} {
		if !has[i] && len(ps) > 0 {
			out = append(out, ps)
		}
	}
	if len(out) == 0 {
		return au
	}
	return append(out, au...)
}
