package api

import (
	"github.com/gofiber/fiber/v2"
)

// getPreference is GET /api/v1/auth/me/preferences/{name}: the caller's own document, or
// {} if none is kept (the wall's layout is "wall").
func (s *Server) getPreference(c *fiber.Ctx) error {
	u, _ := UserOf(c)
	body, err := s.Auth.Preference(c.UserContext(), u.ID, c.Params("name"))
	if err != nil {
		return err
	}
	if body == nil {
		body = []byte("{}")
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(body)
}

// putPreference is PUT /api/v1/auth/me/preferences/{name}: keep the caller's own document
// (a JSON object up to 16 KiB).
func (s *Server) putPreference(c *fiber.Ctx) error {
	u, _ := UserOf(c)
	if err := s.Auth.SetPreference(c.UserContext(), u.ID, c.Params("name"), c.Body()); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
