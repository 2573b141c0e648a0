package streams

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"

	"github.com/offsite-gw/offsite/internal/errs"
)

// Clips keeps a pre-roll of the last seconds of each enabled camera's access units — copied as
// they come, never decoded — and cuts MP4 clips from it: a clip starts at the last keyframe at
// least PreRoll before the moment asked for and runs until PostRoll after it, remuxed into MP4
// (mediacommon's fmp4 writer), never transcoded. A request for a camera whose clip is still
// being written extends that clip instead of starting a second one.
//
// A clip is written to Dir as it goes (a fragment a second) beside a small JSON journal naming
// what it is for. When it is done — complete, or cut short because the camera was lost or the
// relay closed — OnClip gets the synced file; only after OnClip returns nil are the file and
// its journal removed. Initialize hands files a killed process left behind to OnClip again,
// cut back to their last complete fragment, or moves those it cannot use to Dir/quarantine.
//
// The pre-roll reads the hub as a passive reader with its own queue, so it never holds up the
// camera or its viewers; if it falls behind, it loses units up to the next keyframe like any
// reader.
type Clips struct {
	Manager *Manager
	// Dir holds clips being written and their journals.
	Dir string
	// PreRoll is kept per camera (default 10 s); PostRoll is recorded after the moment
	// (default 20 s).
	PreRoll  time.Duration
	PostRoll time.Duration
	// MaxCameraBytes is one camera's pre-roll (default 3 MiB, reserved when the camera is
	// enabled, outside the Go heap on Linux); MaxTotalBytes bounds all cameras' together
	// (default 256 MiB): a camera enabled when less is left gets what is left (at least
	// 256 KiB, else Enable fails). A camera over its bound keeps fewer seconds, from a keyframe.
	MaxCameraBytes int64
	MaxTotalBytes  int64
	// MaxClip bounds a clip that overlapping requests keep extending (default 10 min).
	MaxClip time.Duration
	// LostAfter: a clip that gets no unit for this long ends incomplete (default 10 s).
	LostAfter time.Duration
	// OnClip stores a finished clip (called from the clip's goroutine, or from Initialize for
	// recovered ones). If it fails, the clip stays in Dir and is offered again at the next
	// Initialize.
	OnClip func(ClipResult) error
	Logger *slog.Logger

	mu      sync.Mutex
	cams    map[string]*clipCamera
	closed  bool
	wg      sync.WaitGroup
	retryMu sync.Mutex

	bytesWritten atomic.Int64
	clipsDone    atomic.Int64
	clipsFailed  atomic.Int64
	dropped      atomic.Int64
	overBudget   atomic.Int64
	arenaTotal   int64 // bytes of all pre-roll arenas, guarded by mu
}

// ClipRequest asks for a clip around a moment.
type ClipRequest struct {
	// Ref names what the clip is evidence for (an event id).
	Ref string
	// At is the moment (the event's time); zero means now.
	At time.Time
	// Pre and Post override PreRoll and PostRoll (a manual recording: Pre 0, Post minutes).
	Pre, Post time.Duration
}

// ClipRef is one request a clip serves.
type ClipRef struct {
	Ref string    `json:"ref"`
	At  time.Time `json:"at"`
}

// ClipResult is a finished clip, handed to OnClip.
type ClipResult struct {
	ID       string    `json:"id"`
	Camera   string    `json:"camera"`
	Codec    string    `json:"codec"` // "h264" | "h265"
	Path     string    `json:"-"`     // the synced MP4 file (OnClip copies it; it is removed after)
	Start    time.Time `json:"start"` // wall-clock time of the first frame
	End      time.Time `json:"end"`   // of the end of the last frame
	Refs     []ClipRef `json:"refs"`
	Complete bool      `json:"complete"`
	Note     string    `json:"note,omitempty"`
	Bytes    int64     `json:"bytes"`
	// Until is the end the clip was meant to reach.
	Until time.Time `json:"until"`
	// Finished is set in the journal once the file is final.
	Finished bool `json:"finished,omitempty"`
	// Logged is set in the journal once OnClip succeeded (so a restart does not log it twice).
	Logged bool `json:"logged,omitempty"`
}

