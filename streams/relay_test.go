package streams_test

import (
	"context"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/streams"
	"github.com/offsite-gw/offsite/streams/internal/whepclient"
	"github.com/offsite-gw/offsite/streams/simcam"
)

// A pion viewer gets a keyframe first, with SPS/PPS in-band although the camera sends them only
// in the SDP, and keeps receiving frames; the session ends on DELETE and is audited.
func TestWHEPViewerKeyframeFirst(t *testing.T) {
	for _, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) {
			sim := &simcam.Server{Username: "admin", Password: "cam-pass",
				Cameras: []simcam.Camera{{Path: "waiting-area", Clip: demoClip(t, "waiting-area"), Audio: true}}}
			if transport == "udp" {
				sim.UDPRTPListen, sim.UDPRTCPListen = "127.0.0.1:18000", "127.0.0.1:18001"
			}
			startSim(t, sim)
			r := newRelay(t, nil)
			require.NoError(t, r.m.AddCamera(streams.CameraConfig{ID: "cam1", URL: sim.URL("waiting-area"),
				Username: "admin", Password: "cam-pass", Transport: transport}))

			v := r.viewer(t, "cam1")
			require.NoError(t, v.WaitFrames(ctxT(t, 15*time.Second), 30))
			st := v.Stats()
			require.True(t, st.FirstFrameWasKeyframe, "first frame must be a keyframe")
			require.True(t, st.FirstKeyframeHadSPSPPS, "SPS/PPS must be in-band before the IDR")
			require.Equal(t, 1, r.whep.Sessions())

			// Sender reports (for audio/video sync) come about once a second, counting what was
			// sent, with the wall clock and the matching RTP time of the video timeline.
			waitFor(t, 5*time.Second, "a sender report", func() bool { _, _, n := v.SenderReport(); return n >= 2 })
			sr, at, _ := v.SenderReport()
			require.Positive(t, sr.PacketCount)
			require.LessOrEqual(t, int64(sr.PacketCount), v.Stats().Packets)
			require.Positive(t, sr.OctetCount)
			ntpSecs := int64(sr.NTPTime>>32) - 2208988800
			require.InDelta(t, at.Unix(), ntpSecs, 2, "sender report wall clock")
			// the report's RTP time is "now" on the video timeline: within a second of the last frame
			d := int32(sr.RTPTime - v.LastFrameTimestamp())
			require.InDelta(t, 0, float64(d), 90000, "sender report RTP time %d vs last frame %d", sr.RTPTime, v.LastFrameTimestamp())

			cs, ok := r.m.Camera("cam1")
			require.True(t, ok)
			status := cs.Status()
			require.Equal(t, "online", status.State)
			require.Equal(t, "H264", status.Codec)
			require.Equal(t, 640, status.Width)
			require.Equal(t, "PCMU", status.Audio)
			require.Nil(t, status.Problem)

			require.NoError(t, v.Close(true))
			waitFor(t, 5*time.Second, "session to end", func() bool { return r.whep.Sessions() == 0 })
			ev := r.sessions.all()
			require.Len(t, ev, 2)
			require.Equal(t, "start", ev[0].Kind)
			require.Equal(t, "end", ev[1].Kind)
			require.Equal(t, "officer", ev[1].User)
			require.Equal(t, "cam1", ev[1].Camera)
			require.False(t, ev[1].End.Before(ev[1].Start))
		})
	}
}

// Auth: digest-only and basic-only cameras both work; a wrong password leaves the camera offline
// with the reason and keeps retrying (backoff covers a failed first connect).
func TestSourceAuthAndBackoff(t *testing.T) {
	for _, method := range []string{"basic", "digest"} {
		t.Run(method, func(t *testing.T) {
			sim := startSim(t, &simcam.Server{Username: "u", Password: "p@ss#1", AuthMethods: []string{method},
				Cameras: []simcam.Camera{{Path: "c", Clip: demoClip(t, "hall-entrance")}}})
			r := newRelay(t, nil)
			require.NoError(t, r.m.AddCamera(streams.CameraConfig{ID: "good", URL: sim.URL("c"), Username: "u", Password: "p@ss#1", AlwaysOn: true}))
			require.NoError(t, r.m.AddCamera(streams.CameraConfig{ID: "bad", URL: sim.URL("c"), Username: "u", Password: "wrong", AlwaysOn: true}))
			waitFor(t, 10*time.Second, "good camera online", func() bool {
				c, _ := r.m.Camera("good")
				return c.Status().State == "online"
			})
			waitFor(t, 10*time.Second, "bad camera to retry", func() bool {
				n := 0
				for _, s := range r.states.get("bad") {
					if s == streams.StateOffline {
						n++
					}
				}
				return n >= 3
			})
			c, _ := r.m.Camera("bad")
			require.Contains(t, c.Status().Reason, "retrying in")
		})
	}
}

