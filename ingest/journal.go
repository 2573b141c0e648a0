package ingest

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Journal makes acknowledged messages survive a crash of the gateway process (kill -9).
// Submit writes each message to the current segment file before the message is queued — so
// before the broker acknowledges it — and the kernel keeps what was written when the process
// dies. A segment is a file of SegmentSize bytes reserved on disk and mapped into memory
// (MAP_SHARED): a message is a copy into the page cache, not a system call, which matters at
// tens of thousands of messages a second from many client goroutines at once. Where the file
// cannot be reserved or mapped, the segment is written with one write(2) per message instead.
// Every RotateEvery (or when full) the segment is sealed and cut to what it holds; once
// everything in it has been processed and the telemetry store and the quarantine have flushed
// it, the file is deleted. On start the segments left behind are replayed. A replay may store
// a reading twice; the stores keep one per device, metric and time.
type Journal struct {
	Dir         string
	RotateEvery time.Duration // default 1 s
	// SegmentSize is the disk space reserved for one segment (default 16 MiB); a message
	// larger than half of it gets a segment of twice its size.
	SegmentSize int
	Logger      *slog.Logger

	mu      sync.Mutex
	cur     *segment
	nextID  uint64
	sealed  []*segment
	scratch []byte
}

type segment struct {
	id      uint64
	path    string
	pending atomic.Int64 // messages written to it and not yet processed
	f       *os.File
	mem     []byte // the mapped file; nil when written with write(2)
	used    int    // bytes of mem holding records
}

func (j *Journal) open() error {
	if j.RotateEvery <= 0 {
		j.RotateEvery = time.Second
	}
	if j.SegmentSize <= 0 {
		j.SegmentSize = 16 << 20
	}
	if j.Logger == nil {
		j.Logger = slog.Default()
	}
	if err := os.MkdirAll(j.Dir, 0o750); err != nil {
		return fmt.Errorf("ingest journal: %w", err)
	}
	return nil
}

// leftovers lists the segments a previous run left, oldest first.
func (j *Journal) leftovers() ([]string, error) {
	names, err := filepath.Glob(filepath.Join(j.Dir, "seg-*.log"))
	if err != nil {
		return nil, err
	}
	id := func(p string) uint64 {
		n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "seg-"), ".log"), 10, 64)
		return n
	}
	sort.Slice(names, func(a, b int) bool { return id(names[a]) < id(names[b]) })
	if len(names) > 0 {
		j.nextID = id(names[len(names)-1]) + 1
	}
	return names, nil
}

// rotateLocked seals the current segment and starts a new one of at least size bytes.
func (j *Journal) rotateLocked(size int) error {
	if j.cur != nil {
		j.sealLocked()
		j.sealed = append(j.sealed, j.cur)
		j.cur = nil
	}
	j.nextID++
	path := filepath.Join(j.Dir, fmt.Sprintf("seg-%020d.log", j.nextID))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("ingest journal: %w", err)
	}
	seg := &segment{id: j.nextID, path: path, f: f}
	if journalMapped {
		if seg.mem, err = mapSegment(f, max(j.SegmentSize, size)); err != nil {
			seg.mem = nil
			j.Logger.Warn("ingest journal: cannot map a segment; writing it message by message", "err", err, "file", path)
		}
	}
	j.cur = seg
	return nil
}

// sealLocked unmaps the current segment, cuts the file to its records and closes it.
func (j *Journal) sealLocked() {
	seg := j.cur
	if seg.mem != nil {
		if err := unmapSegment(seg.mem); err != nil {
			j.Logger.Warn("ingest journal: unmap segment", "err", err, "file", seg.path)
		}
		seg.mem = nil
		if err := seg.f.Truncate(int64(seg.used)); err != nil {
			j.Logger.Warn("ingest journal: cut segment", "err", err, "file", seg.path)
		}
	}
	if err := seg.f.Close(); err != nil {
		j.Logger.Warn("ingest journal: close segment", "err", err, "file", seg.path)
	}
}

// append writes m and returns its segment (nil if the journal could not write: the message
// is still processed, only not crash-safe, and that is logged).
func (j *Journal) append(m *Message) *segment {
	size := recordSize(m)
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.cur == nil || j.cur.mem != nil && len(j.cur.mem)-j.cur.used < size {
		// 2 × size: a message larger than a segment still gets a mapped one.
		if err := j.rotateLocked(2 * size); err != nil {
			j.Logger.Error("ingest journal unavailable; messages are not crash-safe", "err", err)
			return nil
		}
	}
	seg := j.cur
	if seg.mem != nil {
		encodeRecord(seg.mem[seg.used:seg.used:seg.used+size], m)
		seg.used += size
	} else {
		j.scratch = encodeRecord(j.scratch[:0], m)
		if _, err := seg.f.Write(j.scratch); err != nil {
			j.Logger.Error("ingest journal write failed; message is not crash-safe", "err", err, "topic", m.Topic)
			return nil
		}
	}
	seg.pending.Add(1)
	return seg
}

