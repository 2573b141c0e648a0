package streams

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/pion/rtp"
)

// MaxRTPPayload is the largest RTP payload the hub produces: small enough for every WebRTC
// path (1200 bytes leaves room for SRTP, UDP/IP and TURN/VPN headers in a 1500-byte MTU).
const MaxRTPPayload = 1200

// Payload types the hub uses on its own timeline.
const (
	VideoPayloadType = 96
)

// UnitKind says what a Unit carries.
type UnitKind uint8

const (
	UnitVideo UnitKind = iota // an H.264 access unit
	UnitAudio                 // one G.711 RTP packet
)

// Unit is what the hub fans out: one H.264 access unit (already packetized once into RTP
// packets with payloads of at most MaxRTPPayload bytes) or one audio packet. A Unit is shared by
// all readers and must not be modified.
type Unit struct {
	Kind UnitKind
	// Codec is "" for H.264 (what viewers get) and "H265" for units kept only for clips.
	Codec    string
	Keyframe bool     // an IDR access unit; SPS and PPS are in NALUs (in-band)
	NALUs    [][]byte // video only
	Packets  []*rtp.Packet
	PTS      int64     // on the hub's timeline, in the track's clock rate
	Received time.Time // when the last packet of the unit arrived from the camera
	seq      uint64    // publication order, from 1
}

// AudioFormat describes a G.711 track passed through.
type AudioFormat struct {
	MULaw       bool // PCMU if true, else PCMA
	PayloadType uint8
	SampleRate  int
	Channels    int
}

// Format is what the hub currently carries. It changes only when the camera's parameters do.
type Format struct {
	Codec  string // "H264"; for a refused stream the camera's codec, e.g. "H265"
	SPS    []byte
	PPS    []byte
	Width  int
	Height int
	Audio  *AudioFormat // nil without audio
}

// HubStats are the hub's counters.
type HubStats struct {
	Readers        int
	UnitsIn        uint64
	PacketsOut     uint64 // packets handed to reader queues
	PacketsDropped uint64 // packets slow readers did not take
	GOPUnits       int
}

// Hub fans one camera's packets out to many readers. Every reader has its own bounded queue;
// a reader that falls behind loses its own packets (counted) and resumes at the next keyframe,
// so it never holds up the camera or the other readers. The hub keeps the current GOP so that a
// new reader starts at once from the last keyframe.
//
// Write methods are called by one goroutine (the camera's source); a mutex guards the reader
// set, because readers come and go from HTTP and RTSP goroutines.
type Hub struct {
	Camera string
	// QueueSize is each reader's queue length in units (default 256, about 5 s of video).
	QueueSize int
	// GOPMaxUnits bounds the GOP cache (default 600 units); a longer GOP is not cached, and new
	// readers then wait for the next keyframe.
	GOPMaxUnits int
	// OnReadersChanged is called (outside the hub's lock) after a reader joins or leaves.
	OnReadersChanged func()

	mu        sync.Mutex
	readers   map[*Reader]struct{}
	gop       []*Unit
	gopValid  bool
	format    *Format
	formatCh  chan struct{} // closed when format is first set or changed
	enc       *rtph264.Encoder
	sps, pps  []byte
	needKey   bool
	bframes   bool
	video     timeline
	audio     timeline
	closed    bool
	done      chan struct{}
	lastUnit  time.Time
	unitsIn   atomic.Uint64
	pktsOut   atomic.Uint64
	pktsDrop  atomic.Uint64
	audioSeq  uint16
	audioSSRC uint32
	seq       uint64 // units published
}

// timeline maps a source's timestamps onto the hub's own, so that readers see continuous RTP
// timestamps across camera reconnects.
type timeline struct {
	clock    int64
	offset   int64
	lastOut  int64
	lastWall time.Time
	rebase   bool
	started  bool
}

func (t *timeline) out(pts int64, now time.Time) int64 {
	if !t.started {
		t.started, t.rebase = true, false
		t.offset = -pts
	} else if t.rebase {
		t.rebase = false
		gap := int64(now.Sub(t.lastWall)) * t.clock / int64(time.Second)
		if gap < 1 {
			gap = 1
		}
		t.offset = t.lastOut + gap - pts
	}
	o := pts + t.offset
	t.lastOut, t.lastWall = o, now
	return o
}

