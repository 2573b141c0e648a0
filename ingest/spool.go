package ingest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// The spool keeps batches InfluxDB could not take, as numbered segment files in a directory,
// each a sequence of records:
//
//	u32 length of data | u32 CRC-32C of data | u32 readings in data | data (line protocol)
//
// all big-endian. Records are replayed oldest first; a segment is deleted once replayed.

const (
	spoolHeader     = 12
	spoolMaxRecord  = 64 << 20
	spoolSegmentMax = 8 << 20
	spoolExt        = ".spool"
)

var (
	errSpoolFull    = errors.New("spool full")
	errSpoolCorrupt = errors.New("spool record corrupt")
	crcTable        = crc32.MakeTable(crc32.Castagnoli)
)

// readSpoolRecord reads one record. It returns io.EOF at a clean end, errSpoolCorrupt (wrapped)
// for a torn or damaged record.
func readSpoolRecord(r io.Reader) (data []byte, readings int, err error) {
	var h [spoolHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, 0, io.EOF
		}
		return nil, 0, fmt.Errorf("%w: torn header", errSpoolCorrupt)
	}
	n := binary.BigEndian.Uint32(h[0:4])
	sum := binary.BigEndian.Uint32(h[4:8])
	cnt := binary.BigEndian.Uint32(h[8:12])
	if n > spoolMaxRecord {
		return nil, 0, fmt.Errorf("%w: length %d", errSpoolCorrupt, n)
	}
	data = make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, 0, fmt.Errorf("%w: torn data", errSpoolCorrupt)
	}
	if crc32.Checksum(data, crcTable) != sum {
		return nil, 0, fmt.Errorf("%w: checksum", errSpoolCorrupt)
	}
	if cnt > n {
		return nil, 0, fmt.Errorf("%w: %d readings in %d bytes", errSpoolCorrupt, cnt, n)
	}
	return data, int(cnt), nil
}

func appendSpoolRecord(dst, data []byte, readings int) []byte {
	var h [spoolHeader]byte
	binary.BigEndian.PutUint32(h[0:4], uint32(len(data)))
	binary.BigEndian.PutUint32(h[4:8], crc32.Checksum(data, crcTable))
	binary.BigEndian.PutUint32(h[8:12], uint32(readings))
	return append(append(dst, h[:]...), data...)
}

type spoolSegment struct {
	seq  uint64
	size int64
}

type spool struct {
	dir      string
	maxBytes int64

	mu       sync.Mutex
	segs     []spoolSegment // oldest first
	bytes    int64          // on disk
	readings int64          // readings in the spool (approximate after a corrupt record)
	w        *os.File       // tail segment, appending
	r        *os.File       // head segment, replaying
	rb       *bufio.Reader
	rOff     int64
	// The record peek read and pop has not removed yet: a failed replay must send it again.
	peeked  []byte
	peekedN int
	hasPeek bool
	scratch []byte // one encoded record
}

func openSpool(dir string, maxBytes int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("ingest: spool directory: %w", err)
	}
	s := &spool{dir: dir, maxBytes: maxBytes}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), spoolExt)
		if !ok {
			continue
		}
		seq, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return nil, err
		}
		s.segs = append(s.segs, spoolSegment{seq: seq, size: fi.Size()})
		s.bytes += fi.Size()
	}
	sort.Slice(s.segs, func(i, j int) bool { return s.segs[i].seq < s.segs[j].seq })
	// Count readings so the gauge is right after a restart; a damaged tail is cut at replay.
	for _, sg := range s.segs {
		f, err := os.Open(s.path(sg.seq))
		if err != nil {
			continue
		}
		br := bufio.NewReader(f)
		for {
			_, n, err := readSpoolRecord(br)
			if err != nil {
				break
			}
			s.readings += int64(n)
		}
		_ = f.Close()
	}
	return s, nil
}

func (s *spool) path(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%016d%s", seq, spoolExt))
}

func (s *spool) empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.segs) == 0
}

func (s *spool) size() (bytes, readings int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes, s.readings
}

// spoolRecord is one batch to spool: line protocol and the readings in it.
type spoolRecord struct {
	data     []byte
	readings int
}

