package streams_test

import (
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/streams"
	"github.com/offsite-gw/offsite/streams/simcam"
)

var (
	testSPS = []byte{0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x47, 0xfe, 0xc8}
	testPPS = []byte{0x68, 0xce, 0x3c, 0x80}
)

func idr(size int) [][]byte {
	n := make([]byte, size)
	n[0], n[1] = 0x65, 0x88
	return [][]byte{n}
}

func pframe(size int) [][]byte {
	n := make([]byte, size)
	n[0], n[1] = 0x41, 0x9a
	return [][]byte{n}
}

func newHub(t *testing.T, queue int) *streams.Hub {
	h := &streams.Hub{Camera: "t", QueueSize: queue}
	require.NoError(t, h.Initialize())
	t.Cleanup(h.Close)
	h.SetFormat(streams.Format{Codec: "H264", SPS: testSPS, PPS: testPPS})
	return h
}

func TestHubSlowReaderDropsAndResyncs(t *testing.T) {
	h := newHub(t, 8)
	fast := h.AddReader(streams.ReaderOptions{QueueSize: 1000})
	slow := h.AddReader(streams.ReaderOptions{})
	now := time.Now()
	pts := int64(0)
	write := func(au [][]byte) {
		pts += 3600
		h.WriteVideo(au, pts, now)
	}
	// GOP of 25 frames, 3 GOPs; the slow reader never reads during this
	for g := 0; g < 3; g++ {
		write(idr(3000)) // 3 packets of ≤1200 bytes
		for i := 0; i < 24; i++ {
			write(pframe(500))
		}
	}
	require.Len(t, fast.C(), 75, "the fast reader got everything")
	require.Len(t, slow.C(), 8, "the slow reader's queue is bounded")
	require.Greater(t, slow.Dropped(), uint64(0))
	require.Greater(t, h.Stats().PacketsDropped, uint64(0))

	// drain the slow reader: it resumes exactly at the next keyframe, SPS/PPS in-band
	for len(slow.C()) > 0 {
		<-slow.C()
	}
	write(pframe(500))
	require.Len(t, slow.C(), 0, "after a drop, P-frames are skipped until a keyframe")
	write(idr(3000))
	u := <-slow.C()
	require.True(t, u.Keyframe)
	require.Equal(t, h264.NALUTypeSPS, h264.NALUType(u.NALUs[0][0]&0x1f))
	require.Equal(t, h264.NALUTypePPS, h264.NALUType(u.NALUs[1][0]&0x1f))
	for _, p := range u.Packets {
		require.LessOrEqual(t, len(p.Payload), streams.MaxRTPPayload)
	}
}

func TestHubGOPCacheAndTimeline(t *testing.T) {
	h := newHub(t, 64)
	now := time.Now()
	h.WriteVideo(pframe(100), 0, now) // before the first keyframe: ignored
	require.Nil(t, h.GOP())
	h.WriteVideo(idr(2000), 3600, now)
	h.WriteVideo(pframe(100), 7200, now)
	h.WriteVideo(pframe(100), 10800, now)
	r := h.AddReader(streams.ReaderOptions{})
	require.Len(t, r.C(), 3, "a new reader starts with the GOP")
	u := <-r.C()
	require.True(t, u.Keyframe)
	require.Equal(t, h264.NALUTypeSPS, h264.NALUType(u.NALUs[0][0]&0x1f), "SPS in-band")

	// a camera reconnect restarts the source's timestamps; the hub's continue forward
	last := h.GOP()[2].PTS
	h.SetFormat(streams.Format{Codec: "H264", SPS: testSPS, PPS: testPPS})
	h.WriteVideo(pframe(100), 0, now.Add(time.Second)) // waits for a keyframe
	h.WriteVideo(idr(2000), 0, now.Add(time.Second))
	g := h.GOP()
	require.Len(t, g, 1)
	require.Greater(t, g[0].PTS, last)
	require.InDelta(t, last+90000, g[0].PTS, 10)
	require.Equal(t, 1, h.Stats().Readers)
	r.Close()
	require.Equal(t, 0, h.Stats().Readers)
}

// A stuck reader on a live camera loses its own packets; a WebRTC viewer on the same camera is
// not held up.
func TestStuckReaderDoesNotStallViewers(t *testing.T) {
	sim := startSim(t, &simcam.Server{Cameras: []simcam.Camera{{Path: "c", Clip: demoClip(t, "back-office")}}})
	r := newRelay(t, func(m *streams.Manager) { m.QueueSize = 16 })
	require.NoError(t, r.m.AddCamera(streams.CameraConfig{ID: "cam", URL: sim.URL("c")}))
	cam, _ := r.m.Camera("cam")
	stuck := cam.Hub().AddReader(streams.ReaderOptions{})
	defer stuck.Close()
	v := r.viewer(t, "cam")
	require.NoError(t, v.WaitFrames(ctxT(t, 10*time.Second), 50), "the viewer keeps getting frames")
	require.Greater(t, stuck.Dropped(), uint64(0))
	require.Greater(t, cam.Status().PacketsDropped, uint64(0))
	// the stuck reader catches up later at a keyframe
	for len(stuck.C()) > 0 {
		<-stuck.C()
	}
	select {
	case u := <-stuck.C():
		require.True(t, u.Keyframe)
	case <-time.After(6 * time.Second):
		t.Fatal("no keyframe after resync")
	}
}
