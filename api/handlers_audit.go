package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/errs"
)

// listAudit serves GET /api/v1/audit?actor=&action=&from=&to=&limit=, newest first. action is
// exact or a prefix ending in "." ("auth.").
func (s *Server) listAudit(c *fiber.Ctx) error {
	from, err := ParseTime(c.Query("from"))
	if err != nil {
		return err
	}
	to, err := ParseTime(c.Query("to"))
	if err != nil {
		return err
	}
	if !from.IsZero() && !to.IsZero() && to.Before(from) {
		return errs.E(errs.KindInvalid, "invalid_time", "to is before from")
	}
	limit, err := ParseLimit(c.Query("limit"), 200, 5000)
	if err != nil {
		return err
	}
	entries, err := s.Audit.List(c.UserContext(), audit.Filter{
		Actor: c.Query("actor"), Action: c.Query("action"), From: from, To: to, Limit: limit,
	})
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"entries": entries})
}