// run seals the segment every RotateEvery and deletes sealed segments once their messages are
// processed and flushed by flush.
func (j *Journal) run(ctx context.Context, flush func(context.Context) error) {
	t := time.NewTicker(j.RotateEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		j.mu.Lock()
		if j.cur != nil && j.cur.pending.Load() > 0 {
			if err := j.rotateLocked(0); err != nil {
				j.Logger.Error("ingest journal rotate failed", "err", err)
			}
		}
		var done []*segment
		for len(j.sealed) > 0 && j.sealed[0].pending.Load() == 0 {
			done = append(done, j.sealed[0])
			j.sealed = j.sealed[1:]
		}
		j.mu.Unlock()
		if len(done) == 0 {
			continue
		}
		if err := flush(ctx); err != nil {
			// Keep the files: they are replayed on the next start.
			j.mu.Lock()
			j.sealed = append(done, j.sealed...)
			j.mu.Unlock()
			continue
		}
		for _, s := range done {
			if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				j.Logger.Warn("ingest journal: remove segment", "err", err, "file", s.path)
			}
		}
	}
}

// close closes the current segment; files stay until a flush confirmed them (a clean stop
// drains the pipeline first, so they are deleted by removeAll).
func (j *Journal) close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.cur != nil {
		j.sealLocked()
		j.cur = nil
	}
}

// removeAll deletes every segment: called after a clean stop flushed everything.
func (j *Journal) removeAll() {
	names, _ := filepath.Glob(filepath.Join(j.Dir, "seg-*.log"))
	for _, n := range names {
		_ = os.Remove(n)
	}
}

// Record: u32 length of the rest, u32 CRC-32C of the rest (crcTable, as in the spool), then
// u16-prefixed topic, client, remote, i64 receive time (unix ns), and the payload.

// journalMapped is false in tests of the write(2) path.
var journalMapped = true

func recordSize(m *Message) int {
	return 8 + 6 + min(len(m.Topic), 65535) + min(len(m.Client), 65535) + min(len(m.Remote), 65535) + 8 + len(m.Payload)
}

func encodeRecord(b []byte, m *Message) []byte {
	at := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0) // length and CRC, filled in below
	for _, s := range []string{m.Topic, m.Client, m.Remote} {
		b = binary.BigEndian.AppendUint16(b, uint16(min(len(s), 65535)))
		b = append(b, s[:min(len(s), 65535)]...)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(m.Received.UnixNano()))
	b = append(b, m.Payload...)
	body := b[at+8:]
	// The checksum before the length: in a mapped segment a record is complete once its
	// length is not zero, so a process killed in between leaves a zero length (the end of the
	// records), never a whole-looking record with a wrong checksum (a damaged segment).
	binary.BigEndian.PutUint32(b[at+4:], crc32.Checksum(body, crcTable))
	binary.BigEndian.PutUint32(b[at:], uint32(len(body)))
	return b
}

// readRecords reads a segment's messages, stopping quietly at a torn or corrupt tail (the
// write a crash interrupted).
func readRecords(r io.Reader, fn func(Message)) error {
	br := bufio.NewReader(r)
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return nil
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		if n == 0 {
			return nil // the unused, zeroed rest of a mapped segment the crash left uncut
		}
		if n > 64<<20 {
			return errors.New("ingest journal: record too large (corrupt segment)")
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			return nil
		}
		if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(hdr[4:]) {
			return errors.New("ingest journal: checksum mismatch (corrupt segment)")
		}
		var m Message
		rest := body
		var fields [3]string
		for i := range fields {
			if len(rest) < 2 {
				return errors.New("ingest journal: short record")
			}
			l := int(binary.BigEndian.Uint16(rest))
			if len(rest) < 2+l {
				return errors.New("ingest journal: short record")
			}
			fields[i] = string(rest[2 : 2+l])
			rest = rest[2+l:]
		}
		if len(rest) < 8 {
			return errors.New("ingest journal: short record")
		}
		m.Topic, m.Client, m.Remote = fields[0], fields[1], fields[2]
		m.Received = time.Unix(0, int64(binary.BigEndian.Uint64(rest)))
		m.Payload = append([]byte(nil), rest[8:]...)
		fn(m)
	}
}