// ClipStats are the clip recorder's counters.
type ClipStats struct {
	Cameras       int   // cameras with a pre-roll
	PreRollBytes  int64 // held in all pre-rolls
	ActiveClips   int
	ClipsDone     int64
	ClipsFailed   int64 // OnClip failed; kept in Dir
	BytesWritten  int64 // MP4 bytes written
	UnitsDropped  int64 // pre-roll units lost by falling behind
	ArenaBytes    int64 // memory reserved for all pre-rolls
	OverBudget    int64 // times a camera's GOP exceeded its pre-roll bound
	PreRollPerCam map[string]time.Duration
}

// Initialize applies defaults, creates Dir and recovers clips left there.
func (c *Clips) Initialize() error {
	if c.Manager == nil {
		return errors.New("clips: no manager")
	}
	if c.Dir == "" {
		return errors.New("clips: no directory")
	}
	if c.PreRoll <= 0 {
		c.PreRoll = 10 * time.Second
	}
	if c.PostRoll <= 0 {
		c.PostRoll = 20 * time.Second
	}
	if c.MaxCameraBytes <= 0 {
		c.MaxCameraBytes = 3 << 20
	}
	if c.MaxTotalBytes <= 0 {
		c.MaxTotalBytes = 256 << 20
	}
	if c.MaxClip <= 0 {
		c.MaxClip = 10 * time.Minute
	}
	if c.LostAfter <= 0 {
		c.LostAfter = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.cams = map[string]*clipCamera{}
	if err := os.MkdirAll(c.Dir, 0o750); err != nil {
		return fmt.Errorf("clips: %w", err)
	}
	c.Recover()
	return nil
}

// Close stops every pre-roll and ends the clips being written as incomplete ("the gateway
// stopped"), handing them to OnClip.
func (c *Clips) Close() {
	c.mu.Lock()
	c.closed = true
	cams := c.cams
	c.cams = map[string]*clipCamera{}
	c.mu.Unlock()
	for _, cc := range cams {
		cc.stop("the gateway stopped")
	}
	c.wg.Wait()
}

// Enable starts (on) or stops (off) keeping a pre-roll of a camera. Stopping ends the
// camera's clip in progress as incomplete.
func (c *Clips) Enable(camera string, on bool) error {
	c.mu.Lock()
	cc := c.cams[camera]
	if !on {
		delete(c.cams, camera)
		c.mu.Unlock()
		if cc != nil {
			cc.stop("clips were turned off for the camera")
		}
		return nil
	}
	if c.closed {
		c.mu.Unlock()
		return errs.E(errs.KindUnavailable, "closed", "the clip recorder is shutting down")
	}
	cam, ok := c.Manager.Camera(camera)
	if cc != nil && ok && cc.hub == cam.Hub() {
		c.mu.Unlock()
		return nil
	}
	if cc != nil {
		delete(c.cams, camera)
	}
	if !ok {
		c.mu.Unlock()
		if cc != nil {
			cc.stop("the camera was removed")
		}
		return errs.E(errs.KindNotFound, "camera_not_found", "camera %q is not known to the video relay", camera)
	}
	size := c.MaxCameraBytes
	if free := c.MaxTotalBytes - c.arenaTotal; free < size {
		size = free
	}
	if size < minArena {
		c.mu.Unlock()
		if cc != nil {
			cc.stop("the camera was reconfigured")
		}
		return errs.E(errs.KindUnavailable, "preroll_memory_full", "the pre-rolls of %d cameras use the %d MiB allowed in total (clips.max_total_mb)", len(c.cams), c.MaxTotalBytes>>20)
	}
	c.arenaTotal += size
	nc := &clipCamera{c: c, id: camera, hub: cam.Hub(), done: make(chan struct{})}
	nc.arena, nc.release = newArena(int(size))
	c.cams[camera] = nc
	c.mu.Unlock()
	if cc != nil {
		cc.stop("the camera was reconfigured")
	}
	nc.reader = nc.hub.AddReader(ReaderOptions{Passive: true, QueueSize: 1024})
	c.wg.Add(1)
	go nc.run()
	return nil
}

// Enabled lists the cameras with a pre-roll.
func (c *Clips) Enabled() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.cams))
	for id := range c.cams {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Record starts a clip of camera around req.At, or extends the clip being written if req.At
// falls before its end. It returns the clip's id and the end it now runs to.
func (c *Clips) Record(camera string, req ClipRequest) (string, time.Time, error) {
	c.mu.Lock()
	cc := c.cams[camera]
	c.mu.Unlock()
	if cc == nil {
		return "", time.Time{}, errs.E(errs.KindNotFound, "clips_off", "camera %q keeps no pre-roll (clips are not enabled for it)", camera)
	}
	if req.At.IsZero() {
		req.At = time.Now()
	}
	pre, post := c.PreRoll, c.PostRoll
	if req.Pre > 0 {
		pre = req.Pre
	} else if req.Pre < 0 {
		pre = 0
	}
	if req.Post > 0 {
		post = req.Post
	}
	return cc.record(req.Ref, req.At, pre, post)
}

// Stats returns the recorder's counters.
func (c *Clips) Stats() ClipStats {
	c.mu.Lock()
	cams := make([]*clipCamera, 0, len(c.cams))
	for _, cc := range c.cams {
		cams = append(cams, cc)
	}
	arena := c.arenaTotal
	c.mu.Unlock()
	st := ClipStats{Cameras: len(cams), ArenaBytes: arena, ClipsDone: c.clipsDone.Load(), ClipsFailed: c.clipsFailed.Load(),
		BytesWritten: c.bytesWritten.Load(), UnitsDropped: c.dropped.Load(), OverBudget: c.overBudget.Load(), PreRollPerCam: map[string]time.Duration{}}
	for _, cc := range cams {
		cc.mu.Lock()
		st.PreRollBytes += cc.ringBytes
		if cc.clip != nil {
			st.ActiveClips++
		}
		if n := len(cc.ring); n > 0 {
			st.PreRollPerCam[cc.id] = time.Duration(cc.ring[n-1].recvNano - cc.ring[0].recvNano)
		}
		cc.mu.Unlock()
	}
	return st
}

// minArena is the smallest pre-roll a camera gets.
const minArena = 256 << 10

// clipCamera is one camera's pre-roll and its clip in progress.
type clipCamera struct {
	c      *Clips
	id     string
	hub    *Hub
	reader *Reader
	done   chan struct{}
	once   sync.Once

	mu        sync.Mutex
	ring      []*clipSample
	ringBytes int64
	codec     string
	// arena holds the pre-roll's bytes (outside the Go heap on Linux), used as a circular
	// buffer: ring's samples lie in it in order from tail, the next one goes at head.
	arena    []byte
	release  func()
	head     int
	scratch  []byte
	dts264   *h264.DTSExtractor
	dts265   *h265.DTSExtractor
	lastUnit time.Time
	clip     *activeClip
	stopNote string
}

// reached says whether s lies at or beyond the clip's end on the camera's own timeline: the
// clip's times are its first frame's arrival plus the camera's timestamps, so that its start,
// end and length agree with the file whatever the network's jitter.
func (cl *activeClip) reached(s *clipSample) bool {
	return s.dts-cl.file.firstDTS >= int64(cl.until.Sub(cl.res.Start))*clipTimeScale/int64(time.Second)
}

type activeClip struct {
	created time.Time
	res     ClipResult
	file    *clipFile
	until   time.Time
	journal string
}

func (cc *clipCamera) stop(note string) {
	cc.once.Do(func() {
		cc.mu.Lock()
		cc.stopNote = note
		cc.mu.Unlock()
		close(cc.done)
	})
}

func (cc *clipCamera) run() {
	defer cc.c.wg.Done()
	defer cc.freeArena()
	defer cc.reader.Close()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var dropped uint64
	for {
		select {
		case <-cc.done:
			cc.mu.Lock()
			note := cc.stopNote
			cc.mu.Unlock()
			cc.endClip(false, note)
			return
		case <-cc.reader.Done():
			cc.endClip(false, "the camera was removed")
			return
		case u := <-cc.reader.C():
			if u.Kind == UnitVideo {
				cc.ingest(u)
			}
			if d := cc.reader.Dropped(); d != dropped {
				cc.c.dropped.Add(int64(d - dropped))
				dropped = d
			}
		case now := <-tick.C:
			cc.mu.Lock()
			if cl := cc.clip; cl != nil {
				last := cc.lastUnit
				if last.Before(cl.created) {
					last = cl.created
				}
				if now.Sub(last) >= cc.c.LostAfter {
					into := time.Duration(0)
					if !cl.res.Start.IsZero() {
						into = last.Sub(cl.res.Start)
					}
					cc.finishLocked(false, fmt.Sprintf("camera lost %s into the clip", durText(into)))
				}
			}
			cc.mu.Unlock()
		}
	}
}

// freeArena gives the pre-roll's memory back once the camera's clip is finished.
func (cc *clipCamera) freeArena() {
	cc.mu.Lock()
	size := int64(len(cc.arena))
	cc.ring, cc.ringBytes, cc.arena = nil, 0, nil
	release := cc.release
	cc.mu.Unlock()
	if release != nil {
		release()
	}
	cc.c.mu.Lock()
	cc.c.arenaTotal -= size
	cc.c.mu.Unlock()
}

func durText(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return fmt.Sprintf("%d s", int(d.Round(time.Second)/time.Second))
}

// ingest copies one unit into the pre-roll and the clip in progress.
func (cc *clipCamera) ingest(u *Unit) {
	codec := "h264"
	if u.Codec == "H265" {
		codec = "h265"
	}
	s := &clipSample{pts: u.PTS, key: u.Keyframe, recvNano: u.Received.UnixNano()}
	// AVCC form into the scratch buffer first (only this goroutine uses it), then into the
	// camera's arena under the lock
	buf := cc.scratch[:0]
	var params [][2]int
	for _, n := range u.NALUs {
		l := len(n)
		buf = append(buf, byte(l>>24), byte(l>>16), byte(l>>8), byte(l))
		start := len(buf)
		buf = append(buf, n...)
		if u.Keyframe && isParamSet(codec, n) {
			params = append(params, [2]int{start, len(buf)})
		}
	}
	cc.scratch = buf

	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.arena == nil {
		return // stopped
	}
	if codec != cc.codec {
		cc.codec = codec
		cc.ring, cc.ringBytes = nil, 0
		cc.dts264, cc.dts265 = nil, nil
	}
	s.dts = cc.dtsOf(u)
	cc.lastUnit = u.Received
	if len(cc.ring) > 0 || s.key {
		if s.avcc = cc.place(len(buf)); s.avcc != nil {
			copy(s.avcc, buf)
			for _, p := range params {
				s.params = append(s.params, s.avcc[p[0]:p[1]:p[1]])
			}
			cc.appendRing(s)
		} else {
			cc.c.overBudget.Add(1) // one unit larger than a quarter of the pre-roll's bound
		}
	}
	if cl := cc.clip; cl != nil && (cl.file.started || s.key) {
		if !cl.file.started {
			cl.res.Start = u.Received
			cc.writeJournal(cl)
		}
		if err := cl.file.add(s); err != nil {
			cc.c.Logger.Warn("clip write failed", "camera", cc.id, "clip", cl.res.ID, "err", err)
			cc.finishLocked(false, "the clip could not be written: "+err.Error())
			return
		}
		if cl.reached(s) {
			cc.finishLocked(true, "")
		}
	}
}

func isParamSet(codec string, n []byte) bool {
	if len(n) == 0 {
		return false
	}
	if codec == "h265" {
		t := (n[0] >> 1) & 0x3f
		return t >= 32 && t <= 34
	}
	t := n[0] & 0x1f
	return t == 7 || t == 8
}

// dtsOf derives the decode time from the picture order (B-frames); without B-frames it is the
// PTS. A stream the extractor cannot follow falls back to the PTS.
func (cc *clipCamera) dtsOf(u *Unit) int64 {
	var (
		dts int64
		err error
	)
	if cc.codec == "h265" {
		if cc.dts265 == nil {
			if !u.Keyframe {
				return u.PTS
			}
			cc.dts265 = &h265.DTSExtractor{}
			cc.dts265.Initialize()
		}
		dts, err = cc.dts265.Extract(u.NALUs, u.PTS)
	} else {
		if cc.dts264 == nil {
			if !u.Keyframe {
				return u.PTS
			}
			cc.dts264 = &h264.DTSExtractor{}
			cc.dts264.Initialize()
		}
		dts, err = cc.dts264.Extract(u.NALUs, u.PTS)
	}
	if err != nil || dts > u.PTS {
		cc.dts264, cc.dts265 = nil, nil
		return u.PTS
	}
	return dts
}

// appendRing adds s and trims the ring to PreRoll plus a margin for events logged late, from a
// keyframe, within the byte budget.
func (cc *clipCamera) appendRing(s *clipSample) {
	if len(cc.ring) == 0 && !s.key {
		return
	}
	cc.ring = append(cc.ring, s)
	cc.ringBytes += int64(len(s.avcc))
	keep := int64(cc.c.PreRoll + preRollMargin)
	for len(cc.ring) > 1 {
		next := -1 // the second keyframe: the first GOP ends before it
		for i := 1; i < len(cc.ring); i++ {
			if cc.ring[i].key {
				next = i
				break
			}
		}
		if next < 0 {
			break
		}
		// drop the first GOP if the rest still spans keep
		if s.recvNano-cc.ring[next].recvNano < keep {
			break
		}
		cc.dropFront(next)
	}
}

// dropFront forgets the first n samples of the ring.
func (cc *clipCamera) dropFront(n int) {
	for _, d := range cc.ring[:n] {
		cc.ringBytes -= int64(len(d.avcc))
	}
	cc.ring = append(cc.ring[:0:0], cc.ring[n:]...)
}

// place returns n bytes of the arena for the next sample, forgetting the oldest samples whose
// bytes it needs (whole GOPs: the ring always starts at a keyframe), or nil for a unit larger
// than a quarter of the arena.
func (cc *clipCamera) place(n int) []byte {
	if n > len(cc.arena)/4 {
		return nil
	}
	at := cc.head
	if at+n > len(cc.arena) {
		// wrap: the samples between head and the end are the oldest; they go first
		for len(cc.ring) > 0 && offsetIn(cc.arena, cc.ring[0].avcc) >= at {
			cc.dropFront(1)
		}
		at = 0
	}
	for len(cc.ring) > 0 {
		off := offsetIn(cc.arena, cc.ring[0].avcc)
		if off+len(cc.ring[0].avcc) <= at || off >= at+n {
			break
		}
		cc.dropFront(1)
	}
	// the ring starts at a keyframe
	dropped := false
	for len(cc.ring) > 0 && !cc.ring[0].key {
		cc.dropFront(1)
		dropped = true
	}
	if dropped && len(cc.ring) == 0 {
		cc.c.overBudget.Add(1) // one GOP larger than the bound: again from the next keyframe
	}
	cc.head = at + n
	return cc.arena[at : at+n : at+n]
}

// offsetIn is where b starts inside arena.
func offsetIn(arena, b []byte) int {
	return int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) - uintptr(unsafe.Pointer(unsafe.SliceData(arena))))
}

