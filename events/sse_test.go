package events_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// An SSE client of one department that disconnects five times and resumes with
// Last-Event-ID misses no event of its department and never sees another department's.
func TestSSEResumeAndScope(t *testing.T) {
	db := storetest.SQLite(t, testSchema...)
	ctx := context.Background()
	l := &events.Log{DB: db, GatewayID: "gw", RingSize: 100}
	require.NoError(t, l.Initialize())
	feed := &events.Feed{Log: l}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start, err := feed.SSEStart(r.Context(), r)
		if err != nil {
			http.Error(w, err.Error(), map[errs.Kind]int{errs.KindNotFound: 404, errs.KindInvalid: 400}[errs.KindOf(err)])
			return
		}
		sc := devices.Scope{Departments: []string{r.URL.Query().Get("dept")}}
		feed.ServeSSE(w, r, start, events.ScopeFilter(sc, events.Filter{}), time.Second)
	}))
	defer srv.Close()

	// Start from the beginning: resume after a first event that exists.
	first, err := l.Append(ctx, dept(0, "市生态环境局"))
	require.NoError(t, err)

	const total = 1200
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i < total; i += 4 {
			_, err := l.Append(ctx, dept(i, "市生态环境局"), dept(i+1, "市市场监督管理局"), dept(i+2, "市生态环境局"), dept(i+3, "市市场监督管理局"))
			require.NoError(t, err)
			time.Sleep(time.Millisecond)
		}
	}()

	lastID := first[0].ID
	var got []int
	for round := 0; round < 6; round++ {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/events/stream?dept=市生态环境局", nil)
		req.Header.Set("Last-event.Event-ID", lastID)
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		resp, err := http.DefaultClient.Do(req.WithContext(cctx))
		require.NoError(t, err)
		require.Equal(t, 200, resp.StatusCode)
		require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
		want := (round + 1) * 100
		if round == 5 {
			want = total / 2 // every env event after the first: n1, n3, … n1199
		}
		sc := bufio.NewScanner(resp.Body)
		var id string
		for len(got) < want && sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				var e event.Event
				require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &e))
				require.Equal(t, id, e.ID)
				require.Equal(t, "市生态环境局", e.Department, "never another department's event")
				var n int
				fmt.Sscanf(e.Message, "n%d", &n)
				got = append(got, n)
				lastID = id
			}
		}
		cancel() // disconnect
		resp.Body.Close()
		require.Len(t, got, want, "round %d", round)
	}
	wg.Wait()
	for k, n := range got {
		require.Equal(t, 2*k+1, n, "in log order, no gap, no duplicate")
	}
}

func dept(i int, d string) event.Event {
	e := plain(i)
	e.Department = d
	return e
}

func TestSSEUnknownLastEventID(t *testing.T) {
	db := storetest.SQLite(t, testSchema...)
	l := &events.Log{DB: db, GatewayID: "gw"}
	require.NoError(t, l.Initialize())
	feed := &events.Feed{Log: l}
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	r.Header.Set("Last-event.Event-ID", "01JD0000000000000000000000")
	_, err := feed.SSEStart(context.Background(), r)
	require.Equal(t, errs.KindNotFound, errs.KindOf(err))
}
