package ingest_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/ingest"
	"github.com/offsite-gw/offsite/internal/store"
)

const envJournalChild = "OFFSITE_JOURNAL_CHILD_DIR"

// TestJournalKillChild is the gateway stand-in TestJournalKillNine runs as a child process:
// embedded broker, pipeline with a journal, SQLite telemetry, all in the directory it is given.
func TestJournalKillChild(t *testing.T) {
	dir := os.Getenv(envJournalChild)
	if dir == "" {
		t.Skip("helper process for TestJournalKillNine")
	}
	ctx := context.Background()
	devs := &fakeDevices{}
	devs.add("s1", "g1", "generic-json")
	dirc := &ingest.Directory{Devices: devs, Profiles: registry(t), Logger: quietLogger(), RefreshInterval: -1}
	require.NoError(t, dirc.Initialize())
	db, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "meta.db"), dir, testSchema...)
	require.NoError(t, err)
	quar := &ingest.Quarantine{DB: db, Logger: quietLogger()}
	require.NoError(t, quar.Initialize())
	tel := &ingest.SQLiteTelemetry{Path: filepath.Join(dir, "telemetry.db")}
	require.NoError(t, tel.Initialize())
	pipe := &ingest.Pipeline{Directory: dirc, Sink: tel, Quarantine: quar, Logger: quietLogger(),
		Journal: journalFor(dir)}
	require.NoError(t, pipe.Initialize())
	b := &ingest.Broker{Listen: os.Getenv("OFFSITE_JOURNAL_CHILD_LISTEN"), Auth: devs, Directory: dirc, Pipeline: pipe,
		Logger: quietLogger(), ConnectRate: 1000, ConnectBurst: 1000}
	require.NoError(t, b.Initialize())
	fmt.Println("READY")
	select {} // until killed
}

// TestJournalKillNine: a device publishes QoS 1 messages; right after the last PUBACK the
// gateway is killed with SIGKILL. After a restart on the same files every acknowledged message
// is stored — none lost in the memory queue or the telemetry write buffer.
func TestJournalKillNine(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestJournalKillChild$", "-test.v")
		cmd.Env = append(os.Environ(), envJournalChild+"="+dir, "OFFSITE_JOURNAL_CHILD_LISTEN="+listen)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		ready := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if strings.Contains(sc.Text(), "READY") {
					close(ready)
				}
			}
		}()
		select {
		case <-ready:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatal("child did not start")
		}
		return cmd
	}

	child := start()
	c, err := deviceClient(t, "tcp://"+listen, "g1", "secret-g1")
	require.NoError(t, err)
	const n = 2000
	base := time.Now().Add(-time.Hour).UnixMilli()
	for i := range n {
		require.NoError(t, publish(t, c, "offsite/s1/g1/up", fmt.Appendf(nil, `{"ts": %d, "values": {"seq": %d}}`, base+int64(i), i)))
	}
	require.NoError(t, child.Process.Signal(syscall.SIGKILL)) // right after the last PUBACK
	_, _ = child.Process.Wait()
	c.Disconnect(0)

	child = start()
	defer func() { _ = child.Process.Kill(); _, _ = child.Process.Wait() }()
	tel := &ingest.SQLiteTelemetry{Path: filepath.Join(dir, "telemetry.db")}
	require.NoError(t, tel.Initialize())
	defer tel.Close()
	var got int64
	require.Eventually(t, func() bool {
		got, err = tel.Count(context.Background(), "g1")
		return err == nil && got == n
	}, 30*time.Second, 200*time.Millisecond, "acknowledged messages stored after kill -9: %d of %d", got, n)
}

// journalFor lets a run without the journal show what it protects (OFFSITE_JOURNAL_OFF=1).
func journalFor(dir string) *ingest.Journal {
	if os.Getenv("OFFSITE_JOURNAL_OFF") == "1" {
		return nil
	}
	return &ingest.Journal{Dir: filepath.Join(dir, "journal")}
}
