package api

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"

	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/internal/errs"
)

// routes registers everything this package serves. Static paths come before parameter paths
// (/devices/import before /devices/:id) because fiber matches in registration order.
func (s *Server) routes() {
	app := s.app
	app.Get("/healthz", s.healthz)
	if s.MetricsListen == "" {
		app.Get("/metrics", adaptor.HTTPHandler(s.metricsHandler()))
	} else { // served on its own listener only (Start)
		app.Get("/metrics", func(*fiber.Ctx) error {
			return errs.E(errs.KindNotFound, "not_found", "/metrics is served on its own address (http.metrics_listen), not here")
		})
	}

	// Login is the one /api/v1 route without a token; it is registered before the group's
	// authentication middleware so that middleware never sees it.
	app.Post("/api/v1/auth/login", s.login)
	// Site gateways below a centre sign their requests instead of logging in.
	s.centreRoutes(app)
	s.evidencePeerRoutes(app)
	s.recordingPeerRoutes(app)
	v1 := app.Group("/api/v1", s.authenticate)

	v1.Get("/openapi.json", s.openAPI)
	v1.Post("/auth/logout", s.logout)
	v1.Get("/auth/me", s.me)
	v1.Get("/auth/me/preferences/:name", s.getPreference)
	v1.Put("/auth/me/preferences/:name", s.putPreference)

	users := s.Require(auth.PermUsersManage)
	v1.Get("/users", users, s.listUsers)
	v1.Post("/users", users, s.createUser)
	v1.Get("/users/:id", users, s.getUser)
	v1.Put("/users/:id", users, s.updateUser)
	v1.Delete("/users/:id", users, s.deleteUser)
	v1.Put("/users/:id/password", s.setPassword) // admin, or the user with the old password
	v1.Post("/users/:id/unlock", users, s.unlockUser)

	sitesR, sitesW := s.Require(auth.PermSitesRead), s.Require(auth.PermSitesWrite)
	v1.Get("/sites", sitesR, s.listSites)
	v1.Post("/sites", sitesW, s.createSite)
	v1.Get("/sites/:id", sitesR, s.getSite)
	v1.Put("/sites/:id", sitesW, s.updateSite)
	v1.Delete("/sites/:id", sitesW, s.deleteSite)

	devR, devW := s.Require(auth.PermDevicesRead), s.Require(auth.PermDevicesWrite)
	v1.Get("/devices", devR, s.listDevices)
	v1.Post("/devices", devW, s.createDevice)
	v1.Post("/devices/import", devW, s.importDevices)
	v1.Get("/devices/export", s.Require(auth.PermDevicesExport), s.exportDevices)
	v1.Get("/devices/:id", devR, s.getDevice)
	v1.Put("/devices/:id", devW, s.updateDevice)
	v1.Delete("/devices/:id", devW, s.deleteDevice)
	v1.Get("/devices/:id/maintenance", devR, s.listMaintenance)
	v1.Post("/devices/:id/maintenance", devW, s.addMaintenance)

	profR := s.Require(auth.PermProfilesRead)
	v1.Get("/profiles", profR, s.listProfiles)
	v1.Get("/profiles/:id", profR, s.getProfile)

	v1.Get("/audit", s.Require(auth.PermAuditRead), s.listAudit)

	// Optional components: registered only when their Server field is set.
	s.eventRoutes(v1)
	s.uplinkRoutes(v1)
	s.telemetryRoutes(v1)
	s.cameraRoutes(v1)
	s.recordingRoutes(v1)
	s.analyticsRoutes(v1)
	s.gatewayRoutes(v1)
	s.hardeningRoutes(v1)
}

// healthz answers 200 while the process serves and the database answers a ping.
func (s *Server) healthz(c *fiber.Ctx) error {
	if s.DB != nil {
		ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
		defer cancel()
		if err := s.DB.PingContext(ctx); err != nil {
			Logger(c).Warn("health check: database ping failed", "err", err)
			return errs.Wrap(errs.KindUnavailable, "database_unavailable", err, "the database does not answer")
		}
	}
	return c.JSON(fiber.Map{"status": "ok", "version": s.Version})
}
