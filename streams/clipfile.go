package streams

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// clipTimeScale is the MP4 track's clock: the hub's 90 kHz, so no timestamp is rounded.
const clipTimeScale = 90000

// clipFile writes one clip as fragmented MP4 (mediacommon's fmp4): the init segment, then a
// fragment (moof+mdat) about every second, each written to the file as soon as it is complete.
// The file is therefore a playable MP4 up to its last complete fragment at every moment: a
// process killed mid-clip leaves a file that recoverClipFile cuts back to that fragment.
// Nothing is re-encoded: the samples are the camera's access units in AVCC form.
type clipFile struct {
	f        *os.File
	codec    string // "h264" | "h265"
	seq      uint32
	firstDTS int64
	started  bool
	pending  []*fmp4.Sample
	baseDTS  int64 // DTS of pending[0]
	last     *clipSample
	lastDur  uint32
	size     int64
	samples  int
	duration int64 // 90 kHz, of the fragments written
}

// clipSample is one access unit as the pre-roll keeps it: AVCC payload (4-byte lengths), the
// camera's timestamps on the hub's timeline and when it arrived.
type clipSample struct {
	pts, dts int64
	key      bool
	avcc     []byte
	params   [][]byte // keyframes: VPS (H.265), SPS, PPS, as they came in-band
	recvNano int64
}

// fragmentTicks is the length of one fragment (1 s).
const fragmentTicks = clipTimeScale

func newClipFile(path, codec string) (*clipFile, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, err
	}
	return &clipFile{f: f, codec: codec}, nil
}

// add appends a sample. The first one must be a keyframe with its parameter sets.
func (c *clipFile) add(s *clipSample) error {
	if !c.started {
		if !s.key {
			return errors.New("a clip must start at a keyframe")
		}
		if err := c.writeInit(s); err != nil {
			return err
		}
		c.started, c.firstDTS, c.baseDTS = true, s.dts, s.dts
	}
	if c.last != nil {
		d := s.dts - c.last.dts
		if d <= 0 || d > 10*clipTimeScale {
			d = int64(c.lastDur) // a reconnect or a bad timestamp: keep the pace
			if d <= 0 {
				d = clipTimeScale / 25
			}
		}
		if err := c.push(c.last, uint32(d)); err != nil {
			return err
		}
		c.lastDur = uint32(d)
	}
	c.last = s
	return nil
}

func (c *clipFile) push(s *clipSample, dur uint32) error {
	if len(c.pending) > 0 && s.key && c.pendingTicks() >= fragmentTicks/2 || c.pendingTicks() >= fragmentTicks {
		if err := c.flush(); err != nil {
			return err
		}
	}
	if len(c.pending) == 0 {
		c.baseDTS = c.nextDTS()
	}
	off := s.pts - s.dts
	if off < 0 || off > 1<<30 {
		off = 0
	}
	// a copy: the pre-roll reuses its bytes
	c.pending = append(c.pending, &fmp4.Sample{Duration: dur, PTSOffset: int32(off), IsNonSyncSample: !s.key, Payload: append([]byte(nil), s.avcc...)})
	return nil
}

func (c *clipFile) pendingTicks() int64 {
	var t int64
	for _, p := range c.pending {
		t += int64(p.Duration)
	}
	return t
}

// nextDTS is the decode time of the next sample on the clip's own timeline (from 0).
func (c *clipFile) nextDTS() int64 { return c.duration + c.pendingTicks() }

func (c *clipFile) writeInit(s *clipSample) error {
	var codec mp4.Codec
	switch c.codec {
	case "h265":
		var vps, sps, pps []byte
		for _, p := range s.params {
			if len(p) == 0 {
				continue
			}
			switch (p[0] >> 1) & 0x3f {
			case 32:
				vps = p
			case 33:
				sps = p
			case 34:
				pps = p
			}
		}
		if vps == nil || sps == nil || pps == nil {
			return errors.New("the keyframe lacks H.265 VPS/SPS/PPS")
		}
		codec = &mp4.CodecH265{VPS: vps, SPS: sps, PPS: pps}
	default:
		var sps, pps []byte
		for _, p := range s.params {
			if len(p) == 0 {
				continue
			}
			switch p[0] & 0x1f {
			case 7:
				sps = p
			case 8:
				pps = p
			}
		}
		if sps == nil || pps == nil {
			return errors.New("the keyframe lacks H.264 SPS/PPS")
		}
		codec = &mp4.CodecH264{SPS: sps, PPS: pps}
	}
	init := fmp4.Init{Tracks: []*fmp4.InitTrack{{ID: 1, TimeScale: clipTimeScale, Codec: codec}}}
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		return fmt.Errorf("mp4 init: %w", err)
	}
	return c.write(buf.Bytes())
}

