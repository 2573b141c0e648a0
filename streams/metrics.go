package streams

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Histogram is a lock-free latency histogram with 0.1 ms buckets up to 1 s (the hot path is one
// atomic add), read for benchmarks and Prometheus.
type Histogram struct {
	buckets [10001]atomic.Uint64 // bucket i: [i*0.1ms, (i+1)*0.1ms); last: overflow
	count   atomic.Uint64
	sumNs   atomic.Uint64
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram { return &Histogram{} }

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	if d < 0 {
		d = 0
	}
	i := int(d / (100 * time.Microsecond))
	if i >= len(h.buckets) {
		i = len(h.buckets) - 1
	}
	h.buckets[i].Add(1)
	h.count.Add(1)
	h.sumNs.Add(uint64(d))
}

// Reset clears the histogram (not atomic as a whole; for benchmarks between phases).
func (h *Histogram) Reset() {
	for i := range h.buckets {
		h.buckets[i].Store(0)
	}
	h.count.Store(0)
	h.sumNs.Store(0)
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 { return h.count.Load() }

// Quantile returns the q-quantile (0..1), at bucket resolution (upper bound of the bucket).
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	target := uint64(math.Ceil(q * float64(n)))
	if target == 0 {
		target = 1
	}
	var acc uint64
	for i := range h.buckets {
		acc += h.buckets[i].Load()
		if acc >= target {
			return time.Duration(i+1) * 100 * time.Microsecond
		}
	}
	return time.Second
}

var promBounds = []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1}

func (h *Histogram) promBuckets() (map[float64]uint64, uint64, float64) {
	out := make(map[float64]uint64, len(promBounds))
	var acc uint64
	bi := 0
	for i := range h.buckets {
		upper := float64(i+1) * 0.0001
		for bi < len(promBounds) && upper > promBounds[bi]+1e-12 {
			out[promBounds[bi]] = acc
			bi++
		}
		acc += h.buckets[i].Load()
	}
	for ; bi < len(promBounds); bi++ {
		out[promBounds[bi]] = acc
	}
	return out, h.count.Load(), float64(h.sumNs.Load()) / 1e9
}

// metrics exports the relay's counters at scrape time, so the packet path pays nothing for them.
type metrics struct{ m *Manager }

var (
	descState   = prometheus.NewDesc("offsite_streams_camera_state", "Camera pull state (0 idle, 1 connecting, 2 online, 3 stalled, 4 offline).", []string{"camera"}, nil)
	descReaders = prometheus.NewDesc("offsite_streams_camera_readers", "Readers attached to the camera's hub (viewers, re-serve, recorders).", []string{"camera"}, nil)
	descIn      = prometheus.NewDesc("offsite_streams_packets_in_total", "RTP packets received from the camera.", []string{"camera"}, nil)
	descDropped = prometheus.NewDesc("offsite_streams_packets_dropped_total", "Packets slow readers did not take.", []string{"camera"}, nil)
	descLatency = prometheus.NewDesc("offsite_streams_relay_latency_seconds", "Added latency: camera RTP in to WebRTC RTP out.", nil, nil)
)

func (x *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- descState
	ch <- descReaders
	ch <- descIn
	ch <- descDropped
	ch <- descLatency
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
	b, n, sum := x.m.Latency.promBuckets()
	ch <- prometheus.MustNewConstHistogram(descLatency, n, sum, b)
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
	descWHEPFirstKey = prometheus.NewDesc("offsite_streams_whep_first_keyframe_seconds", "A viewer's connection (ICE and DTLS up) to its first keyframe sent.", nil, nil)
)

func (x *whepMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWHEPSessions, descWHEPDirect, descWHEPFanout, descWHEPSent, descWHEPDropped, descWHEPSendErr, descWHEPFirstKey} {
		ch <- d
	}
}

func (x *whepMetrics) Collect(ch chan<- prometheus.Metric) {
	st := x.w.Stats()
	ch <- prometheus.MustNewConstMetric(descWHEPSessions, prometheus.GaugeValue, float64(st.Sessions))
	ch <- prometheus.MustNewConstMetric(descWHEPDirect, prometheus.GaugeValue, float64(st.DirectSessions))
	ch <- prometheus.MustNewConstMetric(descWHEPFanout, prometheus.GaugeValue, float64(st.FanoutSessions))
	ch <- prometheus.MustNewConstMetric(descWHEPSent, prometheus.CounterValue, float64(st.PacketsSent))
	ch <- prometheus.MustNewConstMetric(descWHEPDropped, prometheus.CounterValue, float64(st.PacketsDropped))
	ch <- prometheus.MustNewConstMetric(descWHEPSendErr, prometheus.CounterValue, float64(x.w.SendDropped()))
	b, n, sum := x.w.FirstKeyframe.promBuckets()
	ch <- prometheus.MustNewConstHistogram(descWHEPFirstKey, n, sum, b)
}
