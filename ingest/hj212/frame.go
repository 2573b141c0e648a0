package hj212

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Limits of the frame.
const (
	// MaxDataLen is the longest data segment HJ 212-2017 allows (0 ≤ len ≤ 1024).
	MaxDataLen = 1024
	headerLen  = 6 // "##" + 4 digits
	trailerLen = 6 // 4 hex digits + CR LF
	// maxGarbage is how many refused bytes one FrameError carries at most; longer garbage is
	// reported in pieces.
	maxGarbage = 4096
)

// Reasons of a FrameError; the listener quarantines and counts by them.
const (
	ReasonGarbage     = "garbage"      // bytes outside any frame
	ReasonBadLength   = "bad_length"   // the length field is not 4 digits, or the frame does not end where it says
	ReasonTooLong     = "too_long"     // the length field is over the maximum
	ReasonCRCMismatch = "crc_mismatch" // the CRC does not match the data segment
	ReasonTruncated   = "truncated"    // the connection ended inside a frame
)

// FrameError is a stretch of input the reader refused. The reader has moved past it: the next
// call to Next continues with the bytes after it, so the frames around it are not lost.
type FrameError struct {
	Reason string
	Msg    string
	Raw    []byte // the refused bytes (a copy; at most maxGarbage for garbage)
}

func (e *FrameError) Error() string { return e.Reason + ": " + e.Msg }

// Reader cuts HJ 212 frames out of a byte stream: several frames in one read, one frame over
// several reads, garbage between frames, a length that lies and an over-long frame are all
// handled without losing the frames around them. Next returns either a frame's data segment or
// a *FrameError (keep reading) or the reader's error (stop).
type Reader struct {
	r   io.Reader
	max int
	buf []byte
	beg int // unconsumed bytes are buf[beg:end]
	end int
	err error // sticky read error, returned once the buffer is used up
}

// NewReader reads frames from r with data segments of at most maxData bytes (≤ 0: MaxDataLen).
func NewReader(r io.Reader, maxData int) *Reader {
	if maxData <= 0 {
		maxData = MaxDataLen
	}
	if maxData > 9999 {
		maxData = 9999
	}
	return &Reader{r: r, max: maxData, buf: make([]byte, 0, headerLen+maxData+trailerLen+512)}
}

var frameStart = []byte("##")

// Next returns the data segment of the next good frame; it is valid until the next call.
func (fr *Reader) Next() ([]byte, error) {
	for {
		data, ferr, need := fr.scan()
		if data != nil || ferr != nil {
			if ferr != nil {
				return nil, ferr
			}
			return data, nil
		}
		if !need {
			continue
		}
		if fr.err != nil {
			if fr.end > fr.beg {
				raw := bytes.Clone(fr.buf[fr.beg:fr.end])
				fr.beg = fr.end
				reason, msg := ReasonTruncated, "the connection ended inside a frame"
				if !bytes.HasPrefix(raw, frameStart) {
					reason, msg = ReasonGarbage, "bytes outside any frame"
				}
				return nil, &FrameError{Reason: reason, Msg: msg, Raw: raw}
			}
			return nil, fr.err
		}
		fr.fill()
	}
}

// fill reads more bytes, compacting the buffer first.
func (fr *Reader) fill() {
	if fr.beg > 0 {
		n := copy(fr.buf[:cap(fr.buf)], fr.buf[fr.beg:fr.end])
		fr.beg, fr.end = 0, n
	}
	fr.buf = fr.buf[:cap(fr.buf)]
	n, err := fr.r.Read(fr.buf[fr.end:])
	fr.end += n
	fr.buf = fr.buf[:fr.end]
	if err != nil {
		fr.err = err
	} else if n == 0 {
		// a reader that returns 0, nil forever would spin
		fr.err = io.ErrNoProgress
	}
}

