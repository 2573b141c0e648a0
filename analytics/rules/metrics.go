package rules

import "github.com/prometheus/client_golang/prometheus"

// collector exposes Stats as offsite_rules_* metrics, read at scrape time so Observe only
// touches atomics.
type collector struct{ e *Engine }

var (
	descReadings   = prometheus.NewDesc("offsite_rules_readings_total", "Readings observed by the rule engine.", nil, nil)
	descUnknown    = prometheus.NewDesc("offsite_rules_unknown_device_readings_total", "Readings of devices the engine could not look up.", nil, nil)
	descLate       = prometheus.NewDesc("offsite_rules_late_readings_total", "Readings older than the rule's last one, not evaluated.", nil, nil)
	descIgnored    = prometheus.NewDesc("offsite_rules_ignored_readings_total", "Readings with a value that is not a finite number.", nil, nil)
	descTransition = prometheus.NewDesc("offsite_rules_transitions_total", "Alarm transitions made.", []string{"state"}, nil)
	descSuppressed = prometheus.NewDesc("offsite_rules_suppressed_total", "Activations suppressed by the cooldown (flapping).", nil, nil)
	descEmitted    = prometheus.NewDesc("offsite_rules_emitted_total", "Events accepted by Emit.", nil, nil)
	descEmitFail   = prometheus.NewDesc("offsite_rules_emit_failures_total", "Emit rounds that failed and will be retried.", nil, nil)
	descFlushFail  = prometheus.NewDesc("offsite_rules_store_failures_total", "Failed writes of rule state.", nil, nil)
	descPending    = prometheus.NewDesc("offsite_rules_pending_events", "Events made but not yet accepted by Emit.", nil, nil)
	descDevices    = prometheus.NewDesc("offsite_rules_devices", "Devices with rule state.", nil, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descReadings, descUnknown, descLate, descIgnored, descTransition,
		descSuppressed, descEmitted, descEmitFail, descFlushFail, descPending, descDevices} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.e.Stats()
	k := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	k(descReadings, s.Readings)
	k(descUnknown, s.UnknownDevice)
	k(descLate, s.Late)
	k(descIgnored, s.Ignored)
	k(descTransition, s.Activated, "active")
	k(descTransition, s.Cleared, "cleared")
	k(descSuppressed, s.Suppressed)
	k(descEmitted, s.Emitted)
	k(descEmitFail, s.EmitFailures)
	k(descFlushFail, s.FlushFailures)
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(s.Pending))
	ch <- prometheus.MustNewConstMetric(descDevices, prometheus.GaugeValue, float64(s.Devices))
}
