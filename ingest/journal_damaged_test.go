package ingest_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/ingest"
)

// A journal segment damaged in the middle (a bad disk block, not a torn tail): the messages
// before the damage are replayed and stored, the segment is kept under damaged/ for a person
// to look at instead of being deleted, and the pipeline serves.
func TestJournalDamagedSegmentIsKept(t *testing.T) {
	dir := t.TempDir()
	j := &ingest.Journal{Dir: filepath.Join(dir, "journal")}
	require.NoError(t, os.MkdirAll(j.Dir, 0o750))
	ts := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	seg := ingest.EncodeJournalRecord(nil, &ingest.Message{Topic: "offsite/site-1/dust-1/up", Client: "dust-1",
		Received: ts, Payload: dustPayload(ts, 77)})
	bad := ingest.EncodeJournalRecord(nil, &ingest.Message{Topic: "offsite/site-1/dust-1/up", Client: "dust-1",
		Received: ts.Add(time.Second), Payload: dustPayload(ts.Add(time.Second), 78)})
	bad[len(bad)-3] ^= 0xff // a flipped byte: checksum mismatch
	seg = append(seg, bad...)
	seg = ingest.EncodeJournalRecord(seg, &ingest.Message{Topic: "offsite/site-1/dust-1/up", Client: "dust-1",
		Received: ts.Add(2 * time.Second), Payload: dustPayload(ts.Add(2*time.Second), 79)})
	path := filepath.Join(j.Dir, "seg-1.log")
	require.NoError(t, os.WriteFile(path, seg, 0o640))

	tel := openSQLiteTelemetry(t)
	s := newStack(t, sensorFleet(), tel)
	pipe := &ingest.Pipeline{Directory: s.dir, Sink: tel, Quarantine: s.quar, Logger: quietLogger(), Journal: j}
	require.NoError(t, pipe.Initialize())
	t.Cleanup(pipe.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, pipe.Flush(ctx))
	require.NoError(t, tel.Flush(ctx))
	latest, err := tel.Latest(ctx, "dust-1")
	require.NoError(t, err)
	var pm10 float64
	for _, r := range latest {
		if r.Metric == "pm10" {
			pm10 = r.Value
		}
	}
	require.Equal(t, 77.0, pm10, "the message before the damage is stored")

	_, err = os.Stat(path)
	require.True(t, os.IsNotExist(err), "the damaged segment is no longer in the replay set")
	kept, err := filepath.Glob(filepath.Join(j.Dir, "damaged", "seg-1.log.*"))
	require.NoError(t, err)
	require.Len(t, kept, 1, "the damaged segment is kept for inspection")
	b, err := os.ReadFile(kept[0])
	require.NoError(t, err)
	require.Equal(t, seg, b)

	// and the pipeline keeps serving
	require.True(t, pipe.Submit(ingest.Message{Topic: "offsite/site-1/dust-1/up", Client: "dust-1", Received: time.Now(), Payload: dustPayload(time.Now(), 80)}))
	require.NoError(t, pipe.Flush(ctx))
}
