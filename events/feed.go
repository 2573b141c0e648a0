package events

import (
	"context"
	"log/slog"
	"time"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events/event"
)

// Feed hands the log to live consumers (SSE clients, MQTT publishing). Every subscriber reads
// the log by seq — the ring of recent events in memory, the store for older ones — so replay
// and live streaming are one loop: there is no hand-over where an event could fall between
// them or arrive twice. A slow subscriber only delays itself.
type Feed struct {
	Log *Log
	// Buffer is each subscription's channel capacity (default 256).
	Buffer int
	// BatchSize is how many events one read takes (default 500).
	BatchSize int
	Logger    *slog.Logger
}

// Subscribe streams every event with seq > afterSeq that passes filter (nil: all), first the
// backlog and then live, until ctx ends; the channel is closed then. Use afterSeq = head
// (Log.Head) for "from now", or Log.SeqOf(Last-Event-ID) to resume.
func (f *Feed) Subscribe(ctx context.Context, afterSeq int64, filter func(*event.Event) bool) <-chan event.Event {
	buf := f.Buffer
	if buf <= 0 {
		buf = 256
	}
	batch := f.BatchSize
	if batch <= 0 {
		batch = 500
	}
	ch := make(chan event.Event, buf)
	go func() {
		defer close(ch)
		after := afterSeq
		for {
			evs, through, err := f.Log.Scan(ctx, after, Filter{}, batch)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				f.logger().Warn("feed: read log", "after", after, "err", err)
				select {
				case <-time.After(time.Second):
					continue
				case <-ctx.Done():
					return
				}
			}
			for _, e := range evs {
				if filter != nil && !filter(&e) {
					continue
				}
				select {
				case ch <- e:
				case <-ctx.Done():
					return
				}
			}
			after = through
			if len(evs) == batch {
				continue
			}
			if err := f.Log.WaitAfter(ctx, after); err != nil {
				return
			}
		}
	}()
	return ch
}

func (f *Feed) logger() *slog.Logger {
	if f.Logger != nil {
		return f.Logger
	}
	return slog.Default()
}

// ScopeAllows reports whether a user limited to sc may see e: its department and its site's
// region must be within the scope. Events without a department are hidden from a scoped user.
func ScopeAllows(sc devices.Scope, e *event.Event) bool {
	if sc.Unlimited() {
		return true
	}
	return sc.AllowsSite(devices.Site{Department: e.Department, RegionCode: e.RegionCode()})
}

// ScopeFilter returns a Subscribe filter for a scoped user, optionally narrowed by f.
func ScopeFilter(sc devices.Scope, f Filter) func(*event.Event) bool {
	return func(e *event.Event) bool { return ScopeAllows(sc, e) && f.Match(e) }
}

// Directory looks up sites and devices for enrichment; devices.Store satisfies it.
type Directory interface {
	GetSite(ctx context.Context, id string) (devices.Site, error)
	GetDevice(ctx context.Context, id string) (devices.Device, error)
}

// Enrich fills site, device, department and supervision item from the registry, so a
// producer need only name the device. Fields already set are kept.
func Enrich(ctx context.Context, dir Directory, e *event.Event) error {
	if e.Device != nil && e.Device.ID != "" {
		d, err := dir.GetDevice(ctx, e.Device.ID)
		if err != nil {
			return err
		}
		if e.Device.Kind == "" {
			e.Device.Kind = string(d.Kind)
		}
		if e.Device.Profile == "" {
			e.Device.Profile = d.Profile
		}
		if e.Device.Name == "" {
			e.Device.Name = d.Name
		}
		if e.Site == nil {
			e.Site = &event.Site{ID: d.SiteID}
		}
	}
	if e.Site != nil && e.Site.ID != "" {
		s, err := dir.GetSite(ctx, e.Site.ID)
		if err != nil {
			return err
		}
		if e.Site.Name == "" {
			e.Site.Name = s.Name
		}
		if e.Site.USCC == "" {
			e.Site.USCC = s.USCC
		}
		if e.Site.RegionCode == "" {
			e.Site.RegionCode = s.RegionCode
		}
		if e.Department == "" {
			e.Department = s.Department
		}
		if e.SupervisionItem == "" && len(s.SupervisionItems) == 1 {
			e.SupervisionItem = s.SupervisionItems[0]
		}
	}
	return nil
}
