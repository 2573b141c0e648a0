package ingest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestJournalRecordSize(t *testing.T) {
	for _, m := range []Message{
		{},
		{Topic: "offsite/s1/d1/up", Client: "d1", Remote: "127.0.0.1:5000", Payload: []byte(`{"v":1}`), Received: time.Now()},
		{Topic: strings.Repeat("t", 70000), Client: strings.Repeat("c", 65535), Payload: make([]byte, 300000)},
	} {
		require.Len(t, encodeRecord(nil, &m), recordSize(&m))
	}
}

// Whatever the journal acknowledged can be read back from its files while the process still
// runs — that is what a kill -9 leaves — in order, also across a segment that is full, a
// message larger than a segment, and with the write(2) fallback.
func TestJournalSegmentsReadBack(t *testing.T) {
	for _, mapped := range []bool{true, false} {
		t.Run(fmt.Sprintf("mapped=%v", mapped), func(t *testing.T) {
			journalMapped = mapped
			defer func() { journalMapped = true }()
			j := &Journal{Dir: t.TempDir(), SegmentSize: 4096}
			require.NoError(t, j.open())
			var want []string
			for i := range 300 {
				p := fmt.Sprintf(`{"seq":%d}`, i)
				if i == 150 {
					p = strings.Repeat("x", 10000) // larger than a segment
				}
				want = append(want, p)
				require.NotNil(t, j.append(&Message{Topic: "offsite/s1/d1/up", Payload: []byte(p), Received: time.Unix(0, int64(i))}))
			}
			segs, err := filepath.Glob(filepath.Join(j.Dir, "seg-*.log"))
			require.NoError(t, err)
			if mapped {
				require.Greater(t, len(segs), 2, "full segments were sealed and new ones started")
			}
			var got []string
			for _, path := range segs { // the names sort in order
				f, err := os.Open(path)
				require.NoError(t, err)
				require.NoError(t, readRecords(f, func(m Message) { got = append(got, string(m.Payload)) }))
				f.Close()
			}
			require.Equal(t, want, got)
			j.close()
			var total, records int64
			for _, path := range segs {
				fi, err := os.Stat(path)
				require.NoError(t, err)
				total += fi.Size()
			}
			for i, p := range want {
				records += int64(recordSize(&Message{Topic: "offsite/s1/d1/up", Payload: []byte(p), Received: time.Unix(0, int64(i))}))
			}
			require.Equal(t, records, total, "sealed segments are cut to their records")
		})
	}
}
