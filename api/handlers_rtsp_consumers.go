package api

import (
	"context"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/ingest"
	"github.com/offsite-gw/offsite/streams"
)

// RTSPConsumerService manages the RTSP re-serve's consumers (*streams.ConsumerStore).
type RTSPConsumerService interface {
	Create(ctx context.Context, name, note, by string) (streams.Consumer, string, error)
	List(ctx context.Context) ([]streams.Consumer, error)
	Revoke(ctx context.Context, name string) (streams.Consumer, error)
}

// RateLimitReader lists devices whose MQTT messages were dropped for their rate
// (*ingest.Broker).
type RateLimitReader interface {
	RateLimited() []ingest.RateLimitStat
}

// hardeningRoutes registers the RTSP consumers (admin only: each is a login to every camera)
// and the rate-limited devices (maintainers; scope applies) when their components are set.
func (s *Server) hardeningRoutes(r fiber.Router) {
	if s.RTSPConsumers != nil {
		admin := s.RequireRole(auth.RoleAdmin)
		r.Get("/rtsp-consumers", admin, s.listRTSPConsumers)
		r.Post("/rtsp-consumers", admin, s.createRTSPConsumer)
		r.Delete("/rtsp-consumers/:name", admin, s.revokeRTSPConsumer)
	}
	if s.RateLimits != nil {
		r.Get("/ingest/rate-limited", s.Require(auth.PermDevicesRead), s.listRateLimited)
	}
}

func (s *Server) listRTSPConsumers(c *fiber.Ctx) error {
	cs, err := s.RTSPConsumers.List(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"consumers": cs})
}

// createRTSPConsumer answers the consumer with its secret and a URL template; the secret is
// not kept and is shown this once.
func (s *Server) createRTSPConsumer(c *fiber.Ctx) error {
	var body struct {
		Name string `json:"name"`
		Note string `json:"note"`
	}
	if err := DecodeJSON(c, &body); err != nil {
		return err
	}
	u, _ := UserOf(c)
	cons, secret, err := s.RTSPConsumers.Create(c.UserContext(), strings.TrimSpace(body.Name), body.Note, u.Username)
	s.Record(c, "rtsp_consumer.create", body.Name, err, body.Note)
	if err != nil {
		return err
	}
	c.Location("/api/v1/rtsp-consumers/" + cons.Name)
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"consumer": cons, "username": cons.Name, "secret": secret,
		"url": "rtsp://" + cons.Name + ":" + secret + "@GATEWAY:8554/{camera-id}"})
}

func (s *Server) revokeRTSPConsumer(c *fiber.Ctx) error {
	name := c.Params("name")
	cons, err := s.RTSPConsumers.Revoke(c.UserContext(), name)
	s.Record(c, "rtsp_consumer.revoke", name, err, "")
	if err != nil {
		return err
	}
	return c.JSON(cons)
}

// listRateLimited lists the devices whose messages were dropped for their rate since the
// broker started, limited to the devices the caller may see.
func (s *Server) listRateLimited(c *fiber.Ctx) error {
	out := []ingest.RateLimitStat{}
	for _, st := range s.RateLimits.RateLimited() {
		if _, err := s.visibleDevice(c, st.Device); err == nil {
			out = append(out, st)
		}
	}
	return c.JSON(fiber.Map{"devices": out})
}