// Initialize prepares the hub.
func (h *Hub) Initialize() error {
	if h.QueueSize <= 0 {
		h.QueueSize = 256
	}
	if h.GOPMaxUnits <= 0 {
		h.GOPMaxUnits = 600
	}
	h.readers = make(map[*Reader]struct{})
	h.formatCh = make(chan struct{})
	h.done = make(chan struct{})
	h.enc = &rtph264.Encoder{PayloadType: VideoPayloadType, PayloadMaxSize: MaxRTPPayload, PacketizationMode: 1}
	h.video.clock, h.audio.clock = 90000, 8000
	h.needKey = true
	h.audioSSRC = 0x0ff51e00
	return h.enc.Init()
}

// Close disconnects every reader.
func (h *Hub) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	close(h.done)
	h.mu.Unlock()
}

// Done is closed when the hub is closed.
func (h *Hub) Done() <-chan struct{} { return h.done }

// SetFormat is called by the source at every (re)connect, before its first packet. The next
// video unit the readers get is a keyframe, on a timeline continuing the previous session's.
func (h *Hub) SetFormat(f Format) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f.SPS != nil {
		h.sps = f.SPS
	}
	if f.PPS != nil {
		h.pps = f.PPS
	}
	h.setFormatLocked(f)
	h.needKey = true
	h.video.rebase, h.audio.rebase = true, true
	h.gop, h.gopValid = nil, false
}

func (h *Hub) setFormatLocked(f Format) {
	if h.format != nil && sameFormat(*h.format, f) {
		return
	}
	h.format = &f
	close(h.formatCh)
	h.formatCh = make(chan struct{})
}

func sameFormat(a, b Format) bool {
	if a.Codec != b.Codec || string(a.SPS) != string(b.SPS) || string(a.PPS) != string(b.PPS) {
		return false
	}
	if (a.Audio == nil) != (b.Audio == nil) {
		return false
	}
	return a.Audio == nil || *a.Audio == *b.Audio
}

// Format returns the current format, or nil before the camera was first described, and a
// channel closed at the next change.
func (h *Hub) Format() (*Format, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.format, h.formatCh
}

// HasBFrames reports whether the camera's stream was seen to carry B slices.
func (h *Hub) HasBFrames() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bframes
}

