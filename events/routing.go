package events

import (
	"fmt"
	"strings"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events/event"
)

// Audiences: who must act on an alert. Device-health conditions are maintenance work for the
// maintainers of the site's region; violations and risks are for the officers of the site's
// department.
const (
	AudienceMaintainers = "maintainers"
	AudienceOfficers    = "officers"
	AudienceAll         = "all"
)

// TypePolicy is how alerts opened by events of one type are handled (events.alerts.types).
type TypePolicy struct {
	// Route is the audience: maintainers, officers or all. Empty: maintainers for device
	// health (IsDeviceHealth), officers for the rest.
	Route string `yaml:"route" json:"route,omitempty"`
	// CloseOnClear closes the alert (actor system) when its alarm clears. By default a
	// cleared alarm only marks its alert 已恢复 and an officer closes it.
	CloseOnClear bool `yaml:"close_on_clear" json:"close_on_clear,omitempty"`
}

// validateTypes checks events.alerts.types.
func validateTypes(types map[string]TypePolicy) error {
	for t, p := range types {
		if t == "" || strings.HasPrefix(t, event.AlertPrefix) {
			return fmt.Errorf("events.alerts.types[%q]: give an event type or a prefix ending in \".\" (not alert.*)", t)
		}
		switch p.Route {
		case "", AudienceMaintainers, AudienceOfficers, AudienceAll:
		default:
			return fmt.Errorf("events.alerts.types[%q].route %q: must be maintainers, officers or all", t, p.Route)
		}
	}
	return nil
}

// policy returns the policy for events of type t: the exact type, else the longest prefix
// ending in ".", else the default; Route is always filled.
func (a *Alerts) policy(t string) TypePolicy {
	p, ok := a.Types[t]
	if !ok {
		best := ""
		for k, v := range a.Types {
			if strings.HasSuffix(k, ".") && strings.HasPrefix(t, k) && len(k) > len(best) {
				best, p = k, v
			}
		}
	}
	if p.Route == "" {
		p.Route = DefaultRoute(t)
	}
	return p
}

// DefaultRoute is the audience of alerts of type t when the configuration says nothing.
func DefaultRoute(t string) string {
	if IsDeviceHealth(t) {
		return AudienceMaintainers
	}
	return AudienceOfficers
}

// Reader is who reads alerts and alert events: the role decides the audience, the scope the
// sites. Maintainers are limited to their regions (the sites they look after), officers and
// viewers to their departments and regions.
type Reader struct {
	Role  string // admin, maintainer, officer, viewer (api/auth roles)
	Scope devices.Scope
}

// Audiences returns the audiences r reads; nil means all (admins and viewers, who act on
// nothing and watch everything in scope).
func (r Reader) Audiences() []string {
	switch r.Role {
	case "maintainer":
		return []string{AudienceMaintainers, AudienceAll}
	case "officer":
		return []string{AudienceOfficers, AudienceAll}
	}
	return nil
}

// Reads reports whether r gets an alert of audience aud. An alert written before audiences
// existed (aud "") goes by its type.
func (r Reader) Reads(aud, typ string) bool {
	want := r.Audiences()
	if want == nil {
		return true
	}
	if aud == "" {
		aud = DefaultRoute(typ)
	}
	for _, w := range want {
		if w == aud {
			return true
		}
	}
	return false
}
