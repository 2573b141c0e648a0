package api

import (
	"context"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/ingest"
	"github.com/offsite-gw/offsite/internal/errs"
)

// TelemetryReader is what the readings routes read of the telemetry store (ingest.Telemetry).
type TelemetryReader interface {
	Latest(ctx context.Context, device string) ([]ingest.Reading, error)
	Series(ctx context.Context, q ingest.SeriesQuery) ([]ingest.Point, error)
}

// QuarantineReader lists quarantined messages (*ingest.Quarantine).
type QuarantineReader interface {
	List(ctx context.Context, f ingest.QuarantineFilter) ([]ingest.QuarantineEntry, error)
}

// PresenceReader tells what presence knows of a sensor (*ingest.Presence).
type PresenceReader interface {
	State(device string) (ingest.DeviceState, bool)
}

// telemetryRoutes registers readings, presence and the quarantine when their components are
// set. Every route is for callers who may read the device (scope applies).
func (s *Server) telemetryRoutes(r fiber.Router) {
	read := s.Require(auth.PermDevicesRead)
	if s.Telemetry != nil {
		r.Get("/devices/:id/telemetry", read, s.readingsSeries) // docs/contracts.md §3 name of readings/series
		r.Get("/devices/:id/readings/latest", read, s.readingsLatest)
		r.Get("/devices/:id/readings/series", read, s.readingsSeries)
	}
	if s.Presence != nil {
		r.Get("/devices/:id/presence", read, s.presenceOf)
	}
	if s.Quarantine != nil {
		r.Get("/ingest/quarantine", read, s.listQuarantine)
	}
}

// readingsLatest serves the newest reading of each metric of a device.
func (s *Server) readingsLatest(c *fiber.Ctx) error {
	d, err := s.visibleDevice(c, c.Params("id"))
	if err != nil {
		return err
	}
	rs, err := s.Telemetry.Latest(c.UserContext(), d.ID)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"device": d.ID, "readings": rs})
}

// readingsSeries serves one metric aggregated per step: ?metric=pm10&from=&to=&step=5m.
// ingest.SeriesQuery.Resolve fills the defaults and bounds the number of points.
func (s *Server) readingsSeries(c *fiber.Ctx) error {
	d, err := s.visibleDevice(c, c.Params("id"))
	if err != nil {
		return err
	}
	q := ingest.SeriesQuery{Device: d.ID, Metric: c.Query("metric")}
	if q.To, err = seriesTime(c, "to"); err != nil {
		return err
	}
	if q.From, err = seriesTime(c, "from"); err != nil {
		return err
	}
	if v := c.Query("step"); v != "" {
		if q.Step, err = time.ParseDuration(v); err != nil || q.Step <= 0 {
			return errs.E(errs.KindInvalid, "bad_step", "step must be a duration of at least 1s, e.g. 30s, 5m, 1h")
		}
	}
	if err := q.Resolve(time.Now(), s.MaxSeriesPoints); err != nil {
		return err
	}
	ps, err := s.Telemetry.Series(c.UserContext(), q)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"device": d.ID, "metric": q.Metric, "from": q.From, "to": q.To, "step": q.Step.String(), "points": ps})
}

// seriesTime reads a time query parameter of the readings routes ("" is the zero time).
func seriesTime(c *fiber.Ctx, name string) (time.Time, error) {
	t, err := ParseTime(c.Query(name))
	if err != nil {
		return time.Time{}, errs.Wrap(errs.KindInvalid, "bad_time", err, "%s: use RFC 3339 or unix milliseconds", name)
	}
	return t, nil
}

// presenceOf serves what presence knows of a sensor: online, offline or unknown, since, last seen.
func (s *Server) presenceOf(c *fiber.Ctx) error {
	d, err := s.visibleDevice(c, c.Params("id"))
	if err != nil {
		return err
	}
	st, ok := s.Presence.State(d.ID)
	if !ok {
		return errs.E(errs.KindNotFound, "not_watched", "no sensor %s is watched", d.ID)
	}
	return c.JSON(st)
}

// listQuarantine serves quarantined messages, newest first. With ?device= the caller must see
// that device; the whole quarantine is only for roles that see every site.
func (s *Server) listQuarantine(c *fiber.Ctx) error {
	f := ingest.QuarantineFilter{Device: c.Query("device"), Reason: c.Query("reason"), Limit: c.QueryInt("limit", 100)}
	if f.Device == "" {
		if !scopeOf(c).Unlimited() {
			return errs.E(errs.KindForbidden, "forbidden", "name a device: your role sees only some sites")
		}
	} else if _, err := s.visibleDevice(c, f.Device); err != nil {
		return err
	}
	if v := c.Query("since"); v != "" {
		t, err := ParseTime(v)
		if err != nil {
			return errs.Wrap(errs.KindInvalid, "bad_time", err, "since: use RFC 3339 or unix milliseconds")
		}
		f.Since = t
	}
	if v := c.Query("before"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return errs.E(errs.KindInvalid, "bad_before", "before must be an entry id")
		}
		f.BeforeID = id
	}
	es, err := s.Quarantine.List(c.UserContext(), f)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"entries": es})
}
