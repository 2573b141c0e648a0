package uplink_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/events/uplink/provincesim"
	"github.com/offsite-gw/offsite/internal/store"
)

const (
	envKillChild = "OFFSITE_KILLTEST_CHILD"
	killTotal    = 10000
	killDown     = time.Minute // the receiver is down for a minute, as the issue asks
)

// TestKillNineChild is the gateway stand-in that TestKillNine runs as a child process: it
// appends events up to killTotal (continuing after a restart) while an uplink delivers them,
// and exits once the backlog is drained.
func TestKillNineChild(t *testing.T) {
	if os.Getenv(envKillChild) == "" {
		t.Skip("helper process for TestKillNine")
	}
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite:"+os.Getenv("KILL_DB"), "", testSchema...)
	require.NoError(t, err)
	l := &events.Log{DB: db, GatewayID: "410702-gw-01", Logger: quiet}
	require.NoError(t, l.Initialize())
	u := &uplink.Uplink{Config: uplink.Config{Name: "province", BaseURL: os.Getenv("KILL_URL"), Secret: "kill-secret",
		BackoffMin: 20 * time.Millisecond, BackoffMax: 500 * time.Millisecond, Timeout: 3 * time.Second},
		GatewayID: "410702-gw-01", Log: l, Logger: quiet}
	require.NoError(t, u.Initialize())
	var have int
	require.NoError(t, db.QueryRow(ctx, `SELECT COUNT(*) FROM events`).Scan(&have))
	for have < killTotal {
		n := min(100, killTotal-have)
		batch := make([]event.Event, n)
		for i := range batch {
			batch[i] = ev(have + i)
		}
		_, err := l.Append(ctx, batch...)
		require.NoError(t, err)
		have += n
		fmt.Printf("appended %d\n", have)
		time.Sleep(40 * time.Millisecond)
	}
	for u.Status().Backlog > 0 {
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Println("drained")
	u.Close()
	_ = db.Close()
}

// kill -9 of the gateway while 10,000 events flow to a receiver that fails 30% of requests
// (20% 503 before storing, 10% 500 after storing) and refuses connections for killDown: after
// restart every event id has arrived, none with different content, in log order.
func TestKillNine(t *testing.T) {
	if testing.Short() {
		t.Skip("kill -9 test takes ~20s")
	}
	h := &provincesim.Handler{Secret: []byte("kill-secret"), FailRatio: 0.2, LoseAnswerRatio: 0.1, Logger: quiet}
	require.NoError(t, h.Initialize())
	srv := &provincesim.Server{Addr: "127.0.0.1:0", Handler: h}
	require.NoError(t, srv.Start())
	defer srv.Stop()
	dbPath := filepath.Join(t.TempDir(), "gw.db")

	start := func() (*exec.Cmd, chan string) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillNineChild$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), envKillChild+"=1", "KILL_DB="+dbPath, "KILL_URL="+srv.URL())
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		lines := make(chan string, 1000)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		return cmd, lines
	}
	appended := func(line string) int {
		n, _ := strconv.Atoi(strings.TrimPrefix(line, "appended "))
		return n
	}

	// Run 1: deliver for a while, then the receiver goes down and the gateway is killed.
	cmd, lines := start()
	downAt := time.Time{}
	killedAt := 0
	for line := range lines {
		n := appended(line)
		if n >= 2000 && downAt.IsZero() {
			srv.Stop()
			downAt = time.Now()
		}
		if n >= 4000 {
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			killedAt = n
			break
		}
	}
	_ = cmd.Wait()
	for range lines {
	}
	require.Positive(t, killedAt)
	require.Less(t, killedAt, killTotal, "killed mid-run")
	delivered := h.Stats().Received
	t.Logf("killed after %d appended, %d delivered; receiver down", killedAt, delivered)

	// Run 2: restart on the same file; the receiver comes back after killDown.
	cmd, lines = start()
	go func() {
		time.Sleep(time.Until(downAt.Add(killDown)))
		_ = srv.Start()
	}()
	drained := false
	timeout := time.After(90 * time.Second)
wait:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				break wait
			}
			drained = drained || line == "drained"
		case <-timeout:
			_ = cmd.Process.Kill()
			t.Fatal("child did not drain in 90s")
		}
	}
	require.NoError(t, cmd.Wait())
	require.True(t, drained)

	db, err := store.Open(context.Background(), "sqlite:"+dbPath, "", testSchema...)
	require.NoError(t, err)
	defer db.Close()
	l := newLog(t, db)
	head, _ := l.Head()
	require.EqualValues(t, killTotal, head)
	requireDelivered(t, l, h, events.Filter{})
	st := h.Stats()
	t.Logf("receiver: %d received, %d duplicates, %d injected failures, %d batches", st.Received, st.Duplicates, st.Injected, st.Batches)
	// The retry path was exercised: failures were injected (whether one of them also produced a
	// duplicate at the receiver is chance: ~0.9^batches of the runs have none).
	require.Positive(t, st.Injected)
}
