package streams

import "github.com/prometheus/client_golang/prometheus"

// latencyBuckets are the upper bounds (seconds) of the relay's latency histograms: 0.1 ms
// steps up to 1 ms, 1 ms steps up to 50 ms, then coarser up to 10 s. The relay's added latency
// and a viewer's time to its first keyframe are mostly below 50 ms (the target for the added
// latency's p99 is 20 ms), and the fine steps let a quantile be read from the buckets to within
// a millisecond there; above that only the order of magnitude matters.
func latencyBuckets() []float64 {
	b := make([]float64, 0, 72)
	for i := 1; i <= 10; i++ {
		b = append(b, float64(i)/10000)
	}
	for i := 2; i <= 50; i++ {
		b = append(b, float64(i)/1000)
	}
	return append(b, 0.06, 0.07, 0.08, 0.09, 0.1, 0.15, 0.2, 0.25, 0.5, 1, 2.5, 5, 10)
}

func newLatencyHistogram(name, help string) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: latencyBuckets()})
}

// metrics exports the relay's counters at scrape time, so the packet path pays nothing for them.
type metrics struct{ m *Manager }

var (
	descState   = prometheus.NewDesc("offsite_streams_camera_state", "Camera pull state (0 idle, 1 connecting, 2 online, 3 stalled, 4 offline).", []string{"camera"}, nil)
	descReaders = prometheus.NewDesc("offsite_streams_camera_readers", "Readers attached to the camera's hub (viewers, re-serve, recorders).", []string{"camera"}, nil)
	descIn      = prometheus.NewDesc("offsite_streams_packets_in_total", "RTP packets received from the camera.", []string{"camera"}, nil)
	descDropped = prometheus.NewDesc("offsite_streams_packets_dropped_total", "Packets slow readers did not take.", []string{"camera"}, nil)
)

func (x *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- descState
	ch <- descReaders
	ch <- descIn
	ch <- descDropped
	x.m.Latency.Describe(ch)
}

func (x *metrics) Collect(ch chan<- prometheus.Metric) {
	x.m.mu.Lock()
	cams := make([]*Camera, 0, len(x.m.cameras))
	for _, c := range x.m.cameras {
		cams = append(cams, c)
	}
	x.m.mu.Unlock()
	for _, c := range cams {
		st := c.Status()
		state := 0
		for s := StateIdle; s <= StateOffline; s++ {
			if s.String() == st.State {
				state = int(s)
			}
		}
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, float64(state), st.ID)
		ch <- prometheus.MustNewConstMetric(descReaders, prometheus.GaugeValue, float64(st.Readers), st.ID)
		ch <- prometheus.MustNewConstMetric(descIn, prometheus.CounterValue, float64(st.PacketsIn), st.ID)
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(st.PacketsDropped), st.ID)
	}
	x.m.Latency.Collect(ch)
}

// whepMetrics exports the WebRTC egress's counters at scrape time.
type whepMetrics struct{ w *WHEP }

var (
	descWHEPSessions = prometheus.NewDesc("offsite_streams_whep_sessions", "Live WebRTC (WHEP) viewing sessions.", nil, nil)
	descWHEPDirect   = prometheus.NewDesc("offsite_streams_whep_direct_sessions", "Live sessions whose media go out on the direct SRTP path.", nil, nil)
	descWHEPFanout   = prometheus.NewDesc("offsite_streams_whep_fanout_sessions", "Live sessions served by a camera's fan-out groups.", nil, nil)
	descWHEPSent     = prometheus.NewDesc("offsite_streams_whep_packets_sent_total", "RTP packets written to viewers.", nil, nil)
	descWHEPDropped  = prometheus.NewDesc("offsite_streams_whep_packets_dropped_total", "Packets viewers missed by falling behind (they resume at the next keyframe).", nil, nil)
	descWHEPSendErr  = prometheus.NewDesc("offsite_streams_whep_send_errors_total", "Datagrams the kernel refused to send on the WebRTC UDP port.", nil, nil)
)

func (x *whepMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWHEPSessions, descWHEPDirect, descWHEPFanout, descWHEPSent, descWHEPDropped, descWHEPSendErr} {
		ch <- d
	}
	x.w.FirstKeyframe.Describe(ch)
}

func (x *whepMetrics) Collect(ch chan<- prometheus.Metric) {
	st := x.w.Stats()
	ch <- prometheus.MustNewConstMetric(descWHEPSessions, prometheus.GaugeValue, float64(st.Sessions))
	ch <- prometheus.MustNewConstMetric(descWHEPDirect, prometheus.GaugeValue, float64(st.DirectSessions))
	ch <- prometheus.MustNewConstMetric(descWHEPFanout, prometheus.GaugeValue, float64(st.FanoutSessions))
	ch <- prometheus.MustNewConstMetric(descWHEPSent, prometheus.CounterValue, float64(st.PacketsSent))
	ch <- prometheus.MustNewConstMetric(descWHEPDropped, prometheus.CounterValue, float64(st.PacketsDropped))
	ch <- prometheus.MustNewConstMetric(descWHEPSendErr, prometheus.CounterValue, float64(x.w.SendDropped()))
	x.w.FirstKeyframe.Collect(ch)
}
