package api

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"

	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/streams"
)

// CameraRelay is what the camera routes read of the video relay (*streams.Manager).
type CameraRelay interface {
	Cameras() []streams.CameraStatus
}

// viewerHeader and viewerRoleHeader carry the caller from the camera routes to the Video
// handler. The routes always overwrite them, so a client cannot forge them; VideoViewer and
// VideoMayEndAny read them.
const (
	viewerHeader     = "X-Offsite-Viewer"
	viewerRoleHeader = "X-Offsite-Viewer-Role"
)

// VideoMayEndAny is the MayEndAny function of the Video handler (streams.Handler): an
// administrator may end other users' viewing sessions; everyone else only their own.
func VideoMayEndAny(r *http.Request) bool {
	return r.Header.Get(viewerRoleHeader) == string(auth.RoleAdmin)
}

// VideoViewer is the Authorize function of the Video handler (streams.Handler): the user the
// camera route has already authenticated and allowed to watch the camera. A request that did
// not come through the route is refused.
func VideoViewer(r *http.Request, _ string) (string, error) {
	if u := r.Header.Get(viewerHeader); u != "" {
		// A copy: the adaptor's request shares fasthttp's buffers, which the next request
		// reuses; a session kept under this name would otherwise be renamed.
		return strings.Clone(u), nil
	}
	return "", errs.E(errs.KindUnauthorized, "unauthenticated", "log in first")
}

// cameraView is GET /api/v1/cameras: the device and what the relay knows of it.
type cameraView struct {
	// ReasonCode explains a camera that is not online (streams.ExplainReason); the dashboard
	// translates it.
	ReasonCode string                `json:"reason_code,omitempty"`
	ID         string                `json:"id"`
	SiteID     string                `json:"site_id"`
	Name       string                `json:"name"`
	Profile    string                `json:"profile"`
	Status     *streams.CameraStatus `json:"status,omitempty"`
	WHEP       string                `json:"whep"`
	Snap       string                `json:"snapshot"`
	// Gateway names the site gateway of a camera a centre's child reported; State is its
	// live state there.
	Gateway string `json:"gateway,omitempty"`
	State   string `json:"state,omitempty"`
}

// cameraRoutes registers the camera list (with Cameras) and WHEP and snapshots (with Video).
func (s *Server) cameraRoutes(r fiber.Router) {
	if s.Cameras != nil {
		r.Get("/cameras", s.listCameras)
		r.Get("/cameras/:id", s.getCamera)
	}
	if s.Video != nil {
		watch := s.watchCamera(adaptor.HTTPHandler(s.Video))
		r.Post("/cameras/:id/whep", watch)
		r.Options("/cameras/:id/whep", watch)
		r.Delete("/cameras/:id/whep/:session", watch)
		r.Patch("/cameras/:id/whep/:session", watch)
		r.Get("/cameras/:id/snapshot.jpg", watch)
	}
}

// visibleCamera returns camera id if the caller may watch it: a viewing role, and the camera's
// site in scope. Anything else about the camera is "not found".
func (s *Server) visibleCamera(c *fiber.Ctx, id string) (devices.Device, error) {
	u, ok := UserOf(c)
	if !ok {
		return devices.Device{}, errs.E(errs.KindUnauthorized, "unauthenticated", "log in first")
	}
	switch u.Role {
	case auth.RoleAdmin, auth.RoleMaintainer, auth.RoleOfficer, auth.RoleViewer, auth.RoleService:
	default:
		return devices.Device{}, errs.E(errs.KindForbidden, "forbidden", "role %s may not watch cameras", u.Role)
	}
	notFound := errs.E(errs.KindNotFound, "camera_not_found", "camera %q does not exist", id)
	d, err := s.Devices.GetDevice(c.UserContext(), id)
	if errs.Is(err, errs.KindNotFound) && s.Gateways != nil {
		// A camera of a site gateway below this centre, relayed on demand (cascade).
		cd, site, cerr := s.Gateways.ChildDevice(c.UserContext(), "", id)
		if cerr != nil || cd.Kind != devices.KindCamera || site.ID == "" || !u.Scope().AllowsSite(site.Site) {
			return devices.Device{}, notFound
		}
		return devices.Device{ID: cd.ID, SiteID: cd.SiteID, Kind: cd.Kind, Name: cd.Name, Profile: cd.Profile}, nil
	}
	if err != nil || d.Kind != devices.KindCamera {
		return devices.Device{}, notFound
	}
	site, err := s.Devices.GetSite(c.UserContext(), d.SiteID)
	if err != nil || !u.Scope().AllowsSite(site) {
		return devices.Device{}, notFound
	}
	return d, nil
}