// preRollMargin is kept beyond PreRoll, so that an event logged a few seconds after it
// happened still gets its full pre-roll.
const preRollMargin = 5 * time.Second

func (cc *clipCamera) record(ref string, at time.Time, pre, post time.Duration) (string, time.Time, error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	until := at.Add(post)
	if cl := cc.clip; cl != nil && !at.After(cl.until) {
		if until.After(cl.until) {
			limit := cl.res.Start.Add(cc.c.MaxClip)
			if until.After(limit) {
				until = limit
			}
			cl.until = until
		}
		cl.res.Refs = append(cl.res.Refs, ClipRef{Ref: ref, At: at})
		cl.res.Until = cl.until
		cc.writeJournal(cl)
		return cl.res.ID, cl.until, nil
	}
	if cc.clip != nil {
		cc.finishLocked(true, "")
	}
	if len(cc.ring) == 0 {
		// nothing kept yet (a camera just enabled): the clip starts at the next keyframe
		return cc.startClip(ref, at, until, -1, "no video was kept before the moment")
	}
	// the last keyframe at least pre before the moment, else the oldest kept; frames are
	// placed on the wall clock by the camera's timestamps from the newest one, so that the
	// network's jitter (a keyframe is large and arrives late) does not move the start
	from := 0
	want := at.Add(-pre).UnixNano()
	for i, s := range cc.ring {
		if s.key && cc.wallOf(s) <= want {
			from = i
		}
	}
	note := ""
	if short := at.Sub(time.Unix(0, cc.wallOf(cc.ring[from]))); short < pre {
		note = fmt.Sprintf("only %s of video before the moment were kept", durText(short))
	}
	return cc.startClip(ref, at, until, from, note)
}

