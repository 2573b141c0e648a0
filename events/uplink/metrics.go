package uplink

import "github.com/prometheus/client_golang/prometheus"

// Collector exposes uplinks' status as Prometheus metrics (offsite_uplink_*), read at scrape
// time so nothing is updated on the delivery path.
type Collector struct {
	Uplinks func() []*Uplink
}

var (
	descCursor   = prometheus.NewDesc("offsite_uplink_cursor", "Last log seq the uplink has passed.", []string{"uplink"}, nil)
	descBacklog  = prometheus.NewDesc("offsite_uplink_backlog", "Log positions after the uplink's cursor.", []string{"uplink"}, nil)
	descLag      = prometheus.NewDesc("offsite_uplink_lag_seconds", "Age of the oldest event waiting for delivery.", []string{"uplink"}, nil)
	descDead     = prometheus.NewDesc("offsite_uplink_dead_letters", "Unresolved events rejected by the receiver.", []string{"uplink"}, nil)
	descDeliv    = prometheus.NewDesc("offsite_uplink_delivered_total", "Events the receiver accepted or already had.", []string{"uplink"}, nil)
	descRejected = prometheus.NewDesc("offsite_uplink_rejected_total", "Events the receiver rejected.", []string{"uplink"}, nil)
	descReq      = prometheus.NewDesc("offsite_uplink_requests_total", "Batch requests sent.", []string{"uplink"}, nil)
	descFail     = prometheus.NewDesc("offsite_uplink_failures_total", "Batch attempts that must be retried.", []string{"uplink"}, nil)
	descActive   = prometheus.NewDesc("offsite_uplink_active", "1 on the instance that delivers the uplink, 0 on a standby centre instance.", []string{"uplink"}, nil)
)

// Describe implements prometheus.Collector.
func (c Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCursor, descBacklog, descLag, descDead, descDeliv, descRejected, descReq, descFail, descActive} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c Collector) Collect(ch chan<- prometheus.Metric) {
	for _, u := range c.Uplinks() {
		st := u.Status()
		g := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, st.Name)
		}
		k := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), st.Name)
		}
		g(descCursor, float64(st.Cursor))
		g(descBacklog, float64(st.Backlog))
		g(descLag, st.LagSeconds)
		g(descDead, float64(st.DeadLetters))
		k(descDeliv, st.Delivered)
		k(descRejected, st.Rejected)
		k(descReq, st.Requests)
		k(descFail, st.Failures)
		active := 1.0
		if st.Standby {
			active = 0
		}
		g(descActive, active)
	}
}
