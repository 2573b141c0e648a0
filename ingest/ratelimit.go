package ingest

import (
	"sort"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimitReport tells maintainers that a device publishes faster than its profile allows.
type RateLimitReport struct {
	Device, Site string
	// Dropped is the number of messages dropped since the last report; Total since start.
	Dropped, Total int64
	// Limit is the rate the device was held to, in messages per second (RateMultiple × its
	// normal rate), and Interval its normal gap between two messages.
	Limit    float64
	Interval time.Duration
}

// RateLimitStat is one device's dropped messages since the broker started.
type RateLimitStat struct {
	Device  string    `json:"device"`
	Site    string    `json:"site"`
	Dropped int64     `json:"dropped"`
	Last    time.Time `json:"last"`
	// Limit is messages per second.
	Limit float64 `json:"limit_per_s"`
}

type deviceRate struct {
	mu         sync.Mutex // the counters below; lim has its own
	lim        *rate.Limiter
	interval   time.Duration
	dropped    int64
	reported   int64
	lastReport time.Time
	last       time.Time
	site       string
}

// allowMessage says whether s may publish one more message now. Called on the client's read
// loop of every device at once, so the common case is a read-locked map lookup and the
// device's own token check.
func (b *Broker) allowMessage(s *Sensor) bool {
	if b.RateMultiple <= 0 {
		return true
	}
	interval := time.Duration(s.Profile.Interval)
	if interval <= 0 {
		interval = b.DefaultInterval
	}
	limit := rate.Limit(b.RateMultiple / interval.Seconds())
	b.rateMu.RLock()
	dr := b.rates[s.ID]
	b.rateMu.RUnlock()
	if dr == nil {
		b.rateMu.Lock()
		if dr = b.rates[s.ID]; dr == nil {
			if len(b.rates) > 200000 { // devices removed long ago; the limiters refill at once
				clear(b.rates)
			}
			dr = &deviceRate{lim: rate.NewLimiter(limit, b.RateBurst), interval: interval, site: s.Site}
			b.rates[s.ID] = dr
		}
		b.rateMu.Unlock()
	}
	if dr.lim.Allow() {
		dr.mu.Lock()
		if dr.interval != interval { // the profile changed
			dr.lim.SetLimit(limit)
			dr.interval = interval
		}
		dr.mu.Unlock()
		return true
	}
	now := time.Now()
	dr.mu.Lock()
	dr.dropped++
	dr.last = now
	var rep *RateLimitReport
	if b.OnRateLimited != nil && (dr.lastReport.IsZero() || now.Sub(dr.lastReport) >= b.RateReportEvery) {
		rep = &RateLimitReport{Device: s.ID, Site: s.Site, Dropped: dr.dropped - dr.reported, Total: dr.dropped,
			Limit: float64(limit), Interval: interval}
		dr.reported, dr.lastReport = dr.dropped, now
	}
	dr.mu.Unlock()
	b.rateDropped.WithLabelValues(s.ID).Inc()
	if rep != nil {
		go b.OnRateLimited(*rep) // never on the client's read loop
	}
	return false
}

// RateLimited lists the devices whose messages were dropped for their rate since the broker
// started, the most recent first.
func (b *Broker) RateLimited() []RateLimitStat {
	b.rateMu.RLock()
	out := make([]RateLimitStat, 0)
	for id, dr := range b.rates {
		dr.mu.Lock()
		if dr.dropped > 0 {
			out = append(out, RateLimitStat{Device: id, Site: dr.site, Dropped: dr.dropped, Last: dr.last,
				Limit: b.RateMultiple / dr.interval.Seconds()})
		}
		dr.mu.Unlock()
	}
	b.rateMu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Last.After(out[j].Last) })
	return out
}

// RateDropped returns the messages of device dropped for its rate (for tests).
func (b *Broker) RateDropped(device string) float64 {
	return counterValue(b.rateDropped.WithLabelValues(device))
}
