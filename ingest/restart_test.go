package ingest_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/ingest"
)

// TestInfluxKilledMidRun kills InfluxDB (SIGKILL) while devices publish through the embedded
// broker and restarts it: the readings written meanwhile wait in the spool and every one of
// them arrives.
func TestInfluxKilledMidRun(t *testing.T) {
	db := startInflux(t)
	var direct, replayed atomic.Int64
	tel := &ingest.InfluxStore{URL: db.url, Bucket: "offsite/autogen", SpoolDir: t.TempDir(), Logger: quietLogger(),
		FlushInterval: 50 * time.Millisecond, RetryInterval: 300 * time.Millisecond, WriteTimeout: 3 * time.Second,
		OnStored: func(n int, fromSpool bool, _ []int64) {
			if fromSpool {
				replayed.Add(int64(n))
			} else {
				direct.Add(int64(n))
			}
		}}
	require.NoError(t, tel.Initialize())
	t.Cleanup(tel.Close)
	s := newStack(t, sensorFleet(), tel)
	b := startBroker(t, s, "127.0.0.1:0")
	url := "tcp://" + b.Addr()
	const perDevice = 250
	base := time.Now().Add(-10 * time.Minute)
	devs := []string{"dust-1"}
	var wg sync.WaitGroup
	var sent atomic.Int64
	for _, id := range devs {
		c, err := deviceClient(t, url, id, "secret-"+id)
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perDevice {
				if err := publish(t, c, "offsite/site-1/"+id+"/up", dustPayload(base.Add(time.Duration(i)*time.Second), float64(i%500))); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
				sent.Add(1)
				time.Sleep(8 * time.Millisecond)
			}
		}()
	}
	require.Eventually(t, func() bool { return sent.Load() > perDevice/4 }, 20*time.Second, 5*time.Millisecond)
	db.kill()
	require.Eventually(t, func() bool { b, _ := tel.Backlog(); return b > 0 }, 20*time.Second, 10*time.Millisecond, "readings spooled while InfluxDB is down")
	time.Sleep(500 * time.Millisecond)
	db.start()
	wg.Wait()
	s.flush(t, tel)
	require.Eventually(t, func() bool { b, _ := tel.Backlog(); return b == 0 }, 60*time.Second, 50*time.Millisecond, "spool replayed")
	want := int64(len(devs) * perDevice * 8)
	waitFor(t, 20*time.Second, func() (bool, string) {
		n, err := tel.Count(context.Background(), "", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		return err == nil && n == want, fmt.Sprintf("InfluxDB holds %d of %d readings (err %v); stored directly %d, replayed %d; stats %+v", n, want, err, direct.Load(), replayed.Load(), s.pipe.Stats())
	})
}

