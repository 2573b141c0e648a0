package api

import (
	"context"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/internal/errs"
)

// Recording is one manual recording (取证录像) of a camera, docs/contracts.md §9.
type Recording struct {
	ID      string    `json:"id"`
	EventID string    `json:"event_id"` // the event the clip is evidence for
	State   string    `json:"state"`    // recording | done | failed
	Started time.Time `json:"started"`
	Until   time.Time `json:"until"`
	SHA256  string    `json:"sha256,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	By      string    `json:"by,omitempty"`
}

// RecordingRequest starts a manual recording. AlertEventID is the source event of the alert
// it is attached to, or "" for a new evidence.manual event.
type RecordingRequest struct {
	Camera       string
	Minutes      int
	Reason       string
	AlertEventID string
	User         string
}

// CameraRecorder records cameras on request (the gateway's clips).
type CameraRecorder interface {
	// MaxRecordingMinutes bounds RecordingRequest.Minutes.
	MaxRecordingMinutes() int
	StartRecording(ctx context.Context, req RecordingRequest) (Recording, error)
	Recordings(camera string) []Recording
}

func (s *Server) recordingRoutes(r fiber.Router) {
	if s.Recorder == nil {
		return
	}
	r.Post("/cameras/:id/recordings", s.RequireRole(auth.RoleAdmin, auth.RoleOfficer), s.startRecording)
	r.Get("/cameras/:id/recordings", s.listRecordings)
}

type recordingBody struct {
	Minutes int    `json:"minutes"`
	Reason  string `json:"reason"`
	AlertID string `json:"alert_id"`
}

// startRecording is POST /api/v1/cameras/{id}/recordings: record the next minutes of a camera
// the caller may watch, as evidence for an alert in scope or for a new evidence.manual event.
// A camera of a site gateway below this centre is recorded at that gateway (its pre-roll is
// there): the request is forwarded to it (RecordingForward) and audited here and there.
func (s *Server) startRecording(c *fiber.Ctx) error {
	id := c.Params("id")
	rec, err := s.doStartRecording(c, id)
	detail := ""
	if err == nil {
		detail = "event " + rec.EventID + " until " + rec.Until.UTC().Format(time.RFC3339)
		if rec.Gateway != s.GatewayID {
			detail = "forwarded to site gateway " + rec.Gateway + "; " + detail
		}
	} else if cv, ok := s.childCameraView(c, id); ok {
		detail = "site gateway " + cv.Gateway // say where it failed
	}
	s.Record(c, "camera.recording", id, err, detail)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"id": rec.ID, "event_id": rec.EventID, "started": rec.Started.UTC().Format(time.RFC3339),
		"until": rec.Until.UTC().Format(time.RFC3339), "max_minutes": rec.MaxMinutes, "gateway": rec.Gateway})
}

func (s *Server) doStartRecording(c *fiber.Ctx, id string) (ForwardedRecording, error) {
	site, err := s.recordingSite(c, id)
	if err != nil {
		return ForwardedRecording{}, err
	}
	if site != "" {
		return s.forwardRecording(c, id, site)
	}
	rec, err := s.startLocalRecording(c, id)
	return ForwardedRecording{Recording: rec, MaxMinutes: s.Recorder.MaxRecordingMinutes(), Gateway: s.GatewayID}, err
}

// forwardRecording asks site gateway site to record its camera id for the caller.
func (s *Server) forwardRecording(c *fiber.Ctx, id, site string) (ForwardedRecording, error) {
	var body recordingBody
	if err := c.BodyParser(&body); err != nil {
		return ForwardedRecording{}, errs.Wrap(errs.KindInvalid, "invalid_body", err, "the body must be JSON {\"minutes\", \"reason\", \"alert_id\"}")
	}
	if strings.TrimSpace(body.Reason) == "" { // the site says so too; no need to ask it
		return ForwardedRecording{}, errs.E(errs.KindInvalid, "reason_required", "give the reason for the recording")
	}
	u, _ := UserOf(c)
	req := PeerRecordingRequest{Minutes: body.Minutes, Reason: body.Reason, User: u.Username, Name: u.DisplayName, Centre: s.GatewayID}
	if body.AlertID != "" {
		ev, err := s.alertEventOf(c, body.AlertID)
		if err != nil {
			return ForwardedRecording{}, err
		}
		req.AlertEventID = ev
	}
	return s.RecordingForward.StartAt(c.UserContext(), site, id, req)
}

// alertEventOf is the source event of alert id, which the caller must see.
func (s *Server) alertEventOf(c *fiber.Ctx, id string) (string, error) {
	if s.Alerts == nil {
		return "", errs.E(errs.KindNotFound, "alert_not_found", "alert %q does not exist", id)
	}
	al, err := s.Alerts.Get(c.UserContext(), scopeOf(c), id)
	if err != nil {
		if errs.Is(err, errs.KindNotFound) || errs.Is(err, errs.KindForbidden) {
			return "", errs.E(errs.KindNotFound, "alert_not_found", "alert %q does not exist", id)
		}
		return "", err
	}
	return al.EventID, nil
}

func (s *Server) startLocalRecording(c *fiber.Ctx, id string) (Recording, error) {
	var body recordingBody
	if err := c.BodyParser(&body); err != nil {
		return Recording{}, errs.Wrap(errs.KindInvalid, "invalid_body", err, "the body must be JSON {\"minutes\", \"reason\", \"alert_id\"}")
	}
	reason, err := checkRecording(body.Minutes, body.Reason, s.Recorder.MaxRecordingMinutes())
	if err != nil {
		return Recording{}, err
	}
	u, _ := UserOf(c)
	req := RecordingRequest{Camera: id, Minutes: body.Minutes, Reason: reason, User: u.Username}
	if body.AlertID != "" {
		ev, err := s.alertEventOf(c, body.AlertID)
		if err != nil {
			return Recording{}, err
		}
		req.AlertEventID = ev
	}
	return s.Recorder.StartRecording(c.UserContext(), req)
}

// listRecordings is GET /api/v1/cameras/{id}/recordings: the camera's manual recordings since
// the gateway that records it started (for a site gateway's camera, asked of that gateway).
func (s *Server) listRecordings(c *fiber.Ctx) error {
	id := c.Params("id")
	site, err := s.recordingSite(c, id)
	if err != nil {
		return err
	}
	if site != "" {
		l, err := s.RecordingForward.RecordingsAt(c.UserContext(), site, id)
		if err != nil {
			return err
		}
		if l.Items == nil {
			l.Items = []Recording{}
		}
		return c.JSON(l)
	}
	items := s.Recorder.Recordings(id)
	if items == nil {
		items = []Recording{}
	}
	// max_minutes tells the 取证录像 dialog the longest recording this gateway takes.
	return c.JSON(ForwardedRecordings{Items: items, MaxMinutes: s.Recorder.MaxRecordingMinutes(), Gateway: s.GatewayID})
}

// recordingSite checks that the caller may watch camera id and says which node records it:
// "" for this one, else the site gateway below this centre that holds its pre-roll. A site
// camera that cannot be forwarded (no forwarder) is 409 record_at_site naming the gateway
// and its address; the forwarder says the same when the gateway has no address.
func (s *Server) recordingSite(c *fiber.Ctx, id string) (string, error) {
	if _, err := s.visibleCamera(c, id); err != nil {
		return "", err
	}
	cv, ok := s.childCameraView(c, id)
	if !ok {
		return "", nil
	}
	if s.RecordingForward != nil {
		return cv.Gateway, nil
	}
	where := cv.Gateway
	if s.Gateways != nil {
		if g, err := s.Gateways.Get(c.UserContext(), cv.Gateway); err == nil && g.BaseURL != "" {
			where += " (" + g.BaseURL + ")"
		}
	}
	return "", errs.E(errs.KindConflict, "record_at_site", "camera %s is on site gateway %s, which keeps its pre-roll: start the recording at that gateway", id, where)
}
