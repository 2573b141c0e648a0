package streams

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/offsite-gw/offsite/internal/errs"
)

// Handler serves the relay's HTTP endpoints on net/http; the API serves it behind its camera
// routes (api.Server.Video), which check who may watch:
//
//	POST    /api/v1/cameras/{id}/whep            WHEP offer (application/sdp) → 201 answer + Location
//	DELETE  /api/v1/cameras/{id}/whep/{session}  end the session
//	PATCH   /api/v1/cameras/{id}/whep/{session}  405: no trickle ICE, the answer has all candidates
//	OPTIONS /api/v1/cameras/{id}/whep            CORS preflight
//	GET     /api/v1/cameras/{id}/snapshot.jpg    current picture
type Handler struct {
	WHEP     *WHEP
	Snapshot *Snapshot
	// Authorize decides whether the request's identity may see the camera, and returns the user
	// for the audit log. Return an errs.Error of kind Unauthorized (401) or Forbidden (403).
	// Required: without it every request is refused (default deny).
	Authorize func(r *http.Request, cameraID string) (user string, err error)
	// MayEndAny, if set, says whether the request's identity may end other users' viewing
	// sessions (an administrator). Without it only a session's own viewer may end it.
	MayEndAny func(r *http.Request) bool
	// AllowOrigin, if set, is sent as Access-Control-Allow-Origin.
	AllowOrigin string

	mux *http.ServeMux
}

// Initialize builds the routes.
func (h *Handler) Initialize() error {
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("POST /api/v1/cameras/{id}/whep", h.doOffer)
	h.mux.HandleFunc("OPTIONS /api/v1/cameras/{id}/whep", h.doOptions)
	h.mux.HandleFunc("OPTIONS /api/v1/cameras/{id}/whep/{session}", h.doOptions)
	h.mux.HandleFunc("DELETE /api/v1/cameras/{id}/whep/{session}", h.doDelete)
	h.mux.HandleFunc("PATCH /api/v1/cameras/{id}/whep/{session}", func(w http.ResponseWriter, r *http.Request) {
		h.cors(w)
		w.Header().Set("Allow", "DELETE, OPTIONS")
		writeError(w, http.StatusMethodNotAllowed, "trickle_ice_unsupported", "this WHEP endpoint does not take trickle ICE; the answer carries all candidates")
	})
	h.mux.HandleFunc("GET /api/v1/cameras/{id}/snapshot.jpg", h.doSnapshot)
	return nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.mux == nil {
		_ = h.Initialize()
	}
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) cors(w http.ResponseWriter) {
	if h.AllowOrigin != "" {
		w.Header().Set("Access-Control-Allow-Origin", h.AllowOrigin)
		w.Header().Set("Access-Control-Expose-Headers", "Location, Link")
	}
}

func (h *Handler) doOptions(w http.ResponseWriter, r *http.Request) {
	h.cors(w)
	w.Header().Set("Access-Control-Allow-Methods", "POST, DELETE, PATCH, OPTIONS")
	w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
	w.Header().Set("Accept-Post", "application/sdp")
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, cameraID string) (string, bool) {
	if h.Authorize == nil {
		writeError(w, http.StatusForbidden, "forbidden", "video access is not configured")
		return "", false
	}
	user, err := h.Authorize(r, cameraID)
	if err != nil {
		writeErr(w, err)
		return "", false
	}
	return user, true
}

func (h *Handler) doOffer(w http.ResponseWriter, r *http.Request) {
	h.cors(w)
	id := r.PathValue("id")
	user, ok := h.authorize(w, r, id)
	if !ok {
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/sdp" {
		writeError(w, http.StatusUnsupportedMediaType, "bad_content_type", "a WHEP offer must be sent as application/sdp")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_offer", "could not read the offer")
		return
	}
	if len(body) > 64<<10 {
		writeError(w, http.StatusRequestEntityTooLarge, "bad_offer", "the offer is larger than 64 KiB")
		return
	}
	if h.WHEP == nil {
		writeError(w, http.StatusServiceUnavailable, "webrtc_disabled", "WebRTC viewing is disabled on this gateway")
		return
	}
	// The strings outlive the request: copies, because a server may hand us views of buffers
	// it reuses for the next request (fiber's adaptor does), which would rename the viewer.
	id, v := strings.Clone(id), Viewer{User: strings.Clone(user), RemoteAddr: strings.Clone(r.RemoteAddr)}
	answer, sid, err := h.WHEP.Offer(r.Context(), id, string(body), v)
	if err != nil {
		writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", "/api/v1/cameras/"+id+"/whep/"+sid)
	w.Header().Set("ETag", `"`+sid+`"`)
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

func (h *Handler) doDelete(w http.ResponseWriter, r *http.Request) {
	h.cors(w)
	id := r.PathValue("id")
	user, ok := h.authorize(w, r, id)
	if !ok {
		return
	}
	if h.WHEP == nil {
		writeError(w, http.StatusNotFound, "session_not_found", "no such session")
		return
	}
	anyOwner := h.MayEndAny != nil && h.MayEndAny(r)
	by := Viewer{User: strings.Clone(user), RemoteAddr: strings.Clone(r.RemoteAddr)} // see doOffer
	if err := h.WHEP.End(id, r.PathValue("session"), by, anyOwner); err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (h *Handler) doSnapshot(w http.ResponseWriter, r *http.Request) {
	h.cors(w)
	id := r.PathValue("id")
	if _, ok := h.authorize(w, r, id); !ok {
		return
	}
	if h.Snapshot == nil {
		writeError(w, http.StatusServiceUnavailable, "snapshot_unavailable", "snapshots are disabled on this gateway")
		return
	}
	jpeg, at, err := h.Snapshot.JPEG(r.Context(), id)
	if err != nil {
		writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Last-Modified", at.UTC().Format(http.TimeFormat))
	w.Header().Set("X-Offsite-Captured-At", at.UTC().Format(time.RFC3339Nano))
	w.Header().Set("Content-Length", strconv.Itoa(len(jpeg)))
	_, _ = w.Write(jpeg)
}

// StatusOf maps an error to its HTTP status: an offer or a camera stream that cannot be played
// (bad SDP, H.265, B-frames) is 422 Unprocessable as WHEP clients expect; everything else as
// errs.HTTPStatus says.
func StatusOf(err error) int {
	if errs.KindOf(err) == errs.KindInvalid {
		return http.StatusUnprocessableEntity
	}
	return errs.HTTPStatus(errs.KindOf(err))
}

func writeErr(w http.ResponseWriter, err error) {
	var e *errs.Error
	msg := "internal error"
	if errors.As(err, &e) {
		msg = e.Message
	}
	writeError(w, StatusOf(err), errs.CodeOf(err), msg)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
