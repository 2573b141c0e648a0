package ingest

import (
	"errors"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
)

// API serves readings, series and the quarantine over HTTP. Mount it on the authenticated
// /api/v1 router with Routes; Authorize decides per device whether the caller may see it
// (scope by department and region), so this package needs no knowledge of users.
//
//	GET /devices/:id/readings/latest               newest reading of each metric
//	GET /devices/:id/readings/series?metric=&from=&to=&step=
//	GET /devices/:id/presence                      online / offline / unknown, since, last seen
//	GET /ingest/quarantine?device=&reason=&since=&before=&limit=
type API struct {
	Telemetry  Telemetry
	Quarantine *Quarantine
	Presence   *Presence // optional
	// Authorize returns an error (an *errs.Error with KindForbidden or KindNotFound is mapped
	// by the API's error handler) when the caller may not see device; nil allows everything.
	Authorize func(c *fiber.Ctx, device string) error
	// MaxPoints bounds a series (default 5000): a smaller step over a longer range is refused.
	MaxPoints int
}

// Routes adds the routes to r; mw (e.g. the API's permission checks) run before each.
func (a *API) Routes(r fiber.Router, mw ...fiber.Handler) {
	h := func(f fiber.Handler) []fiber.Handler { return append(append([]fiber.Handler{}, mw...), f) }
	r.Get("/devices/:id/readings/latest", h(a.Latest)...)
	r.Get("/devices/:id/readings/series", h(a.Series)...)
	r.Get("/devices/:id/presence", h(a.PresenceOf)...)
	r.Get("/ingest/quarantine", h(a.QuarantineList)...)
}

func (a *API) authorize(c *fiber.Ctx, device string) error {
	if a.Authorize == nil {
		return nil
	}
	return a.Authorize(c, device)
}

func badRequest(c *fiber.Ctx, code, msg string) error {
	return c.Status(fiber.StatusBadRequest).JSON(fiber.Map{"error": fiber.Map{"code": code, "message": msg}})
}

// Latest serves the newest reading of each metric of a device.
func (a *API) Latest(c *fiber.Ctx) error {
	id := c.Params("id")
	if err := a.authorize(c, id); err != nil {
		return err
	}
	rs, err := a.Telemetry.Latest(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"device": id, "readings": rs})
}

// Series serves one metric aggregated per step: ?metric=pm10&from=RFC3339&to=RFC3339&step=5m.
// Defaults: the last 24 hours, a step giving about 300 points.
func (a *API) Series(c *fiber.Ctx) error {
	id := c.Params("id")
	if err := a.authorize(c, id); err != nil {
		return err
	}
	q := SeriesQuery{Device: id, Metric: c.Query("metric")}
	if q.Metric == "" {
		return badRequest(c, "metric_required", "query parameter metric is required")
	}
	now := time.Now()
	var err error
	if q.To, err = parseTime(c.Query("to"), now); err != nil {
		return badRequest(c, "bad_time", "to: "+err.Error())
	}
	if q.From, err = parseTime(c.Query("from"), q.To.Add(-24*time.Hour)); err != nil {
		return badRequest(c, "bad_time", "from: "+err.Error())
	}
	if !q.From.Before(q.To) {
		return badRequest(c, "bad_range", "from must be before to")
	}
	maxPoints := a.MaxPoints
	if maxPoints <= 0 {
		maxPoints = 5000
	}
	if s := c.Query("step"); s != "" {
		if q.Step, err = time.ParseDuration(s); err != nil || q.Step < time.Second {
			return badRequest(c, "bad_step", "step must be a duration of at least 1s, e.g. 30s, 5m, 1h")
		}
	} else {
		q.Step = max(time.Second, (q.To.Sub(q.From) / 300).Truncate(time.Second))
	}
	if q.To.Sub(q.From)/q.Step > time.Duration(maxPoints) {
		return badRequest(c, "too_many_points", "the range holds more than "+strconv.Itoa(maxPoints)+" steps: use a larger step")
	}
	ps, err := a.Telemetry.Series(c.UserContext(), q)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"device": id, "metric": q.Metric, "from": q.From, "to": q.To, "step": q.Step.String(), "points": ps})
}

// PresenceOf serves what presence knows of a device.
func (a *API) PresenceOf(c *fiber.Ctx) error {
	id := c.Params("id")
	if err := a.authorize(c, id); err != nil {
		return err
	}
	if a.Presence == nil {
		return c.Status(fiber.StatusNotFound).JSON(fiber.Map{"error": fiber.Map{"code": "presence_disabled", "message": "presence is not enabled"}})
	}
	st, ok := a.Presence.State(id)
	if !ok {
		return c.Status(fiber.StatusNotFound).JSON(fiber.Map{"error": fiber.Map{"code": "not_watched", "message": "no sensor " + id + " is watched"}})
	}
	return c.JSON(st)
}

// QuarantineList serves quarantined messages, newest first. With a device filter the caller
// must be allowed to see that device; without one, Authorize is asked with "" (the lead
// decides: e.g. maintainers and admins only).
func (a *API) QuarantineList(c *fiber.Ctx) error {
	f := QuarantineFilter{Device: c.Query("device"), Reason: c.Query("reason"), Limit: c.QueryInt("limit", 100)}
	if err := a.authorize(c, f.Device); err != nil {
		return err
	}
	if s := c.Query("since"); s != "" {
		t, err := parseTime(s, time.Time{})
		if err != nil {
			return badRequest(c, "bad_time", "since: "+err.Error())
		}
		f.Since = t
	}
	if s := c.Query("before"); s != "" {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return badRequest(c, "bad_before", "before must be an entry id")
		}
		f.BeforeID = id
	}
	es, err := a.Quarantine.List(c.UserContext(), f)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"entries": es})
}

func parseTime(s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	return time.Time{}, errors.New("use RFC 3339 or unix milliseconds")
}