// TestSpoolSurvivesRestart writes while InfluxDB is unreachable, closes the store (as a
// gateway restart would), and opens a new one on the same spool directory once InfluxDB is
// there: the spooled readings are replayed.
func TestSpoolSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	dead := &ingest.InfluxStore{URL: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), Bucket: "offsite/autogen", SpoolDir: dir,
		Logger: quietLogger(), FlushInterval: 20 * time.Millisecond, WriteTimeout: time.Second}
	require.NoError(t, dead.Initialize())
	base := time.Now().Add(-time.Hour)
	for i := range 1000 {
		dead.Write([]ingest.Reading{{Device: "d1", Site: "s1", Metric: "m", Value: float64(i), Time: base.Add(time.Duration(i) * time.Millisecond), ReceiveTime: base}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, dead.Flush(ctx))
	dead.Close()

	db := startInflux(t)
	live := &ingest.InfluxStore{URL: db.url, Bucket: "offsite/autogen", SpoolDir: dir, Logger: quietLogger(), FlushInterval: 20 * time.Millisecond}
	_, n := mustOpen(t, live)
	require.EqualValues(t, 1000, n, "spool holds what was written before the restart")
	require.Eventually(t, func() bool {
		c, err := live.Count(context.Background(), "d1", base.Add(-time.Minute), time.Now())
		return err == nil && c == 1000
	}, 30*time.Second, 50*time.Millisecond)
}

func mustOpen(t *testing.T, s *ingest.InfluxStore) (int64, int64) {
	require.NoError(t, s.Initialize())
	t.Cleanup(s.Close)
	return s.Backlog()
}

// TestSpoolBounded: past SpoolMaxBytes readings are dropped, counted and reported.
func TestSpoolBounded(t *testing.T) {
	var dropped atomic.Int64
	s := &ingest.InfluxStore{URL: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), Bucket: "b", SpoolDir: t.TempDir(),
		SpoolMaxBytes: 20 << 10, Logger: quietLogger(), FlushInterval: 10 * time.Millisecond, WriteTimeout: time.Second,
		OnDrop: func(n, total int64, reason string) { dropped.Store(total) }}
	require.NoError(t, s.Initialize())
	t.Cleanup(s.Close)
	now := time.Now()
	for i := range 2000 {
		s.Write([]ingest.Reading{{Device: "d1", Metric: "m", Value: 1, Time: now.Add(time.Duration(i)), ReceiveTime: now}})
		if i%100 == 0 {
			time.Sleep(15 * time.Millisecond) // several batches
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, s.Flush(ctx))
	bytes, kept := s.Backlog()
	require.LessOrEqual(t, bytes, int64(20<<10))
	require.Positive(t, dropped.Load())
	require.EqualValues(t, 2000, kept+dropped.Load(), "every reading is either spooled or counted as dropped")
}

// TestBrokerRestart restarts the broker while a device publishes QoS 1 (every tenth message
// malformed): ingest resumes and published = stored + quarantined. Mosquitto runs without a
// shared group here: Mosquitto 2.0 does not keep a shared subscription's messages across its
// own restart while no member is connected (measured; see README).
func TestBrokerRestart(t *testing.T) {
	for _, tr := range transports("") {
		t.Run(tr.name, func(t *testing.T) {
			tel := openSQLiteTelemetry(t)
			s := newStack(t, sensorFleet(), tel)
			url, restart := tr.start(t, s)
			c, err := deviceClient(t, url, "dust-1", "secret-dust-1")
			require.NoError(t, err)
			const total = 300
			base := time.Now().Add(-10 * time.Minute)
			var sent atomic.Int64
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := range total {
					p := dustPayload(base.Add(time.Duration(i)*time.Second), 80)
					if i%10 == 0 {
						p = fmt.Appendf(nil, `{"ts": %d, "n": %d, broken`, base.UnixMilli(), i)
					}
					// A device retries until its QoS 1 publish is acknowledged.
					for publish(t, c, "offsite/site-1/dust-1/up", p) != nil {
						time.Sleep(100 * time.Millisecond)
					}
					sent.Add(1)
					time.Sleep(5 * time.Millisecond)
				}
			}()
			require.Eventually(t, func() bool { return sent.Load() > total/3 }, 20*time.Second, 5*time.Millisecond)
			restart()
			select {
			case <-done:
			case <-time.After(90 * time.Second):
				t.Fatalf("publisher stuck after the broker restart: %d sent", sent.Load())
			}
			var stored int64
			var quarantined int
			waitFor(t, 30*time.Second, func() (bool, string) {
				s.flush(t, tel)
				n, err := tel.(*ingest.SQLiteTelemetry).Count(context.Background(), "dust-1")
				require.NoError(t, err)
				q, err := s.quar.List(context.Background(), ingest.QuarantineFilter{Limit: 1000})
				require.NoError(t, err)
				distinct := map[string]bool{}
				for _, e := range q {
					distinct[string(e.Payload)] = true
				}
				stored, quarantined = n/8, len(distinct)
				return stored+int64(quarantined) == total, fmt.Sprintf("stored %d (%d readings) + quarantined %d != %d; stats %+v", stored, n, quarantined, total, s.pipe.Stats())
			})
			require.EqualValues(t, total/10, quarantined)
		})
	}
}