func (c *clipFile) flush() error {
	if len(c.pending) == 0 {
		return nil
	}
	c.seq++
	part := fmp4.Part{SequenceNumber: c.seq, Tracks: []*fmp4.PartTrack{{ID: 1, BaseTime: uint64(c.duration), Samples: c.pending}}}
	var buf seekablebuffer.Buffer
	if err := part.Marshal(&buf); err != nil {
		return fmt.Errorf("mp4 fragment: %w", err)
	}
	if err := c.write(buf.Bytes()); err != nil {
		return err
	}
	c.samples += len(c.pending)
	c.duration += c.pendingTicks()
	c.pending = nil
	return nil
}

func (c *clipFile) write(b []byte) error {
	n, err := c.f.Write(b)
	c.size += int64(n)
	return err
}

// finish writes the last sample (with the previous one's duration) and the last fragment,
// syncs and closes the file.
func (c *clipFile) finish() error {
	if c.last != nil {
		d := c.lastDur
		if d == 0 {
			d = clipTimeScale / 25
		}
		if err := c.push(c.last, d); err != nil {
			c.f.Close()
			return err
		}
		c.last = nil
	}
	err := c.flush()
	if serr := c.f.Sync(); err == nil {
		err = serr
	}
	if cerr := c.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// abort closes the file without writing what is pending.
func (c *clipFile) abort() { c.f.Close() }

// MP4Box is one top-level box of an MP4 file.
type MP4Box struct {
	Type   string
	Offset int64
	Size   int64
}

// ErrNotMP4 is returned for a file that does not start with an MP4 box.
var ErrNotMP4 = errors.New("not an MP4 file")

// ScanMP4Boxes reads the top-level boxes of an MP4 file (ftyp, moov, moof, mdat …) from r of
// the given size, up to the first box that is cut off or malformed; it returns the complete
// boxes and the offset where the complete part ends. It is how a clip left behind by a killed
// process is cut back to its last complete fragment.
func ScanMP4Boxes(r io.ReaderAt, size int64) ([]MP4Box, int64) {
	var out []MP4Box
	var off int64
	var hdr [16]byte
	for off+8 <= size {
		if _, err := r.ReadAt(hdr[:8], off); err != nil {
			break
		}
		n := int64(binary.BigEndian.Uint32(hdr[:4]))
		typ := string(hdr[4:8])
		hl := int64(8)
		if n == 1 {
			if off+16 > size {
				break
			}
			if _, err := r.ReadAt(hdr[8:16], off+8); err != nil {
				break
			}
			n = int64(binary.BigEndian.Uint64(hdr[8:16]))
			hl = 16
		}
		if n < hl || n > size-off || !boxTypeOK(typ) {
			break
		}
		out = append(out, MP4Box{Type: typ, Offset: off, Size: n})
		off += n
	}
	return out, off
}

func boxTypeOK(t string) bool {
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// recoverClipFile cuts a clip file left behind by a stopped process back to its last complete
// fragment (a moof followed by its mdat). It returns the number of fragments kept; 0 means
// the file holds no playable video.
func recoverClipFile(path string) (int, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	boxes, _ := ScanMP4Boxes(f, st.Size())
	end, frags := recoverableEnd(boxes)
	if frags == 0 {
		return 0, nil
	}
	if end < st.Size() {
		if err := f.Truncate(end); err != nil {
			return 0, err
		}
	}
	return frags, f.Sync()
}

// recoverableEnd is where the last complete fragment ends and how many there are: the file
// must start ftyp, moov; each moof counts once its mdat follows.
func recoverableEnd(boxes []MP4Box) (int64, int) {
	if len(boxes) < 2 || boxes[0].Type != "ftyp" || boxes[1].Type != "moov" {
		return 0, 0
	}
	end := boxes[1].Offset + boxes[1].Size
	frags := 0
	for i := 2; i+1 < len(boxes); i++ {
		if boxes[i].Type == "moof" && boxes[i+1].Type == "mdat" {
			frags++
			end = boxes[i+1].Offset + boxes[i+1].Size
			i++
		}
	}
	return end, frags
}
