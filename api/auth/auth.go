// Package auth owns the gateway's users, their passwords (argon2id), the opaque bearer tokens
// they log in with, login throttling and lock-out, and the role matrix that says which role may
// do what. It knows nothing about HTTP; api/ maps its typed errors to status codes.
package auth

import (
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/internal/errs"
)

// Role is what a user is allowed to do.
type Role string

const (
	// RoleAdmin may do everything, including managing users and reading the audit log.
	RoleAdmin Role = "admin"
	// RoleMaintainer registers and maintains sites, devices and profiles, reads device-health
	// events and alerts and the uplinks' status; no users, no audit.
	RoleMaintainer Role = "maintainer"
	// RoleOfficer is an enforcement officer: reads sites and devices within its scope and acts
	// on alerts.
	RoleOfficer Role = "officer"
	// RoleViewer reads sites, devices, events and alerts within its scope (e.g. a video-wall
	// operator).
	RoleViewer Role = "viewer"
	// RoleService is a machine identity (analytics workers, uplink tools): reads devices and
	// profiles, posts events and uploads evidence.
	RoleService Role = "service"
)

// Roles lists every role.
func Roles() []Role {
	return []Role{RoleAdmin, RoleMaintainer, RoleOfficer, RoleViewer, RoleService}
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return slices.Contains(Roles(), r) }

// Scoped reports whether users of role r are limited to their departments and regions.
func (r Role) Scoped() bool { return r == RoleOfficer || r == RoleViewer }

// Permission names one kind of access checked by Allowed.
type Permission string

const (
	PermUsersManage   Permission = "users.manage"   // list, create, change, delete users
	PermAuditRead     Permission = "audit.read"     // read the audit log
	PermSitesRead     Permission = "sites.read"     // scoped for officer and viewer
	PermSitesWrite    Permission = "sites.write"    // create, change, delete sites
	PermDevicesRead   Permission = "devices.read"   // scoped for officer and viewer
	PermDevicesWrite  Permission = "devices.write"  // create, change, delete, import devices, maintenance log
	PermDevicesExport Permission = "devices.export" // CSV export (all sites, unscoped)
	PermProfilesRead  Permission = "profiles.read"  // device model catalogue
	// Events and alerts: scoped for officer and viewer; a maintainer sees device-health types
	// only (device.*, sensor.silent, video.signal_lost — what a maintainer goes out to fix).
	PermEventsRead    Permission = "events.read"    // event log, live stream, alerts, evidence files
	PermEventsWrite   Permission = "events.write"   // POST events (analytics workers, tools)
	PermAlertsAct     Permission = "alerts.act"     // claim, handle, feed back, close (in scope)
	PermEvidenceWrite Permission = "evidence.write" // upload snapshots and attachments
	PermUplinksRead   Permission = "uplinks.read"   // delivery status of uplinks and webhooks
	PermUplinksManage Permission = "uplinks.manage" // dead letters: list, re-send
	// Site gateways enrolled below a centre.
	PermGatewaysRead   Permission = "gateways.read"   // list them and their health
	PermGatewaysManage Permission = "gateways.manage" // enrol, change, rotate the secret, remove
)

// Allowed reports whether role may use permission p. This is the whole role matrix; the table
// in api/README.md mirrors it.
func Allowed(role Role, p Permission) bool {
	switch role {
	case RoleAdmin:
		return true
	case RoleMaintainer:
		switch p {
		case PermSitesRead, PermSitesWrite, PermDevicesRead, PermDevicesWrite, PermDevicesExport, PermProfilesRead,
			PermEventsRead, PermUplinksRead, PermGatewaysRead:
			return true
		}
	case RoleOfficer:
		switch p {
		case PermSitesRead, PermDevicesRead, PermProfilesRead, PermEventsRead, PermAlertsAct, PermEvidenceWrite:
			return true
		}
	case RoleViewer:
		switch p {
		case PermSitesRead, PermDevicesRead, PermProfilesRead, PermEventsRead:
			return true
		}
	case RoleService:
		switch p {
		case PermDevicesRead, PermProfilesRead, PermEventsWrite, PermEvidenceWrite:
			return true
		}
	}
	return false
}

// User is a person or a machine identity that logs in.
type User struct {
	ID          string `json:"id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	Role        Role   `json:"role"`
	// Departments limit officers and viewers to sites of these departments (e.g. 市生态环境局).
	// Empty means no limit on this axis. Ignored for other roles.
	Departments []string `json:"departments"`
	// Regions limit officers and viewers to sites whose GB/T 2260 region code starts with one
	// of these prefixes (e.g. "4107" for a prefecture). Empty means no limit.
	Regions  []string `json:"regions"`
	Disabled bool     `json:"disabled"`
	// LockedUntil is set while the account is locked after too many failed logins.
	LockedUntil *time.Time `json:"locked_until,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
}

// Scope returns the sites the user may see: the departments and regions of an officer or
// viewer, and no limit for the other roles.
func (u User) Scope() devices.Scope {
	if !u.Role.Scoped() {
		return devices.Scope{}
	}
	return devices.Scope{Departments: slices.Clone(u.Departments), Regions: slices.Clone(u.Regions)}
}

var (
	usernameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,63}$`)
	regionRE   = regexp.MustCompile(`^[0-9]{2,6}$`)
)

// NormalizeUsername is how usernames are compared: trimmed and lower case.
func NormalizeUsername(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// validate checks the fields a caller sets and normalises them in place.
func (u *User) validate() error {
	u.Username = NormalizeUsername(u.Username)
	if !usernameRE.MatchString(u.Username) {
		return errs.E(errs.KindInvalid, "invalid_username",
			"username must be 1-64 characters of a-z, 0-9, '.', '_', '@', '-', starting with a letter or digit")
	}
	u.DisplayName = strings.TrimSpace(u.DisplayName)
	if len([]rune(u.DisplayName)) > 100 {
		return errs.E(errs.KindInvalid, "invalid_display_name", "display_name must have at most 100 characters")
	}
	if !u.Role.Valid() {
		return errs.E(errs.KindInvalid, "invalid_role", "role must be one of admin, maintainer, officer, viewer, service (got %q)", u.Role)
	}
	if len(u.Departments) > 50 || len(u.Regions) > 50 {
		return errs.E(errs.KindInvalid, "invalid_scope", "at most 50 departments and 50 regions")
	}
	deps := make([]string, 0, len(u.Departments))
	for _, d := range u.Departments {
		d = strings.TrimSpace(d)
		if d == "" || len([]rune(d)) > 100 {
			return errs.E(errs.KindInvalid, "invalid_scope", "departments must be non-empty names of at most 100 characters")
		}
		if !slices.Contains(deps, d) {
			deps = append(deps, d)
		}
	}
	regs := make([]string, 0, len(u.Regions))
	for _, r := range u.Regions {
		r = strings.TrimSpace(r)
		if !regionRE.MatchString(r) {
			return errs.E(errs.KindInvalid, "invalid_scope", "region %q must be a GB/T 2260 code prefix of 2 to 6 digits (e.g. 41, 4107, 410702)", r)
		}
		if !slices.Contains(regs, r) {
			regs = append(regs, r)
		}
	}
	u.Departments, u.Regions = deps, regs
	return nil
}
