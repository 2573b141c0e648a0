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
// Submit writes each message to the current segment file with one write(2) before the
// message is queued — so before the broker acknowledges it — and the kernel keeps what was
// written when the process dies. Every RotateEvery the segment is sealed; once everything in
// it has been processed and the telemetry store and the quarantine have flushed it, the file
// is deleted. On start the segments left behind are replayed. A replay may store a reading
// twice; the stores keep one per device, metric and time.
type Journal struct {
	Dir         string
	RotateEvery time.Duration // default 1 s
	Logger      *slog.Logger

	mu      sync.Mutex
	f       *os.File
	cur     *segment
	nextID  uint64
	sealed  []*segment
	scratch []byte
}

type segment struct {
	id      uint64
	path    string
	pending atomic.Int64 // messages written to it and not yet processed
}

func (j *Journal) open() error {
	if j.RotateEvery <= 0 {
		j.RotateEvery = time.Second
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

// rotateLocked seals the current segment and starts a new one.
func (j *Journal) rotateLocked() error {
	if j.f != nil {
		if err := j.f.Close(); err != nil {
			j.Logger.Warn("ingest journal: close segment", "err", err)
		}
		j.sealed = append(j.sealed, j.cur)
	}
	j.nextID++
	path := filepath.Join(j.Dir, fmt.Sprintf("seg-%020d.log", j.nextID))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		j.f, j.cur = nil, nil
		return fmt.Errorf("ingest journal: %w", err)
	}
	j.f, j.cur = f, &segment{id: j.nextID, path: path}
	return nil
}

// append writes m and returns its segment (nil if the journal could not write: the message
// is still processed, only not crash-safe, and that is logged).
func (j *Journal) append(m *Message) *segment {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		if err := j.rotateLocked(); err != nil {
			j.Logger.Error("ingest journal unavailable; messages are not crash-safe", "err", err)
			return nil
		}
	}
	j.scratch = encodeRecord(j.scratch[:0], m)
	if _, err := j.f.Write(j.scratch); err != nil {
		j.Logger.Error("ingest journal write failed; message is not crash-safe", "err", err, "topic", m.Topic)
		return nil
	}
	j.cur.pending.Add(1)
	return j.cur
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
			if err := j.rotateLocked(); err != nil {
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
	if j.f != nil {
		_ = j.f.Close()
		j.f = nil
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
	binary.BigEndian.PutUint32(b[at:], uint32(len(body)))
	binary.BigEndian.PutUint32(b[at+4:], crc32.Checksum(body, crcTable))
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
