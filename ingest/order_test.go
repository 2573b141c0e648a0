package ingest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/ingest"
)

// discardSink accepts readings and keeps nothing.
type discardSink struct{}

func (discardSink) Write([]ingest.Reading) {}

// One device's messages reach the rules in the order they arrived, even with several workers,
// or a rule would see a reading as late and skip it.
func TestPipelineKeepsEachDeviceInOrder(t *testing.T) {
	devs := &fakeDevices{}
	for i := range 8 {
		devs.add("s1", fmt.Sprintf("d%d", i), "generic-json")
	}
	s := newStack(t, devs, discardSink{})
	s.pipe.Close() // replace the stack's pipeline with one that records what rules would see
	var mu sync.Mutex
	seen := map[string][]float64{}
	pipe := &ingest.Pipeline{Directory: s.dir, Sink: discardSink{}, Quarantine: s.quar, Presence: s.presence, Workers: 4, QueueSize: 4096,
		Logger: quietLogger(), OnReadings: func(sn *ingest.Sensor, rs []ingest.Reading) {
			mu.Lock()
			for _, r := range rs {
				seen[sn.ID] = append(seen[sn.ID], r.Value)
			}
			mu.Unlock()
		}}
	require.NoError(t, pipe.Initialize())
	t.Cleanup(pipe.Close)
	const n = 500
	for i := range n {
		for d := range 8 {
			pipe.Submit(ingest.Message{Topic: fmt.Sprintf("offsite/s1/d%d/up", d), Payload: fmt.Appendf(nil, `{"values":{"seq":%d}}`, i)})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, pipe.Flush(ctx))
	mu.Lock()
	defer mu.Unlock()
	for d := range 8 {
		got := seen[fmt.Sprintf("d%d", d)]
		require.Len(t, got, n)
		for i, v := range got {
			require.Equalf(t, float64(i), v, "device d%d: message %d processed out of order", d, i)
		}
	}
}

// A device without a clock is stamped with the receive time; a burst received in the same
// millisecond (a broker replaying a session) must still give one reading per message.
func TestBurstWithoutDeviceTimeKeepsEveryReading(t *testing.T) {
	devs := &fakeDevices{}
	devs.add("s1", "g1", "generic-json")
	s := newStack(t, devs, discardSink{})
	var mu sync.Mutex
	stamps := map[time.Time]bool{}
	s.pipe.Close()
	pipe := &ingest.Pipeline{Directory: s.dir, Sink: discardSink{}, Quarantine: s.quar, Presence: s.presence, Workers: 2, QueueSize: 256,
		Logger: quietLogger(), OnReadings: func(_ *ingest.Sensor, rs []ingest.Reading) {
			mu.Lock()
			stamps[rs[0].Time] = true
			mu.Unlock()
		}}
	require.NoError(t, pipe.Initialize())
	t.Cleanup(pipe.Close)
	at := time.Now()
	for i := range 20 {
		pipe.Submit(ingest.Message{Topic: "offsite/s1/g1/up", Received: at, Payload: fmt.Appendf(nil, `{"values":{"seq":%d}}`, i)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, pipe.Flush(ctx))
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, stamps, 20, "20 messages received in the same instant keep 20 distinct timestamps")
}
