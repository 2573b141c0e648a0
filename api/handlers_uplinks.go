package api

import (
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/internal/errs"
)

// uplinkRoutes registers the delivery status of uplinks and webhooks and their dead letters.
func (s *Server) uplinkRoutes(r fiber.Router) {
	if s.Uplinks == nil {
		return
	}
	manage := s.Require(auth.PermUplinksManage)
	r.Get("/uplinks", s.Require(auth.PermUplinksRead), s.listUplinks)
	r.Get("/uplinks/:name/dead-letters", manage, s.listDeadLetters)
	r.Post("/uplinks/:name/dead-letters/resend", manage, s.resendDeadLetters)
	r.Post("/uplinks/:name/dead-letters/:event/resend", manage, s.resendDeadLetter) // one row, as the dashboard asks
}

func (s *Server) listUplinks(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"uplinks": s.Uplinks.Statuses()})
}

func (s *Server) listDeadLetters(c *fiber.Ctx) error {
	u, err := s.Uplinks.Get(c.Params("name"))
	if err != nil {
		return err
	}
	all := false
	if q := c.Query("all"); q != "" {
		if all, err = strconv.ParseBool(q); err != nil {
			return errs.E(errs.KindInvalid, "invalid_all", "all must be true or false")
		}
	}
	limit, err := ParseLimit(c.Query("limit"), 500, 5000)
	if err != nil {
		return err
	}
	dls, err := u.DeadLetters(c.UserContext(), all, limit)
	if err != nil {
		return err
	}
	if dls == nil {
		dls = []uplink.DeadLetter{}
	}
	return c.JSON(fiber.Map{"dead_letters": dls})
}

// ResendRequest is the body of POST /api/v1/uplinks/{name}/dead-letters/resend; no ids means
// every unresolved dead letter of the uplink.
type ResendRequest struct {
	IDs []string `json:"ids"`
}

func (s *Server) resendDeadLetters(c *fiber.Ctx) error {
	var req ResendRequest
	if len(strings.TrimSpace(string(c.Body()))) > 0 {
		if err := DecodeJSON(c, &req); err != nil {
			return err
		}
	}
	return s.resend(c, req.IDs)
}

func (s *Server) resendDeadLetter(c *fiber.Ctx) error {
	return s.resend(c, []string{c.Params("event")})
}

func (s *Server) resend(c *fiber.Ctx, ids []string) error {
	name := c.Params("name")
	res, err := s.doResend(c, name, ids)
	detail := "all unresolved"
	if len(ids) > 0 {
		detail = strconv.Itoa(len(ids)) + " events"
	}
	if err == nil {
		detail += " delivered=" + strconv.Itoa(len(res.Delivered)) + " rejected=" + strconv.Itoa(len(res.Rejected))
	}
	s.Record(c, "uplink.resend", name, err, detail)
	if err != nil {
		return err
	}
	return c.JSON(res)
}

func (s *Server) doResend(c *fiber.Ctx, name string, ids []string) (uplink.ResendResult, error) {
	if len(ids) > 5000 {
		return uplink.ResendResult{}, errs.E(errs.KindInvalid, "too_many_ids", "at most 5000 ids per re-send")
	}
	for i, id := range ids {
		if len(id) != 26 {
			return uplink.ResendResult{}, errs.E(errs.KindInvalid, "invalid_id", "ids[%d] is not an event id", i)
		}
		ids[i] = strings.ToUpper(id)
	}
	u, err := s.Uplinks.Get(name)
	if err != nil {
		return uplink.ResendResult{}, err
	}
	res, err := u.Resend(c.UserContext(), ids)
	if res.Delivered == nil {
		res.Delivered = []string{}
	}
	if res.Rejected == nil {
		res.Rejected = []uplink.Rejection{}
	}
	return res, err
}