// append writes recs in order and syncs them once. It returns how many it wrote; past
// maxBytes it stops with errSpoolFull.
func (s *spool) append(recs ...spoolRecord) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	written, err := 0, error(nil)
	for _, r := range recs {
		if err = s.appendLocked(r); err != nil {
			break
		}
		written++
	}
	if s.w != nil && written > 0 {
		if serr := s.w.Sync(); serr != nil && err == nil {
			err = fmt.Errorf("ingest: spool: %w", serr)
		}
	}
	return written, err
}

func (s *spool) appendLocked(r spoolRecord) error {
	size := int64(spoolHeader + len(r.data))
	if s.bytes+size > s.maxBytes {
		return errSpoolFull
	}
	if s.w == nil || s.segs[len(s.segs)-1].size >= spoolSegmentMax {
		if s.w != nil {
			// The segment is complete: make it durable before starting the next one.
			if err := s.w.Sync(); err != nil {
				return fmt.Errorf("ingest: spool: %w", err)
			}
			_ = s.w.Close()
			s.w = nil
		}
		var seq uint64 = 1
		if len(s.segs) > 0 {
			seq = s.segs[len(s.segs)-1].seq + 1
		}
		f, err := os.OpenFile(s.path(seq), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return fmt.Errorf("ingest: spool: %w", err)
		}
		s.w = f
		s.segs = append(s.segs, spoolSegment{seq: seq})
	}
	s.scratch = appendSpoolRecord(s.scratch[:0], r.data, r.readings)
	if _, err := s.w.Write(s.scratch); err != nil {
		return fmt.Errorf("ingest: spool: %w", err)
	}
	s.segs[len(s.segs)-1].size += size
	s.bytes += size
	s.readings += int64(r.readings)
	return nil
}

// peek returns the oldest record without removing it. ok is false when the spool is empty.
// A damaged record makes the rest of its segment unreadable: that part is dropped and
// reported as corrupt (bytes lost) so the caller can count it.
func (s *spool) peek() (data []byte, readings int, ok bool, corrupt int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hasPeek {
		return s.peeked, s.peekedN, true, 0
	}
	for len(s.segs) > 0 {
		head := s.segs[0]
		if s.r == nil {
			f, err := os.Open(s.path(head.seq))
			if err != nil {
				corrupt += head.size
				s.dropHead()
				continue
			}
			s.r, s.rb, s.rOff = f, bufio.NewReaderSize(f, 1<<20), 0
		}
		if s.rOff >= head.size {
			if len(s.segs) == 1 {
				// Fully replayed and still the tail: start a fresh segment next time.
				s.dropHead()
				return nil, 0, false, corrupt
			}
			s.dropHead()
			continue
		}
		d, n, err := readSpoolRecord(s.rb)
		if err != nil {
			corrupt += head.size - s.rOff
			s.dropHead()
			continue
		}
		s.peeked, s.peekedN, s.hasPeek = d, n, true
		return d, n, true, corrupt
	}
	return nil, 0, false, corrupt
}

// pop removes the record peek returned.
func (s *spool) pop(data []byte, readings int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := int64(spoolHeader + len(data))
	s.peeked, s.peekedN, s.hasPeek = nil, 0, false
	s.rOff += rec
	s.readings -= int64(readings)
	if s.rOff >= s.segs[0].size {
		s.dropHead()
	}
}

// dropHead deletes the oldest segment. Callers hold mu.
func (s *spool) dropHead() {
	head := s.segs[0]
	if s.r != nil {
		_ = s.r.Close()
		s.r, s.rb = nil, nil
	}
	s.peeked, s.peekedN, s.hasPeek = nil, 0, false
	if len(s.segs) == 1 && s.w != nil {
		_ = s.w.Close()
		s.w = nil
	}
	_ = os.Remove(s.path(head.seq))
	s.bytes -= head.size
	s.segs = s.segs[1:]
	s.rOff = 0
	if len(s.segs) == 0 {
		s.bytes, s.readings = 0, 0
	}
}

func (s *spool) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w != nil {
		_ = s.w.Close()
	}
	if s.r != nil {
		_ = s.r.Close()
	}
}