// WriteVideo hands the hub one H.264 access unit with its PTS (90 kHz, source timeline). The
// hub copies the NAL units, drops AUDs, puts SPS and PPS in front of every IDR that lacks them,
// and packetizes the unit once for all readers.
func (h *Hub) WriteVideo(au [][]byte, pts int64, received time.Time) {
	size := 0
	key := false
	hasSPS, hasPPS := false, false
	for _, n := range au {
		switch naluType(n) {
		case h264.NALUTypeIDR:
			key = true
		case h264.NALUTypeSPS:
			hasSPS = true
		case h264.NALUTypePPS:
			hasPPS = true
		}
		size += len(n)
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	if h.needKey && !key {
		return
	}
	h.needKey = false

	// one allocation for the unit's data: the source's buffers may be reused
	nalus := make([][]byte, 0, len(au)+2)
	if key && !hasSPS && h.sps != nil {
		size += len(h.sps)
	}
	if key && !hasPPS && h.pps != nil {
		size += len(h.pps)
	}
	buf := make([]byte, 0, size)
	add := func(n []byte) {
		start := len(buf)
		buf = append(buf, n...)
		nalus = append(nalus, buf[start:len(buf):len(buf)])
	}
	if key && !hasSPS && h.sps != nil {
		add(h.sps)
	}
	if key && !hasPPS && h.pps != nil {
		add(h.pps)
	}
	var newSPS, newPPS []byte
	for _, n := range au {
		switch naluType(n) {
		case h264.NALUTypeAccessUnitDelimiter:
			continue
		case h264.NALUTypeSPS:
			newSPS = n
		case h264.NALUTypePPS:
			newPPS = n
		}
		add(n)
	}
	if newSPS != nil && string(newSPS) != string(h.sps) {
		h.sps = append([]byte(nil), newSPS...)
	}
	if newPPS != nil && string(newPPS) != string(h.pps) {
		h.pps = append([]byte(nil), newPPS...)
	}
	if !h.bframes && HasBSlice(nalus) {
		h.bframes = true
		if h.format != nil {
			f := *h.format
			h.setFormatLocked(f) // wake waiters: the stream's status changed
		}
	}

	outPTS := h.video.out(pts, received)
	pkts, err := h.enc.Encode(nalus)
	if err != nil {
		return
	}
	for _, p := range pkts {
		p.Timestamp = uint32(outPTS)
	}
	u := &Unit{Kind: UnitVideo, Keyframe: key, NALUs: nalus, Packets: pkts, PTS: outPTS, Received: received}

	if key {
		h.gop, h.gopValid = h.gop[:0:0], true
	}
	if h.gopValid {
		if len(h.gop) >= h.GOPMaxUnits {
			h.gop, h.gopValid = nil, false
		} else {
			h.gop = append(h.gop, u)
		}
	}
	h.publishLocked(u)
}

// WriteVideoH265 hands the hub one H.265 access unit (a camera pulled for its clips). It is
// copied and published without RTP packets and without the GOP cache: only clip readers use
// it, since browsers and the re-serve refuse H.265 before they attach.
func (h *Hub) WriteVideoH265(au [][]byte, pts int64, received time.Time) {
	key := h265.IsRandomAccess(au)
	size := 0
	for _, n := range au {
		size += len(n)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.needKey && !key {
		return
	}
	h.needKey = false
	buf := make([]byte, 0, size)
	nalus := make([][]byte, 0, len(au))
	for _, n := range au {
		if len(n) > 0 && h265.NALUType((n[0]>>1)&0x3f) == h265.NALUType_AUD_NUT {
			continue
		}
		start := len(buf)
		buf = append(buf, n...)
		nalus = append(nalus, buf[start:len(buf):len(buf)])
	}
	outPTS := h.video.out(pts, received)
	h.gop, h.gopValid = nil, false
	h.publishLocked(&Unit{Kind: UnitVideo, Codec: "H265", Keyframe: key, NALUs: nalus, PTS: outPTS, Received: received})
}

// WriteAudio hands the hub one G.711 RTP packet with its PTS (source timeline, 8 kHz).
func (h *Hub) WriteAudio(pkt *rtp.Packet, pts int64, received time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.needKey {
		return
	}
	outPTS := h.audio.out(pts, received)
	h.audioSeq++
	p := &rtp.Packet{
		Header: rtp.Header{
			Version: 2, Marker: pkt.Marker, PayloadType: pkt.PayloadType,
			SequenceNumber: h.audioSeq, Timestamp: uint32(outPTS), SSRC: h.audioSSRC,
		},
		Payload: append([]byte(nil), pkt.Payload...),
	}
	h.publishLocked(&Unit{Kind: UnitAudio, Packets: []*rtp.Packet{p}, PTS: outPTS, Received: received})
}

func (h *Hub) publishLocked(u *Unit) {
	h.seq++
	u.seq = h.seq
	h.unitsIn.Add(1)
	h.lastUnit = u.Received
	n := uint64(len(u.Packets))
	for r := range h.readers {
		switch r.offer(u) {
		case offerQueued:
			h.pktsOut.Add(n)
		case offerDropped:
			h.pktsDrop.Add(n)
		}
	}
}

// GOP returns the cached video units from the last keyframe on (nil if there is none).
func (h *Hub) GOP() []*Unit {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.gopValid || len(h.gop) == 0 {
		return nil
	}
	return append([]*Unit(nil), h.gop...)
}

// LastUnit returns when the hub last received a unit.
func (h *Hub) LastUnit() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastUnit
}

// Stats returns the hub's counters.
func (h *Hub) Stats() HubStats {
	h.mu.Lock()
	n, g := 0, len(h.gop)
	for r := range h.readers {
		n += r.consumers()
	}
	h.mu.Unlock()
	return HubStats{Readers: n, UnitsIn: h.unitsIn.Load(), PacketsOut: h.pktsOut.Load(), PacketsDropped: h.pktsDrop.Load(), GOPUnits: g}
}

// ReaderOptions configure a reader.
type ReaderOptions struct {
	// QueueSize overrides the hub's QueueSize.
	QueueSize int
	// NoGOP: start at the next keyframe instead of the cached GOP.
	NoGOP bool
	// Passive readers do not count for keeping an on-demand camera pulled.
	Passive bool
	// FromNow: no GOP and no wait for a keyframe; the reader takes the next unit published
	// (a fan-out group, whose members join already in step).
	FromNow bool
	// Shared: the reader serves a changing number of consumers (SetConsumers), which is what
	// it counts as in Stats and ActiveReaders; it starts with none.
	Shared bool
}

// AddReader attaches a reader. Unless NoGOP, its queue starts with the cached GOP (from the last
// keyframe, SPS/PPS in-band), so a viewer sees a picture at once.
func (h *Hub) AddReader(opts ReaderOptions) *Reader {
	q := opts.QueueSize
	if q <= 0 {
		q = h.QueueSize
	}
	r := &Reader{hub: h, ch: make(chan *Unit, q), waitKey: !opts.FromNow, synced: opts.FromNow, passive: opts.Passive, shared: opts.Shared}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return r
	}
	if !opts.NoGOP && !opts.FromNow && h.gopValid && len(h.gop) > 0 && len(h.gop) < q {
		for _, u := range h.gop {
			r.ch <- u
		}
		r.waitKey, r.synced = false, true
	}
	h.readers[r] = struct{}{}
	h.mu.Unlock()
	if h.OnReadersChanged != nil {
		h.OnReadersChanged()
	}
	return r
}