// watchCamera hands WHEP and snapshot requests of cameras the caller may watch to video,
// naming the caller for VideoViewer (and so for the audit of viewing sessions) and the role
// for VideoMayEndAny. Every snapshot download is audited (camera.snapshot).
func (s *Server) watchCamera(video fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id := c.Params("id")
		snapshot := c.Method() == fiber.MethodGet
		if _, err := s.visibleCamera(c, id); err != nil {
			if snapshot {
				s.Record(c, "camera.snapshot", id, err, "")
			}
			return err
		}
		u, _ := UserOf(c)
		c.Request().Header.Set(viewerHeader, u.Username)
		c.Request().Header.Set(viewerRoleHeader, string(u.Role))
		err := video(c)
		if snapshot {
			e := audit.Entry{Action: "camera.snapshot", Target: id, Result: "ok"}
			if st := c.Response().StatusCode(); st >= 400 || err != nil {
				e.Result, e.Detail = "failed", "status "+strconv.Itoa(st)
			}
			s.record(c, e)
		}
		return err
	}
}

func (s *Server) listCameras(c *fiber.Ctx) error {
	cams, err := s.Devices.ListDevices(c.UserContext(), devices.DeviceFilter{Kind: devices.KindCamera, Scope: scopeOf(c), SiteID: c.Query("site")})
	if err != nil {
		return err
	}
	status := s.cameraStatus()
	out := make([]cameraView, 0, len(cams))
	for _, d := range cams {
		out = append(out, toCameraView(d, status))
	}
	if s.Gateways != nil {
		children, err := s.Gateways.ChildDevices(c.UserContext(), c.Query("gateway"), devices.DeviceFilter{
			Kind: devices.KindCamera, Scope: scopeOf(c), SiteID: c.Query("site")})
		if err != nil {
			return err
		}
		for _, d := range children {
			out = append(out, childView(d, status))
		}
	}
	return c.JSON(fiber.Map{"cameras": out})
}

func (s *Server) getCamera(c *fiber.Ctx) error {
	d, err := s.visibleCamera(c, c.Params("id"))
	if err != nil {
		return err
	}
	if cv, ok := s.childCameraView(c, d.ID); ok {
		return c.JSON(cv)
	}
	return c.JSON(toCameraView(d, s.cameraStatus()))
}

// cameraStatus is the relay's status of every camera it knows, by id.
func (s *Server) cameraStatus() map[string]streams.CameraStatus {
	sts := s.Cameras.Cameras()
	m := make(map[string]streams.CameraStatus, len(sts))
	for _, st := range sts {
		m[st.ID] = st
	}
	return m
}

func toCameraView(d devices.Device, status map[string]streams.CameraStatus) cameraView {
	cv := cameraView{ID: d.ID, SiteID: d.SiteID, Name: d.Name, Profile: d.Profile,
		WHEP: "/api/v1/cameras/" + d.ID + "/whep", Snap: "/api/v1/cameras/" + d.ID + "/snapshot.jpg"}
	if st, ok := status[d.ID]; ok {
		cv.Status = &st
		if st.State != streams.StateOnline.String() {
			cv.ReasonCode, _ = streams.ExplainReason(st.Reason)
		}
	}
	return cv
}