// wallOf is when s was taken by the wall clock: the newest frame's arrival minus the camera's
// time between them.
func (cc *clipCamera) wallOf(s *clipSample) int64 {
	newest := cc.ring[len(cc.ring)-1]
	return newest.recvNano - (newest.pts-s.pts)*int64(time.Second)/clipTimeScale
}

// startClip opens a clip from ring[from] on (from < 0: from the next keyframe).
func (cc *clipCamera) startClip(ref string, at, until time.Time, from int, note string) (string, time.Time, error) {
	var start time.Time
	if from >= 0 {
		start = time.Unix(0, cc.wallOf(cc.ring[from]))
	}
	id := newClipID()
	path := filepath.Join(cc.c.Dir, id+".mp4.part")
	f, err := newClipFile(path, cc.codec)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("clip %s: %w", cc.id, err)
	}
	cl := &activeClip{file: f, until: until, journal: filepath.Join(cc.c.Dir, id+".json"), created: time.Now(),
		res: ClipResult{ID: id, Camera: cc.id, Codec: cc.codec, Path: path, Start: start, Refs: []ClipRef{{Ref: ref, At: at}},
			Until: until, Note: note}}
	cc.writeJournal(cl)
	if from < 0 {
		cc.clip = cl
		return id, until, nil
	}
	for _, s := range cc.ring[from:] {
		if err := f.add(s); err != nil {
			f.abort()
			_ = os.Remove(path)
			_ = os.Remove(cl.journal)
			return "", time.Time{}, fmt.Errorf("clip %s: %w", cc.id, err)
		}
	}
	cc.clip = cl
	if cl.reached(cc.ring[len(cc.ring)-1]) {
		cc.finishLocked(true, "")
	}
	return id, until, nil
}

