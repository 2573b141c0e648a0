package events_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// A client that disconnects five times and resumes from its last event id (as SSE
// Last-Event-ID) while events are appended concurrently receives every event once, in order.
func TestFeedResumeNoGapNoDuplicate(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l := newLog(t, db) // ring of 64: resumes are served from the store as well as the ring
		feed := &events.Feed{Log: l, Buffer: 4, BatchSize: 7}
		const total = 600
		pre := make([]event.Event, 50)
		for i := range pre {
			pre[i] = plain(i)
		}
		_, err := l.Append(ctx, pre...)
		require.NoError(t, err)

		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 50; i < total; i += 5 {
				batch := []event.Event{plain(i), plain(i + 1), plain(i + 2), plain(i + 3), plain(i + 4)}
				_, err := l.Append(ctx, batch...)
				require.NoError(t, err)
				if i%50 == 0 {
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()

		var got []string
		lastID := ""
		for round := 0; round < 6; round++ {
			after := int64(0)
			if lastID != "" {
				after, err = l.SeqOf(ctx, lastID)
				require.NoError(t, err)
			}
			sctx, cancel := context.WithCancel(ctx)
			ch := feed.Subscribe(sctx, after, nil)
			want := (round + 1) * 100
			if round == 5 {
				want = total
			}
			for len(got) < want {
				select {
				case e := <-ch:
					got = append(got, e.Message)
					lastID = e.ID
				case <-time.After(10 * time.Second):
					t.Fatalf("round %d: stalled at %d events", round, len(got))
				}
			}
			cancel() // disconnect
			for range ch {
			}
		}
		wg.Wait()
		require.Len(t, got, total)
		for i, m := range got {
			require.Equal(t, fmt.Sprintf("n%d", i), m)
		}
	})
}

func plain(i int) event.Event {
	return event.Event{Type: "device.online", Severity: "info", Message: fmt.Sprintf("n%d", i),
		Department: "市生态环境局", Device: &event.Device{ID: "d"}}
}

func TestFeedFilterLiveFromHead(t *testing.T) {
	db := storetest.SQLite(t, testSchema...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := newLog(t, db)
	_, err := l.Append(ctx, plain(0))
	require.NoError(t, err)
	head, _ := l.Head()
	feed := &events.Feed{Log: l}
	ch := feed.Subscribe(ctx, head, events.ScopeFilter(devices.Scope{Departments: []string{"市市场监督管理局"}}, events.Filter{}))
	other := plain(1)
	mine := plain(2)
	mine.Department = "市市场监督管理局"
	_, err = l.Append(ctx, other, mine)
	require.NoError(t, err)
	select {
	case e := <-ch:
		require.Equal(t, "n2", e.Message)
	case <-time.After(5 * time.Second):
		t.Fatal("no live event")
	}
}

func TestEvidenceStore(t *testing.T) {
	dir := t.TempDir()
	s := &events.EvidenceStore{Dir: dir, MaxBytes: 10}
	sum, url, err := s.Put(strings.NewReader("jpeg-bytes"), ".jpg")
	require.NoError(t, err)
	require.Len(t, sum, 64)
	require.Equal(t, "/api/v1/evidence/"+sum[:2]+"/"+sum[2:4]+"/"+sum+".jpg", url)
	_, err = os.Stat(filepath.Join(dir, sum[:2], sum[2:4], sum+".jpg"))
	require.NoError(t, err)
	sum2, _, err := s.Put(bytes.NewReader([]byte("jpeg-bytes")), ".jpg")
	require.NoError(t, err)
	require.Equal(t, sum, sum2)
	f, err := s.Open(sum)
	require.NoError(t, err)
	f.Close()
	_, _, err = s.Put(strings.NewReader("x"), ".exe")
	require.Error(t, err)

	old := time.Now().Add(-48 * time.Hour)
	require.NoError(t, os.Chtimes(filepath.Join(dir, sum[:2], sum[2:4], sum+".jpg"), old, old))
	sumB, _, err := s.Put(strings.NewReader("second file"), ".png")
	require.NoError(t, err)
	// Over MaxBytes: the oldest goes first; Keep protects.
	s.Keep = func(x string) bool { return x == sumB }
	n, _, err := s.Sweep(time.Now())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = s.Open(sum)
	require.Error(t, err)
	_, err = s.Open(sumB)
	require.NoError(t, err)
	s.Keep, s.MaxBytes, s.MaxAge = nil, 0, time.Hour
	n, _, err = s.Sweep(time.Now().Add(2 * time.Hour))
	require.NoError(t, err)
	require.Equal(t, 1, n)
}
