package api

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/errs"
)

// A camera of a site gateway below a centre is recorded at that gateway, which holds its
// pre-roll (docs/contracts.md §9). An officer at the centre starts the recording from the
// centre's wall all the same: the centre forwards the request to the site over
// POST /offsite/v1/cameras/{id}/recordings, signed with the gateway's enrolment secret the way
// the evidence fetch is (the uplink's signature in reverse), and the site starts it through
// the same checks as its own API.

// PeerRecordingPath is the path of the signed recordings of camera id at a site gateway.
func PeerRecordingPath(camera string) string {
	return "/offsite/v1/cameras/" + camera + "/recordings"
}

// PeerRecordingRequest is the body of a forwarded recording, signed with its request line
// (uplink.RequestSigned).
type PeerRecordingRequest struct {
	Minutes int    `json:"minutes"`
	Reason  string `json:"reason"`
	// AlertEventID is the source event of the centre's alert the recording is attached to (an
	// event of this site, sent up to the centre); "" for a new evidence.manual event.
	AlertEventID string `json:"alert_event_id,omitempty"`
	// User is the officer's username at the centre, Name their display name.
	User string `json:"user"`
	Name string `json:"name,omitempty"`
	// Centre is the id of the centre that forwards the request.
	Centre string `json:"centre"`
}

// ParsePeerRecordingRequest reads a forwarded recording's body strictly: a JSON object with
// the fields of PeerRecordingRequest and nothing else, a user and a centre named.
func ParsePeerRecordingRequest(body []byte) (PeerRecordingRequest, error) {
	var r PeerRecordingRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, errs.Wrap(errs.KindInvalid, "invalid_body", err, "the body must be JSON {\"minutes\", \"reason\", \"alert_event_id\", \"user\", \"name\", \"centre\"}")
	}
	if dec.More() {
		return r, errs.E(errs.KindInvalid, "invalid_body", "unexpected data after the JSON object")
	}
	r.User, r.Name, r.Centre = strings.TrimSpace(r.User), strings.TrimSpace(r.Name), strings.TrimSpace(r.Centre)
	if r.User == "" || r.Centre == "" || len(r.User) > 200 || len(r.Name) > 200 || len(r.Centre) > 200 {
		return r, errs.E(errs.KindInvalid, "invalid_body", "user and centre are required (at most 200 bytes each)")
	}
	return r, nil
}

// ForwardedRecording is a site gateway's answer to a forwarded recording.
type ForwardedRecording struct {
	Recording
	MaxMinutes int    `json:"max_minutes"`
	Gateway    string `json:"gateway"`
}

// ForwardedRecordings is a site gateway's list of a camera's recordings.
type ForwardedRecordings struct {
	Items      []Recording `json:"items"`
	MaxMinutes int         `json:"max_minutes"`
	Gateway    string      `json:"gateway"`
}

// RecordingForwarder forwards the recordings of a site gateway's camera to that gateway (a
// centre's). Errors: errs.KindConflict record_at_site when the gateway cannot be asked (no
// address), errs.KindUnavailable site_unreachable / site_refused / site_error, or the site's
// own refusal with its code (reason_required, minutes_out_of_range, camera_not_found …).
type RecordingForwarder interface {
	StartAt(ctx context.Context, gateway, camera string, req PeerRecordingRequest) (ForwardedRecording, error)
	RecordingsAt(ctx context.Context, gateway, camera string) (ForwardedRecordings, error)
}

// recordingPeerRoutes registers the signed recordings of the site's centre (RecordingGate).
func (s *Server) recordingPeerRoutes(app *fiber.App) {
	if s.Recorder == nil || s.RecordingGate == nil {
		return
	}
	s.peerRecordingRefused, _ = register[*prometheus.CounterVec](s.Registry, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "offsite_peer_recording_refused_total",
		Help: "Signed recording requests (/offsite/v1/cameras/{id}/recordings) refused, by code (unsigned, bad_signature, stale_timestamp, replayed_request).",
	}, []string{"code"}))
	app.Post("/offsite/v1/cameras/:id/recordings", s.startRecordingForCentre)
	app.Get("/offsite/v1/cameras/:id/recordings", s.listRecordingsForCentre)
}

// verifyCentre checks the signature of a request from this site's centre; a refusal is
// audited (action, actor uplink:?) and counted, and is 401 with the reason's code.
func (s *Server) verifyCentre(c *fiber.Ctx, action string, signed []byte) (uplink.EvidencePeer, error) {
	peer, err := s.RecordingGate.VerifySigned(requestHeader(c), signed, time.Now())
	if err == nil {
		return peer, nil
	}
	code := signatureRefusal(err)
	if s.peerRecordingRefused != nil {
		s.peerRecordingRefused.WithLabelValues(code).Inc()
	}
	e := errs.Wrap(errs.KindUnauthorized, code, err, "%s", err.Error())
	_ = s.Audit.Record(c.UserContext(), audit.Entry{Actor: "uplink:?", Action: action, Target: c.Params("id"), IP: c.IP(),
		Result: "denied", Detail: code + " " + err.Error()})
	return peer, e
}