func newClipID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

func (cc *clipCamera) writeJournal(cl *activeClip) {
	b, _ := json.Marshal(cl.res)
	tmp := cl.journal + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err == nil {
		err = os.Rename(tmp, cl.journal)
		if err != nil {
			cc.c.Logger.Warn("clip journal not written", "clip", cl.res.ID, "err", err)
		}
	}
}

func (cc *clipCamera) endClip(complete bool, note string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.clip != nil {
		cc.finishLocked(complete, note)
	}
}

// finishLocked closes the clip in progress and hands it to OnClip on its own goroutine.
func (cc *clipCamera) finishLocked(complete bool, note string) {
	cl := cc.clip
	cc.clip = nil
	err := cl.file.finish()
	cl.res.Bytes = cl.file.size
	cc.c.bytesWritten.Add(cl.file.size)
	cl.res.End = cl.res.Start.Add(time.Duration(cl.file.duration) * time.Second / clipTimeScale)
	cl.res.Complete = complete && err == nil
	cl.res.Note = joinNotes(cl.res.Note, note)
	if err != nil {
		cl.res.Note = joinNotes(cl.res.Note, "the clip could not be finished: "+err.Error())
	}
	cl.res.Finished = true
	cc.writeJournal(cl)
	if cl.file.samples == 0 {
		cc.c.Logger.Warn("clip has no video; quarantined", "camera", cc.id, "clip", cl.res.ID, "note", cl.res.Note)
		cc.c.quarantine(cl.res.ID)
		return
	}
	cc.c.wg.Add(1)
	go func() {
		defer cc.c.wg.Done()
		cc.c.deliver(cl.res, cl.journal)
	}()
}

