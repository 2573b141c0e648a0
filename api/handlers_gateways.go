package api

import (
	"context"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/internal/errs"
)

// gatewayRoutes registers the enrolment of site gateways below this centre and their health.
func (s *Server) gatewayRoutes(r fiber.Router) {
	if s.Gateways == nil {
		return
	}
	read, manage := s.Require(auth.PermGatewaysRead), s.Require(auth.PermGatewaysManage)
	r.Get("/gateways", read, s.listGateways)
	r.Post("/gateways", manage, s.enrolGateway)
	r.Get("/gateways/:id", read, s.getGateway)
	r.Put("/gateways/:id", manage, s.updateGateway)
	r.Delete("/gateways/:id", manage, s.deleteGateway)
	r.Post("/gateways/:id/secret", manage, s.rotateGatewaySecret)
}

// centreRoutes registers what enrolled site gateways send (docs/contracts.md §7), signed with
// their enrolment secret. The path's colon is literal.
func (s *Server) centreRoutes(app *fiber.App) {
	if s.Receiver == nil {
		return
	}
	app.Post(`/offsite/v1/events\:batch`, s.receiveBatch)
	app.Put("/offsite/v1/inventory", s.receiveInventory)
}

// EnrolRequest is the body of POST /api/v1/gateways. Secret is optional: without it the centre
// generates one, returned once in the answer.
type EnrolRequest struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	BaseURL  string `json:"base_url"`
	Alg      string `json:"alg"`
	Secret   string `json:"secret"`
	Disabled bool   `json:"disabled"`
}

// EnrolAnswer is a gateway with the secret it signs with, shown only in this answer.
type EnrolAnswer struct {
	devices.Gateway
	Secret string `json:"secret"`
}

func (s *Server) listGateways(c *fiber.Ctx) error {
	gws, err := s.Gateways.List(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(gws)
}

func (s *Server) getGateway(c *fiber.Ctx) error {
	g, err := s.Gateways.Get(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(g)
}

func (s *Server) enrolGateway(c *fiber.Ctx) error {
	var req EnrolRequest
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	g := devices.Gateway{ID: req.ID, Name: req.Name, BaseURL: req.BaseURL, Alg: req.Alg, Disabled: req.Disabled}
	secret, err := s.Gateways.Enrol(c.UserContext(), &g, req.Secret)
	s.Record(c, "gateway.enrol", req.ID, err, req.Name)
	if err != nil {
		return err
	}
	c.Location("/api/v1/gateways/" + g.ID)
	return c.Status(fiber.StatusCreated).JSON(EnrolAnswer{Gateway: g, Secret: secret})
}

func (s *Server) updateGateway(c *fiber.Ctx) error {
	id := c.Params("id")
	var req EnrolRequest
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	if req.ID != "" && req.ID != id {
		return errs.E(errs.KindInvalid, "id_mismatch", "the body's id %q differs from the path's %q; ids cannot be changed", req.ID, id)
	}
	if req.Secret != "" {
		return errs.E(errs.KindInvalid, "secret_not_here", "change the secret with POST /api/v1/gateways/%s/secret", id)
	}
	g := devices.Gateway{ID: id, Name: req.Name, BaseURL: req.BaseURL, Alg: req.Alg, Disabled: req.Disabled}
	err := s.Gateways.Update(c.UserContext(), &g)
	s.Record(c, "gateway.update", id, err, req.Name)
	if err != nil {
		return err
	}
	return c.JSON(g)
}

func (s *Server) deleteGateway(c *fiber.Ctx) error {
	id := c.Params("id")
	err := s.Gateways.Delete(c.UserContext(), id)
	s.Record(c, "gateway.remove", id, err, "")
	if err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) rotateGatewaySecret(c *fiber.Ctx) error {
	id := c.Params("id")
	secret, err := s.Gateways.RotateSecret(c.UserContext(), id, "")
	s.Record(c, "gateway.rotate_secret", id, err, "")
	if err != nil {
		return err
	}
	g, err := s.Gateways.Get(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(EnrolAnswer{Gateway: g, Secret: secret})
}

func (s *Server) receiveBatch(c *fiber.Ctx) error {
	resp, err := s.Receiver.Batch(c.UserContext(), requestHeader(c), c.Body(), c.IP())
	if err != nil {
		return err
	}
	return c.JSON(resp)
}

func (s *Server) receiveInventory(c *fiber.Ctx) error {
	ans, err := s.Receiver.Inventory(c.UserContext(), requestHeader(c), c.Body(), c.IP())
	if err != nil {
		return err
	}
	return c.JSON(ans)
}

// requestHeader copies the signature headers of a request into an http.Header, the form
// events/uplink verifies.
func requestHeader(c *fiber.Ctx) http.Header {
	h := http.Header{}
	for _, k := range []string{uplink.HeaderGateway, uplink.HeaderTimestamp, uplink.HeaderNonce, uplink.HeaderSignature,
		uplink.HeaderBacklog, uplink.HeaderVersion} {
		if v := c.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	return h
}

// withChildren is the registry of this node plus, at a centre, the inventories of its site
// gateways: an event posted at the centre about a child's device is enriched from it.
type withChildren struct {
	local    devices.Store
	gateways *devices.GatewayStore
}

func (w withChildren) GetDevice(ctx context.Context, id string) (devices.Device, error) {
	d, err := w.local.GetDevice(ctx, id)
	if !errs.Is(err, errs.KindNotFound) {
		return d, err
	}
	cd, _, cerr := w.gateways.ChildDevice(ctx, "", id)
	if cerr != nil {
		return d, err
	}
	return devices.Device{ID: cd.ID, SiteID: cd.SiteID, Kind: cd.Kind, Name: cd.Name, Profile: cd.Profile}, nil
}

func (w withChildren) GetSite(ctx context.Context, id string) (devices.Site, error) {
	s, err := w.local.GetSite(ctx, id)
	if !errs.Is(err, errs.KindNotFound) {
		return s, err
	}
	children, cerr := w.gateways.ChildSites(ctx, "", devices.SiteFilter{})
	if cerr != nil {
		return s, err
	}
	for _, cs := range children {
		if cs.ID == id {
			return cs.Site, nil
		}
	}
	return s, err
}
