package api

import (
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/errs"
)

// alertReader is who reads alerts: device-health work goes to maintainers of the site's
// region (their regions; none = all), violations and risks to officers of the site's
// department (their scope); events.alerts.types may route a type elsewhere.
func alertReader(u auth.User) events.Reader {
	sc := u.Scope()
	if u.Role == auth.RoleMaintainer {
		sc = devices.Scope{Regions: append([]string(nil), u.Regions...)}
	}
	return events.Reader{Role: string(u.Role), Scope: sc}
}

// eventVisible reports whether u receives e over GET /events and the live stream (the scope,
// alertReader(u).Scope, is checked separately): alert.* events go by the alert's audience,
// other events by type (a maintainer sees device health only).
func eventVisible(u auth.User, r events.Reader, e *event.Event) bool {
	if strings.HasPrefix(e.Type, event.AlertPrefix) {
		aud := ""
		if e.Alert != nil {
			aud = e.Alert.Audience
		}
		return r.Reads(aud, "")
	}
	return typeVisible(u.Role, e.Type)
}

// checkAudience refuses to act on an alert that is not u's work (an officer claiming a
// maintenance work order), as if it did not exist.
func (s *Server) checkAudience(c *fiber.Ctx, u auth.User, id string) error {
	r := alertReader(u)
	al, err := s.Alerts.Get(c.UserContext(), r.Scope, id)
	if err != nil {
		return err
	}
	if !r.Reads(al.Audience, al.Type) {
		return errs.E(errs.KindNotFound, "alert_not_found", "no alert %s", id)
	}
	return nil
}
