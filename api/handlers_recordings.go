package api

import (
	"context"
	"strconv"
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
func (s *Server) startRecording(c *fiber.Ctx) error {
	id := c.Params("id")
	rec, err := s.doStartRecording(c, id)
	detail := ""
	if err == nil {
		detail = "event " + rec.EventID + " until " + rec.Until.UTC().Format(time.RFC3339)
	}
	s.Record(c, "camera.recording", id, err, detail)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"id": rec.ID, "event_id": rec.EventID, "until": rec.Until.UTC().Format(time.RFC3339)})
}

func (s *Server) doStartRecording(c *fiber.Ctx, id string) (Recording, error) {
	if err := s.recordableHere(c, id); err != nil {
		return Recording{}, err
	}
	var body recordingBody
	if err := c.BodyParser(&body); err != nil {
		return Recording{}, errs.Wrap(errs.KindInvalid, "invalid_body", err, "the body must be JSON {\"minutes\", \"reason\", \"alert_id\"}")
	}
	if max := s.Recorder.MaxRecordingMinutes(); body.Minutes < 1 || body.Minutes > max {
		return Recording{}, errs.E(errs.KindInvalid, "minutes_out_of_range", "minutes must be between 1 and %s", strconv.Itoa(max))
	}
	body.Reason = strings.TrimSpace(body.Reason)
	if body.Reason == "" {
		return Recording{}, errs.E(errs.KindInvalid, "reason_required", "give the reason for the recording")
	}
	if len(body.Reason) > 1000 {
		return Recording{}, errs.E(errs.KindInvalid, "reason_too_long", "the reason must be at most 1000 bytes")
	}
	u, _ := UserOf(c)
	req := RecordingRequest{Camera: id, Minutes: body.Minutes, Reason: body.Reason, User: u.Username}
	if body.AlertID != "" {
		if s.Alerts == nil {
			return Recording{}, errs.E(errs.KindNotFound, "alert_not_found", "alert %q does not exist", body.AlertID)
		}
		al, err := s.Alerts.Get(c.UserContext(), scopeOf(c), body.AlertID)
		if err != nil {
			if errs.Is(err, errs.KindNotFound) || errs.Is(err, errs.KindForbidden) {
				return Recording{}, errs.E(errs.KindNotFound, "alert_not_found", "alert %q does not exist", body.AlertID)
			}
			return Recording{}, err
		}
		req.AlertEventID = al.EventID
	}
	return s.Recorder.StartRecording(c.UserContext(), req)
}

// listRecordings is GET /api/v1/cameras/{id}/recordings: the camera's manual recordings since
// the gateway started.
func (s *Server) listRecordings(c *fiber.Ctx) error {
	id := c.Params("id")
	if err := s.recordableHere(c, id); err != nil {
		return err
	}
	items := s.Recorder.Recordings(id)
	if items == nil {
		items = []Recording{}
	}
	// max_minutes tells the 取证录像 dialog the longest recording this gateway takes.
	return c.JSON(fiber.Map{"items": items, "max_minutes": s.Recorder.MaxRecordingMinutes()})
}

// recordableHere checks that the caller may watch camera id and that this node records it: a
// camera of a site gateway below this centre is recorded by that gateway, where its pre-roll
// is, so the answer is 409 record_at_site naming the gateway and its address.
func (s *Server) recordableHere(c *fiber.Ctx, id string) error {
	if _, err := s.visibleCamera(c, id); err != nil {
		return err
	}
	cv, ok := s.childCameraView(c, id)
	if !ok {
		return nil
	}
	where := cv.Gateway
	if s.Gateways != nil {
		if g, err := s.Gateways.Get(c.UserContext(), cv.Gateway); err == nil && g.BaseURL != "" {
			where += " (" + g.BaseURL + ")"
		}
	}
	return errs.E(errs.KindConflict, "record_at_site", "camera %s is on site gateway %s, which keeps its pre-roll: start the recording at that gateway", id, where)
}