// startRecordingForCentre is POST /offsite/v1/cameras/{id}/recordings: the centre starts a
// recording of this site's camera for one of its officers. Audited camera.recording with the
// actor centre:ID and the officer in the detail.
func (s *Server) startRecordingForCentre(c *fiber.Ctx) error {
	id := c.Params("id")
	path := string(c.Request().URI().Path())
	peer, err := s.verifyCentre(c, "camera.recording", uplink.RequestSigned(fiber.MethodPost, path, c.Body()))
	if err != nil {
		return err
	}
	entry := audit.Entry{Actor: "uplink:" + peer.Name, Role: "centre", Action: "camera.recording", Target: id, IP: c.IP(), Result: "ok"}
	rec, body, err := s.doStartRecordingForCentre(c, id)
	if body.Centre != "" {
		entry.Actor = "centre:" + body.Centre
		who := body.User
		if body.Name != "" && body.Name != body.User {
			who += " (" + body.Name + ")"
		}
		entry.Detail = "centre " + body.Centre + " on behalf of user " + who
	}
	if err != nil {
		entry.Result = "failed"
		entry.Detail = strings.TrimSpace(errs.CodeOf(err) + " " + entry.Detail)
		_ = s.Audit.Record(c.UserContext(), entry)
		return err
	}
	entry.Detail += "; event " + rec.EventID + " until " + rec.Until.UTC().Format(time.RFC3339)
	_ = s.Audit.Record(c.UserContext(), entry)
	return c.Status(fiber.StatusAccepted).JSON(ForwardedRecording{Recording: rec, MaxMinutes: s.Recorder.MaxRecordingMinutes(), Gateway: s.GatewayID})
}

func (s *Server) doStartRecordingForCentre(c *fiber.Ctx, id string) (Recording, PeerRecordingRequest, error) {
	body, err := ParsePeerRecordingRequest(c.Body())
	if err != nil {
		return Recording{}, body, err
	}
	reason, err := checkRecording(body.Minutes, body.Reason, s.Recorder.MaxRecordingMinutes())
	if err != nil {
		return Recording{}, body, err
	}
	by := body.User + " @ " + body.Centre
	req := RecordingRequest{Camera: id, Minutes: body.Minutes, Reason: reason, User: by, AlertEventID: body.AlertEventID}
	if req.AlertEventID != "" {
		if s.Events == nil {
			return Recording{}, body, errs.E(errs.KindNotFound, "alert_not_found", "event %q of the alert is not at this gateway", req.AlertEventID)
		}
		if _, err := s.Events.Get(c.UserContext(), req.AlertEventID); err != nil {
			if errs.Is(err, errs.KindNotFound) {
				return Recording{}, body, errs.E(errs.KindNotFound, "alert_not_found", "event %q of the alert is not at this gateway", req.AlertEventID)
			}
			return Recording{}, body, err
		}
	}
	rec, err := s.Recorder.StartRecording(c.UserContext(), req)
	return rec, body, err
}

// listRecordingsForCentre is GET /offsite/v1/cameras/{id}/recordings: the camera's manual
// recordings, for the centre's 取证录像 dialog.
func (s *Server) listRecordingsForCentre(c *fiber.Ctx) error {
	path := string(c.Request().URI().Path())
	if _, err := s.verifyCentre(c, "camera.recordings", uplink.FetchSigned(fiber.MethodGet, path)); err != nil {
		return err
	}
	items := s.Recorder.Recordings(c.Params("id"))
	if items == nil {
		items = []Recording{}
	}
	return c.JSON(ForwardedRecordings{Items: items, MaxMinutes: s.Recorder.MaxRecordingMinutes(), Gateway: s.GatewayID})
}

// checkRecording applies the limits of a manual recording, the same wherever it is asked for:
// 1..max minutes and a reason of at most 1000 bytes. It returns the trimmed reason.
func checkRecording(minutes int, reason string, max int) (string, error) {
	if minutes < 1 || minutes > max {
		return "", errs.E(errs.KindInvalid, "minutes_out_of_range", "minutes must be between 1 and %s", strconv.Itoa(max))
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return "", errs.E(errs.KindInvalid, "reason_required", "give the reason for the recording")
	}
	if len(reason) > 1000 {
		return "", errs.E(errs.KindInvalid, "reason_too_long", "the reason must be at most 1000 bytes")
	}
	return reason, nil
}