func joinNotes(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

// deliver hands a finished clip to OnClip and removes it from Dir once stored.
func (c *Clips) deliver(res ClipResult, journal string) {
	if c.OnClip == nil {
		return
	}
	if err := c.OnClip(res); err != nil {
		c.clipsFailed.Add(1)
		c.Logger.Error("clip not stored; kept for the next start", "camera", res.Camera, "clip", res.ID, "err", err)
		return
	}
	c.clipsDone.Add(1)
	res.Logged = true
	if b, err := json.Marshal(res); err == nil {
		_ = os.WriteFile(journal, b, 0o640)
	}
	_ = os.Remove(res.Path)
	_ = os.Remove(journal)
}

// Recover hands the clips left in Dir (by a process that was killed or could not store them)
// to OnClip: a clip that was still being written is cut back to its last complete fragment and
// marked incomplete. Files it cannot use go to Dir/quarantine with a log line.
func (c *Clips) Recover() {
	c.retryMu.Lock()
	defer c.retryMu.Unlock()
	entries, err := os.ReadDir(c.Dir)
	if err != nil {
		return
	}
	c.mu.Lock()
	active := map[string]bool{}
	for _, cc := range c.cams {
		cc.mu.Lock()
		if cc.clip != nil {
			active[cc.clip.res.ID] = true
		}
		cc.mu.Unlock()
	}
	c.mu.Unlock()
	seen := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() {
			continue
		}
		id, ok := strings.CutSuffix(name, ".json")
		if !ok {
			continue
		}
		seen[id] = true
		if active[id] {
			continue
		}
		c.recoverOne(id)
	}
	for _, e := range entries {
		name := e.Name()
		id, ok := strings.CutSuffix(name, ".mp4.part")
		if ok && !seen[id] && !active[id] {
			c.Logger.Warn("clip file without journal; quarantined", "file", name)
			c.quarantine(id)
		}
	}
}

