package api

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/offsite-gw/offsite/analytics/lease"
	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/internal/errs"
)

// LeaseService shares cameras among video analytics workers and keeps each camera's analytics
// settings (*leases.Service).
type LeaseService interface {
	Acquire(ctx context.Context, workerID string, capacity int) (lease.Grant, error)
	Renew(ctx context.Context, workerID string, cameraIDs []string) ([]string, time.Time, error)
	Release(ctx context.Context, workerID string, cameraIDs []string) error
	Leases(ctx context.Context) ([]lease.Lease, error)
	Settings(ctx context.Context, cameraID string) (lease.CameraSettings, error)
	PutSettings(ctx context.Context, cameraID string, set lease.CameraSettings, actor string) error
}

// analyticsRoutes registers the workers' leases (service; admin for trying by hand) and the
// per-camera analytics settings (read: service, admin, maintainer; write: admin, maintainer).
//
//	POST   /analytics/leases         {"worker_id","capacity"}   → 200 lease.Grant
//	POST   /analytics/leases/renew   {"worker_id","camera_ids"} → 200 lease.Renewal
//	DELETE /analytics/leases/:worker[?camera=a,b]               → 204 (all the worker's leases without camera)
//	GET    /analytics/leases                                    → 200 [lease.Lease]
//	GET    /analytics/cameras/:id/settings                      → 200 lease.CameraSettings (defaults when none stored)
//	PUT    /analytics/cameras/:id/settings  lease.CameraSettings → 200 as stored
func (s *Server) analyticsRoutes(r fiber.Router) {
	if s.Leases == nil {
		return
	}
	worker := s.RequireRole(auth.RoleService, auth.RoleAdmin)
	r.Post("/analytics/leases", worker, s.acquireLeases)
	r.Post("/analytics/leases/renew", worker, s.renewLeases)
	r.Delete("/analytics/leases/:worker", worker, s.releaseLeases)
	r.Get("/analytics/leases", worker, s.listLeases)
	r.Get("/analytics/cameras/:id/settings", s.RequireRole(auth.RoleService, auth.RoleAdmin, auth.RoleMaintainer), s.getAnalyticsSettings)
	r.Put("/analytics/cameras/:id/settings", s.RequireRole(auth.RoleAdmin, auth.RoleMaintainer), s.putAnalyticsSettings)
}

// decodeLeaseBody reads a worker's request strictly. Workers' bodies are checked as they always
// were: no Content-Type requirement, 400 invalid_body for anything but the expected object.
func decodeLeaseBody(c *fiber.Ctx, v any) error {
	dec := json.NewDecoder(bytes.NewReader(c.Body()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errs.Wrap(errs.KindInvalid, "invalid_body", err, "body is not the expected JSON object")
	}
	return nil
}

func (s *Server) acquireLeases(c *fiber.Ctx) error {
	var req struct {
		WorkerID string `json:"worker_id"`
		Capacity int    `json:"capacity"`
	}
	if err := decodeLeaseBody(c, &req); err != nil {
		return err
	}
	g, err := s.Leases.Acquire(c.UserContext(), req.WorkerID, req.Capacity)
	if err != nil {
		return err
	}
	return c.JSON(g)
}

func (s *Server) renewLeases(c *fiber.Ctx) error {
	var req struct {
		WorkerID  string   `json:"worker_id"`
		CameraIDs []string `json:"camera_ids"`
	}
	if err := decodeLeaseBody(c, &req); err != nil {
		return err
	}
	held, exp, err := s.Leases.Renew(c.UserContext(), req.WorkerID, req.CameraIDs)
	if err != nil {
		return err
	}
	if held == nil {
		held = []string{}
	}
	return c.JSON(lease.Renewal{Held: held, ExpiresAt: exp.Format("2006-01-02T15:04:05.000Z07:00")})
}

func (s *Server) releaseLeases(c *fiber.Ctx) error {
	var ids []string
	if q := c.Query("camera"); q != "" {
		ids = strings.Split(q, ",")
	}
	if err := s.Leases.Release(c.UserContext(), c.Params("worker"), ids); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) listLeases(c *fiber.Ctx) error {
	ls, err := s.Leases.Leases(c.UserContext())
	if err != nil {
		return err
	}
	if ls == nil {
		ls = []lease.Lease{}
	}
	return c.JSON(ls)
}

func (s *Server) getAnalyticsSettings(c *fiber.Ctx) error {
	set, err := s.Leases.Settings(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(set)
}

func (s *Server) putAnalyticsSettings(c *fiber.Ctx) error {
	set, err := lease.ParseSettings(c.Body())
	if err != nil {
		return err
	}
	u, _ := UserOf(c)
	if err := s.Leases.PutSettings(c.UserContext(), c.Params("id"), set, u.Username); err != nil {
		return err
	}
	return c.JSON(set)
}