// scan looks at the buffered bytes: a frame's data, a refusal, or need=true when it needs
// more bytes; all false means it consumed something and should be called again.
func (fr *Reader) scan() (data []byte, ferr *FrameError, need bool) {
	b := fr.buf[fr.beg:fr.end]
	if len(b) == 0 {
		return nil, nil, true
	}
	i := bytes.Index(b, frameStart)
	if i < 0 {
		// Keep a trailing '#': it may be the first half of "##".
		keep := 0
		if b[len(b)-1] == '#' {
			keep = 1
		}
		if len(b)-keep >= maxGarbage || (fr.err != nil && len(b)-keep > 0) || len(b)-keep > 0 && len(b) == cap(fr.buf) {
			return nil, fr.garbage(len(b) - keep), false
		}
		return nil, nil, true
	}
	if i > 0 {
		return nil, fr.garbage(i), false
	}
	if len(b) > 2 && b[2] == '#' {
		// "###…": the frame starts one byte later
		return nil, fr.garbage(1), false
	}
	if len(b) < headerLen {
		return nil, nil, true
	}
	n := 0
	for _, c := range b[2:headerLen] {
		if c < '0' || c > '9' {
			fr.beg += 2
			return nil, &FrameError{Reason: ReasonBadLength, Msg: fmt.Sprintf("length field %q is not 4 decimal digits", b[2:headerLen]), Raw: bytes.Clone(b[:headerLen])}, false
		}
		n = n*10 + int(c-'0')
	}
	if n > fr.max {
		fr.beg += headerLen
		return nil, &FrameError{Reason: ReasonTooLong, Msg: fmt.Sprintf("data segment of %d bytes is over the maximum of %d; its bytes are refused up to the next frame", n, fr.max), Raw: bytes.Clone(b[:headerLen])}, false
	}
	total := headerLen + n + trailerLen
	// A data segment holds neither "##" nor CR LF: either one before the claimed end means the
	// length lies (or the frame was cut and a new one began). Refuse up to there, so the next
	// frame is found instead of being swallowed, and do not wait for bytes that belong to it.
	lim := min(len(b), total)
	if k := bytes.Index(b[2:lim], frameStart); k >= 0 {
		return nil, fr.badLength(b[:2+k], n), false
	}
	if k := bytes.Index(b[headerLen:lim], []byte("\r\n")); k >= 0 && headerLen+k != total-2 {
		return nil, fr.badLength(b[:headerLen+k+2], n), false
	}
	if len(b) < total {
		return nil, nil, true
	}
	if b[total-2] != '\r' || b[total-1] != '\n' {
		return nil, fr.badLength(b[:total], n), false
	}
	data = b[headerLen : headerLen+n]
	got, ok := parseCRC(b[headerLen+n : headerLen+n+4])
	if !ok {
		fr.beg += total
		return nil, &FrameError{Reason: ReasonCRCMismatch, Msg: fmt.Sprintf("CRC %q is not 4 hex digits", b[headerLen+n:headerLen+n+4]), Raw: bytes.Clone(b[:total])}, false
	}
	if want := CRC(data); got != want {
		fr.beg += total
		return nil, &FrameError{Reason: ReasonCRCMismatch, Msg: fmt.Sprintf("CRC %04X does not match the data segment (%04X)", got, want), Raw: bytes.Clone(b[:total])}, false
	}
	fr.beg += total
	return data, nil, false
}

// badLength refuses raw, a frame header and what followed it up to where the frame really
// ended or the next one starts.
func (fr *Reader) badLength(raw []byte, n int) *FrameError {
	fr.beg += len(raw)
	return &FrameError{Reason: ReasonBadLength, Msg: fmt.Sprintf("length field says %d bytes but the frame does not end there with CRC and CR LF", n), Raw: bytes.Clone(raw)}
}

func (fr *Reader) garbage(n int) *FrameError {
	n = min(n, maxGarbage)
	raw := fr.buf[fr.beg : fr.beg+n]
	fr.beg += n
	// CR LF and blanks between frames are harmless (some loggers send an extra line end).
	if len(bytes.Trim(raw, "\r\n\x00 \t")) == 0 {
		return nil
	}
	return &FrameError{Reason: ReasonGarbage, Msg: fmt.Sprintf("%d bytes outside any frame", n), Raw: bytes.Clone(raw)}
}

// IsFrameError reports whether err is a refusal the reader has moved past.
func IsFrameError(err error) bool {
	var fe *FrameError
	return errors.As(err, &fe)
}