// An on-demand camera is pulled only while watched and dropped after the idle timeout.
func TestOnDemandIdle(t *testing.T) {
	sim := startSim(t, &simcam.Server{Cameras: []simcam.Camera{{Path: "c", Clip: demoClip(t, "hall-entrance")}}})
	r := newRelay(t, func(m *streams.Manager) { m.IdleTimeout = time.Second })
	require.NoError(t, r.m.AddCamera(streams.CameraConfig{ID: "od", URL: sim.URL("c")}))
	cam, _ := r.m.Camera("od")
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, "idle", cam.Status().State)

	v := r.viewer(t, "od")
	require.NoError(t, v.WaitFrames(ctxT(t, 10*time.Second), 5))
	require.Equal(t, "online", cam.Status().State)
	require.NoError(t, v.Close(true))
	waitFor(t, 6*time.Second, "on-demand camera to go idle", func() bool { return cam.Status().State == "idle" })
}

// H.265 and B-frame streams are refused with a status a person can act on, not a black tile.
func TestCodecProblems(t *testing.T) {
	bclip := genClip(t, "bframes-320.h264", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-t", "4",
		"-c:v", "libx264", "-profile:v", "main", "-bf", "2", "-g", "50", "-pix_fmt", "yuv420p")
	sim := startSim(t, &simcam.Server{Cameras: []simcam.Camera{
		{Path: "hevc", Codec: "H265"},
		{Path: "bframes", Clip: bclip},
	}})
	r := newRelay(t, nil)
	require.NoError(t, r.m.AddCamera(streams.CameraConfig{ID: "hevc", URL: sim.URL("hevc")}))
	require.NoError(t, r.m.AddCamera(streams.CameraConfig{ID: "bf", URL: sim.URL("bframes"), AlwaysOn: true}))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := r.viewerErr(ctx, "hevc")
	require.True(t, isHTTPStatus(c, 422), "%v", c)
	require.Contains(t, c.Error(), "codec_unsupported")
	require.Contains(t, c.Error(), "H.265 cannot play in browsers over WebRTC; choose the H.264 sub-stream")
	cam, _ := r.m.Camera("hevc")
	st := cam.Status()
	require.NotNil(t, st.Problem)
	require.Equal(t, "H265", st.Codec)

	bf, _ := r.m.Camera("bf")
	bf.Touch()
	waitFor(t, 10*time.Second, "B-frames to be detected", func() bool { return bf.Status().Problem != nil })
	require.Contains(t, bf.Status().Problem.Message, "B-frames")
	err := r.viewerErr(ctx, "bf")
	require.True(t, isHTTPStatus(err, 422), "%v", err)
}

