package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSpoolOrderAndReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir, 1<<30)
	require.NoError(t, err)
	for i := range 100 {
		_, err := s.append(spoolRecord{fmt.Appendf(nil, "batch %d", i), 1})
		require.NoError(t, err)
	}
	// A failed send leaves the record in place: peek again returns the same one.
	d, _, ok, _ := s.peek()
	require.True(t, ok)
	d2, _, _, _ := s.peek()
	require.Equal(t, d, d2)
	for i := range 50 {
		d, n, ok, corrupt := s.peek()
		require.True(t, ok)
		require.Zero(t, corrupt)
		require.Equal(t, fmt.Sprintf("batch %d", i), string(d))
		s.pop(d, n)
	}
	s.close()
	// After a restart the unreplayed half is still there, in order (a replayed-but-not-popped
	// record may come again: InfluxDB overwrites identical points).
	s, err = openSpool(dir, 1<<30)
	require.NoError(t, err)
	_, readings := s.size()
	require.EqualValues(t, 100, readings, "whole segment kept until fully replayed")
	for i := range 100 {
		d, n, ok, _ := s.peek()
		require.True(t, ok)
		require.Equal(t, fmt.Sprintf("batch %d", i), string(d))
		s.pop(d, n)
	}
	_, _, ok, _ = s.peek()
	require.False(t, ok)
	require.True(t, s.empty())
	s.close()
}

func TestSpoolBoundAndCorruption(t *testing.T) {
	s, err := openSpool(t.TempDir(), 100)
	require.NoError(t, err)
	n, err := s.append(spoolRecord{bytes.Repeat([]byte("x"), 50), 1}, spoolRecord{bytes.Repeat([]byte("x"), 50), 1})
	require.Equal(t, 1, n, "the first record fits, the second does not")
	require.ErrorIs(t, err, errSpoolFull)

	var buf []byte
	buf = appendSpoolRecord(buf, []byte("hello"), 1)
	buf[spoolHeader] ^= 0xff
	_, _, err = readSpoolRecord(bytes.NewReader(buf))
	require.ErrorIs(t, err, errSpoolCorrupt)
	_, _, err = readSpoolRecord(bytes.NewReader(buf[:5]))
	require.ErrorIs(t, err, errSpoolCorrupt)
	_, _, err = readSpoolRecord(bytes.NewReader(nil))
	require.ErrorIs(t, err, io.EOF)
}

// FuzzSpoolReader: any bytes on disk give records or an error, never a panic or a huge
// allocation, and every record read back is one that was written intact.
func FuzzSpoolReader(f *testing.F) {
	var seed []byte
	seed = appendSpoolRecord(seed, []byte("reading,device=d1 value=1 1"), 1)
	seed = appendSpoolRecord(seed, []byte("reading,device=d2 value=2 2"), 1)
	f.Add(seed)
	f.Add(seed[:7])
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			d, n, err := readSpoolRecord(r)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, errSpoolCorrupt) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if n > len(d) {
				t.Fatalf("%d readings in %d bytes", n, len(d))
			}
			again, _, err := readSpoolRecord(bytes.NewReader(appendSpoolRecord(nil, d, n)))
			if err != nil || !bytes.Equal(again, d) {
				t.Fatalf("record does not round-trip")
			}
		}
	})
}
