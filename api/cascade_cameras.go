package api

import (
	"github.com/gofiber/fiber/v2"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/streams"
)

// childView is the view of a camera of a site gateway below this centre: its state at the
// site (inventory), and this centre's pull of it. Why a tile shows nothing is the link's
// trouble when the centre cannot reach the site (reason gateway_unreachable, or
// gateway_auth_failed when the site refuses the centre's credential), else the site's reason.
func childView(d devices.InventoryDevice, status map[string]streams.CameraStatus) cameraView {
	cv := cameraView{ID: d.ID, SiteID: d.SiteID, Name: d.Name, Profile: d.Profile, Gateway: d.Gateway, State: d.State,
		ReasonCode: d.Reason, WHEP: "/api/v1/cameras/" + d.ID + "/whep", Snap: "/api/v1/cameras/" + d.ID + "/snapshot.jpg"}
	st, ok := status[d.ID]
	if !ok {
		return cv
	}
	cv.Status = &st // this centre's relay of it
	switch st.State {
	case streams.StateOnline.String(), streams.StateIdle.String(), streams.StateConnecting.String():
		return cv
	}
	code, _ := streams.ExplainReason(st.Reason)
	switch {
	case code == "auth_failed":
		cv.State, cv.ReasonCode = streams.StateOffline.String(), "gateway_auth_failed"
	case d.State == streams.StateOffline.String() && d.Reason != "":
		// The site says its camera is down: that, not the link, is why nothing arrives.
	case code == "camera_refused" && d.Reason != "":
		// The site answered but has no stream to give; its own reason says why.
	default:
		// The centre's pull is down or silent (refused, reset, stalled) while the site last
		// reported the camera fine: the site gateway or the link to it is what failed.
		cv.State, cv.ReasonCode = streams.StateOffline.String(), "gateway_unreachable"
	}
	return cv
}

// childCameraView is childView of camera id if it is a site gateway's, not this node's.
func (s *Server) childCameraView(c *fiber.Ctx, id string) (cameraView, bool) {
	if s.Gateways == nil {
		return cameraView{}, false
	}
	if _, err := s.Devices.GetDevice(c.UserContext(), id); err == nil {
		return cameraView{}, false
	}
	cd, _, err := s.Gateways.ChildDevice(c.UserContext(), "", id)
	if err != nil || cd.Kind != devices.KindCamera {
		return cameraView{}, false
	}
	return childView(cd, s.cameraStatus()), true
}