// A UDP viewer's media goes out on the direct SRTP path (the session derives the SRTP keys from
// the DTLS handshake and writes to the UDP port itself); a viewer over ICE-TCP, or any viewer
// with the direct path off, goes through pion. Either way the viewer decrypts video and audio
// and starts with a whole keyframe — keys derived wrongly would leave it with nothing. A direct
// session whose viewer's pair moves to ICE-TCP ends, and the reconnected viewer starts at once
// from the cached keyframe.
func TestWHEPDirectSRTP(t *testing.T) {
	sim := &simcam.Server{Username: "admin", Password: "cam-pass",
		Cameras: []simcam.Camera{{Path: "hall", Clip: demoClip(t, "waiting-area"), Audio: true}}}
	startSim(t, sim)
	for _, tc := range []struct {
		name       string
		disable    bool
		noFanout   bool
		tcp        bool
		wantDirect int
		wantFanout int
	}{
		{name: "udp", wantDirect: 1, wantFanout: 1},
		{name: "udp-own-goroutine", noFanout: true, wantDirect: 1},
		{name: "udp-direct-off", disable: true},
		{name: "ice-tcp", tcp: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// the tracks' sequence numbers wrap within the first second: the viewer must go on
			// decrypting after the rollover counter moved on, on either path
			t.Cleanup(streams.SetInitialSeqForTest(0xfff0))
			reg := prometheus.NewRegistry()
			// the camera freezes below for longer than the tests' offline timeout; an offline
			// camera would be pulled anew, which empties its GOP cache
			r := newRelayWHEP(t, func(m *streams.Manager) { m.OfflineTimeout = time.Minute }, func(w *streams.WHEP) {
				w.DisableDirectSRTP, w.DisableFanout, w.Registerer = tc.disable, tc.noFanout, reg
			})
			require.NoError(t, r.m.AddCamera(streams.CameraConfig{ID: "cam1", URL: sim.URL("hall"),
				Username: "admin", Password: "cam-pass", AlwaysOn: true}))
			api, err := whepclient.NewAPI(tc.tcp)
			require.NoError(t, err)
			v := &whepclient.Client{API: api, Endpoint: r.endpoint("cam1"), Token: testToken, DecodeAll: true, Audio: true}
			require.NoError(t, v.Start(ctxT(t, 10*time.Second)))
			t.Cleanup(func() { _ = v.Close(false) })
			require.NoError(t, v.WaitFrames(ctxT(t, 15*time.Second), 30))
			st := v.Stats()
			require.True(t, st.FirstFrameWasKeyframe, "first frame must be a keyframe")
			require.True(t, st.FirstKeyframeHadSPSPPS, "SPS/PPS must be in-band before the IDR")
			require.Zero(t, st.Lost, "video packets lost on loopback")
			waitFor(t, 5*time.Second, "audio", func() bool { return v.Stats().AudioPackets > 10 })
			require.Equal(t, tc.wantDirect, r.whep.Stats().DirectSessions)
			// caught up on the direct path, the session is handed to the camera's fan-out group
			// and the frames keep coming from there, none lost
			if tc.wantFanout > 0 {
				waitFor(t, 5*time.Second, "the hand-over to the fan-out group", func() bool { return r.whep.Stats().FanoutSessions == tc.wantFanout })
			}
			before, counted := v.Stats().Frames, histogramCount(t, r.m.Latency)
			require.NoError(t, v.WaitFrames(ctxT(t, 10*time.Second), before+25))
			require.Zero(t, v.Stats().Lost, "video packets lost after the hand-over")
			// each frame sent counts once in the relay's added-latency histogram, also from a group
			require.GreaterOrEqual(t, histogramCount(t, r.m.Latency)-counted, uint64(20), "frames counted in the latency histogram")
			require.Zero(t, v.Stats().Reordered, "frames out of order")
			require.Equal(t, tc.wantFanout, r.whep.Stats().FanoutSessions)
			// the same figures reach Prometheus
			m := gatherMetrics(t, reg)
			require.Equal(t, 1.0, m["offsite_streams_whep_sessions"])
			require.Equal(t, float64(tc.wantDirect), m["offsite_streams_whep_direct_sessions"])
			require.Equal(t, float64(tc.wantFanout), m["offsite_streams_whep_fanout_sessions"])
			require.Positive(t, m["offsite_streams_whep_packets_sent_total"])
			require.Equal(t, 1.0, m["offsite_streams_whep_first_keyframe_seconds_count"])
			// RTCP goes through pion on either path: sender reports arrive
			waitFor(t, 5*time.Second, "a sender report", func() bool { _, _, n := v.SenderReport(); return n >= 1 })
			if tc.wantDirect == 0 {
				return
			}

			// The camera freezes, then the viewer's pair moves to ICE-TCP. The session's SRTP
			// stream cannot move to pion's path, so the session ends with the reason, at once
			// although no packet is due, and the viewer is told (DTLS close).
			sim.SetPaused("hall", true)
			t.Cleanup(func() { sim.SetPaused("hall", false) })
			require.Equal(t, 1, streams.MoveToICETCPForTest(r.whep))
			waitFor(t, 5*time.Second, "the session's end event", func() bool { return len(r.sessions.all()) == 2 })
			end := r.sessions.all()[1]
			require.Equal(t, "end", end.Kind)
			require.Equal(t, "officer", end.User)
			require.Contains(t, end.Reason, "ICE path changed")
			require.Zero(t, r.whep.Sessions())
			waitFor(t, 10*time.Second, "the viewer to see its session closed", func() bool {
				return v.Stats().State == webrtc.PeerConnectionStateClosed
			})

			// The player reconnects: with the camera still frozen, the only keyframe there is
			// is the cached one, and the new session starts with it.
			v2 := &whepclient.Client{API: api, Endpoint: r.endpoint("cam1"), Token: testToken, DecodeAll: true, Audio: true}
			require.NoError(t, v2.Start(ctxT(t, 10*time.Second)))
			t.Cleanup(func() { _ = v2.Close(false) })
			require.NoError(t, v2.WaitFrames(ctxT(t, 10*time.Second), 1), "the cached keyframe")
			st = v2.Stats()
			require.True(t, st.FirstFrameWasKeyframe, "first frame after reconnecting must be a keyframe")
			require.True(t, st.FirstKeyframeHadSPSPPS, "SPS/PPS must be in-band before the IDR")
			require.Equal(t, 1, r.whep.Stats().DirectSessions)

			// The camera resumes: the new session goes on live, direct and in a group again.
			sim.SetPaused("hall", false)
			before = v2.Stats().Frames
			require.NoError(t, v2.WaitFrames(ctxT(t, 10*time.Second), before+25), "live video after reconnecting")
			waitFor(t, 5*time.Second, "audio after reconnecting", func() bool { return v2.Stats().AudioPackets > 10 })
			require.Zero(t, v2.Stats().Lost, "video packets lost after reconnecting")
			require.Zero(t, v2.Stats().Reordered, "frames out of order after reconnecting")
			waitFor(t, 5*time.Second, "the new session in a group", func() bool { return r.whep.Stats().FanoutSessions == tc.wantFanout })
		})
	}
}

// histogramCount returns how many observations h holds.
func histogramCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, h.Write(&m))
	return m.GetHistogram().GetSampleCount()
}

// gatherMetrics returns each gauge and counter of reg by name, and each histogram's count as
// name_count.
func gatherMetrics(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetGauge() != nil:
				out[mf.GetName()] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				out[mf.GetName()] = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				out[mf.GetName()+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}
