package leases

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/offsite-gw/offsite/analytics/lease"
	"github.com/offsite-gw/offsite/internal/errs"
)

// Routes mounts the worker API under r (the /api/v1 router, which already requires a token).
// worker must allow the service role (and may allow admin for tests by hand).
//
//	POST   /analytics/leases         {"worker_id","capacity"}   → 200 lease.Grant
//	POST   /analytics/leases/renew   {"worker_id","camera_ids"} → 200 {"held":[…],"expires_at"}
//	DELETE /analytics/leases/:worker[?camera=a,b]               → 204 (all of the worker's leases without camera)
//	GET    /analytics/leases                                    → 200 [lease.Lease]
func (s *Service) Routes(r fiber.Router, worker fiber.Handler) {
	r.Post("/analytics/leases", worker, s.handleAcquire)
	r.Post("/analytics/leases/renew", worker, s.handleRenew)
	r.Delete("/analytics/leases/:worker", worker, s.handleRelease)
	r.Get("/analytics/leases", worker, s.handleList)
}

// SettingsRoutes mounts the per-camera settings: read (service, admin, maintainer) and write
// (admin, maintainer).
//
//	GET /analytics/cameras/:id/settings → 200 lease.CameraSettings (defaults when none stored)
//	PUT /analytics/cameras/:id/settings   lease.CameraSettings → 200 lease.CameraSettings as stored
//
// actor names the caller for updated_by (nil: "").
func (s *Service) SettingsRoutes(r fiber.Router, read, write fiber.Handler, actor func(c *fiber.Ctx) string) {
	r.Get("/analytics/cameras/:id/settings", read, func(c *fiber.Ctx) error {
		set, err := s.Settings(c.UserContext(), c.Params("id"))
		if err != nil {
			return err
		}
		return c.JSON(set)
	})
	r.Put("/analytics/cameras/:id/settings", write, func(c *fiber.Ctx) error {
		set, err := lease.ParseSettings(c.Body())
		if err != nil {
			return err
		}
		who := ""
		if actor != nil {
			who = actor(c)
		}
		if err := s.PutSettings(c.UserContext(), c.Params("id"), set, who); err != nil {
			return err
		}
		return c.JSON(set)
	})
}

type acquireReq struct {
	WorkerID string `json:"worker_id"`
	Capacity int    `json:"capacity"`
}

type renewReq struct {
	WorkerID  string   `json:"worker_id"`
	CameraIDs []string `json:"camera_ids"`
}

// RenewAnswer is the body of POST /analytics/leases/renew.
type RenewAnswer struct {
	Held      []string `json:"held"`
	ExpiresAt string   `json:"expires_at"`
}

func decode(c *fiber.Ctx, v any) error {
	dec := json.NewDecoder(bytes.NewReader(c.Body()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errs.Wrap(errs.KindInvalid, "invalid_body", err, "body is not the expected JSON object")
	}
	return nil
}

func (s *Service) handleAcquire(c *fiber.Ctx) error {
	var req acquireReq
	if err := decode(c, &req); err != nil {
		return err
	}
	g, err := s.Acquire(c.UserContext(), req.WorkerID, req.Capacity)
	if err != nil {
		return err
	}
	return c.JSON(g)
}

func (s *Service) handleRenew(c *fiber.Ctx) error {
	var req renewReq
	if err := decode(c, &req); err != nil {
		return err
	}
	held, exp, err := s.Renew(c.UserContext(), req.WorkerID, req.CameraIDs)
	if err != nil {
		return err
	}
	if held == nil {
		held = []string{}
	}
	return c.JSON(RenewAnswer{Held: held, ExpiresAt: exp.Format("2006-01-02T15:04:05.000Z07:00")})
}

func (s *Service) handleRelease(c *fiber.Ctx) error {
	var ids []string
	if q := c.Query("camera"); q != "" {
		ids = strings.Split(q, ",")
	}
	if err := s.Release(c.UserContext(), c.Params("worker"), ids); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Service) handleList(c *fiber.Ctx) error {
	ls, err := s.Leases(c.UserContext())
	if err != nil {
		return err
	}
	if ls == nil {
		ls = []lease.Lease{}
	}
	return c.JSON(ls)
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