func (c *Clips) recoverOne(id string) {
	journal := filepath.Join(c.Dir, id+".json")
	b, err := os.ReadFile(journal)
	var res ClipResult
	if err == nil {
		err = json.Unmarshal(b, &res)
	}
	if err != nil || res.ID != id || res.Camera == "" {
		c.Logger.Warn("clip journal unreadable; quarantined", "clip", id, "err", err)
		c.quarantine(id)
		return
	}
	res.Path = filepath.Join(c.Dir, id+".mp4.part")
	if res.Logged {
		_ = os.Remove(res.Path)
		_ = os.Remove(journal)
		return
	}
	frags, err := recoverClipFile(res.Path)
	if err != nil || frags == 0 {
		c.Logger.Warn("clip left by a stopped gateway holds no video; quarantined", "clip", id, "camera", res.Camera, "err", err)
		c.quarantine(id)
		return
	}
	if !res.Finished {
		f, err := os.Open(res.Path)
		if err == nil {
			res.End = res.Start.Add(clipDuration(f))
			st, _ := f.Stat()
			res.Bytes = st.Size()
			f.Close()
		}
		res.Complete = false
		res.Note = joinNotes(res.Note, fmt.Sprintf("the gateway stopped %s into the clip; recovered at restart", durText(res.End.Sub(res.Start))))
		res.Finished = true
		if b, err := json.Marshal(res); err == nil {
			_ = os.WriteFile(journal, b, 0o640)
		}
	}
	c.Logger.Info("clip recovered", "clip", id, "camera", res.Camera, "complete", res.Complete, "note", res.Note)
	c.deliver(res, journal)
}

// clipDuration sums the sample durations of a clip file's fragments.
func clipDuration(f *os.File) time.Duration {
	st, err := f.Stat()
	if err != nil {
		return 0
	}
	boxes, _ := ScanMP4Boxes(f, st.Size())
	var ticks int64
	for _, b := range boxes {
		if b.Type != "moof" || b.Size > 1<<24 {
			continue
		}
		buf := make([]byte, b.Size)
		if _, err := f.ReadAt(buf, b.Offset); err != nil {
			continue
		}
		ticks += moofDuration(buf)
	}
	return time.Duration(ticks) * time.Second / clipTimeScale
}

// moofDuration reads the sample durations of the trun box inside a moof box as clipFile
// writes it (durations present). Anything unexpected counts as 0.
func moofDuration(moof []byte) int64 {
	i := strings.Index(string(moof), "trun")
	if i < 4 || i+12 > len(moof) {
		return 0
	}
	p := moof[i+4:]
	flags := uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])
	count := int(uint32(p[4])<<24 | uint32(p[5])<<16 | uint32(p[6])<<8 | uint32(p[7]))
	off := 8
	if flags&0x01 != 0 {
		off += 4
	}
	if flags&0x04 != 0 {
		off += 4
	}
	per := 0
	for _, f := range []uint32{0x100, 0x200, 0x400, 0x800} {
		if flags&f != 0 {
			per += 4
		}
	}
	if flags&0x100 == 0 || count < 0 || count > 1<<20 {
		return 0
	}
	var total int64
	for k := 0; k < count; k++ {
		o := off + k*per
		if o+4 > len(p) {
			break
		}
		total += int64(uint32(p[o])<<24 | uint32(p[o+1])<<16 | uint32(p[o+2])<<8 | uint32(p[o+3]))
	}
	return total
}

func (c *Clips) quarantine(id string) {
	q := filepath.Join(c.Dir, "quarantine")
	_ = os.MkdirAll(q, 0o750)
	for _, suffix := range []string{".mp4.part", ".json"} {
		src := filepath.Join(c.Dir, id+suffix)
		if _, err := os.Stat(src); err == nil {
			_ = os.Rename(src, filepath.Join(q, id+suffix))
		}
	}
}