// ActiveReaders counts the readers that keep an on-demand camera pulled.
func (h *Hub) ActiveReaders() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for r := range h.readers {
		if !r.passive {
			n += r.consumers()
		}
	}
	return n
}

// handover passes r's place in the stream to another consumer without a gap or an overlap:
// when r has caught up (nothing queued, not waiting for a keyframe), take is called — with
// the hub's lock held, so nothing is published meanwhile — with the sequence number of the next
// unit to be published, and if it accepts, r is detached. Called from r's consumer goroutine,
// which has then handled every unit up to that one.
func (h *Hub) handover(r *Reader, take func(next uint64) bool) bool {
	h.mu.Lock()
	_, ok := h.readers[r]
	if !ok || h.closed || len(r.ch) > 0 || r.waitKey || !take(h.seq+1) {
		h.mu.Unlock()
		return false
	}
	delete(h.readers, r)
	h.mu.Unlock()
	if h.OnReadersChanged != nil {
		h.OnReadersChanged()
	}
	return true
}

func (h *Hub) removeReader(r *Reader) {
	h.mu.Lock()
	_, ok := h.readers[r]
	delete(h.readers, r)
	h.mu.Unlock()
	if ok && h.OnReadersChanged != nil {
		h.OnReadersChanged()
	}
}

// Reader is one consumer of a hub: a WebRTC viewer, the RTSP re-serve, a recorder.
type Reader struct {
	hub     *Hub
	ch      chan *Unit
	waitKey bool // guarded by hub.mu
	synced  bool // has had its first unit; waiting for the first keyframe is not a loss
	passive bool
	shared  bool
	members atomic.Int64 // consumers of a shared reader
	dropped atomic.Uint64
	once    sync.Once
}

func (r *Reader) consumers() int {
	if r.shared {
		return int(r.members.Load())
	}
	return 1
}

// SetConsumers sets how many consumers a Shared reader serves.
func (r *Reader) SetConsumers(n int) {
	r.members.Store(int64(n))
	if h := r.hub; h.OnReadersChanged != nil {
		h.OnReadersChanged()
	}
}

type offerResult int

const (
	offerQueued  offerResult = iota
	offerDropped             // the reader is behind
	offerSkipped             // the reader has not started yet (waits for its first keyframe)
)

// offer queues u unless the reader is behind; called with hub.mu held.
func (r *Reader) offer(u *Unit) offerResult {
	if r.waitKey {
		if u.Kind != UnitVideo || !u.Keyframe || len(r.ch) == cap(r.ch) {
			if !r.synced {
				return offerSkipped
			}
			r.dropped.Add(uint64(len(u.Packets)))
			return offerDropped
		}
		r.waitKey = false
	}
	select {
	case r.ch <- u:
		r.synced = true
		return offerQueued
	default:
		// behind: drop this unit and everything up to the next keyframe, since later
		// frames reference the lost one
		r.waitKey = true
		r.dropped.Add(uint64(len(u.Packets)))
		return offerDropped
	}
}

// C delivers the reader's units.
func (r *Reader) C() <-chan *Unit { return r.ch }

// Done is closed when the hub closes.
func (r *Reader) Done() <-chan struct{} { return r.hub.done }

// Dropped counts the packets this reader lost by falling behind.
func (r *Reader) Dropped() uint64 { return r.dropped.Load() }

// Close detaches the reader.
func (r *Reader) Close() {
	r.once.Do(func() { r.hub.removeReader(r) })
}
