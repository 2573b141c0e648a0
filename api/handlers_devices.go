package api

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/offsite-gw/offsite/devices"
	profiles "github.com/offsite-gw/offsite/firmware-profiles"
	"github.com/offsite-gw/offsite/internal/errs"
)

// scopeOf is the caller's scope (no limit for roles that are not scoped).
func scopeOf(c *fiber.Ctx) devices.Scope {
	u, _ := UserOf(c)
	return u.Scope()
}

func siteNotFound(id string) error {
	return errs.E(errs.KindNotFound, "site_not_found", "site %q does not exist", id)
}

func deviceNotFound(id string) error {
	return errs.E(errs.KindNotFound, "device_not_found", "device %q does not exist", id)
}

// visibleSite returns a site the caller may see. A site outside the caller's scope is "not
// found", so officers cannot learn which ids exist in other departments.
func (s *Server) visibleSite(c *fiber.Ctx, id string) (devices.Site, error) {
	site, err := s.Devices.GetSite(c.UserContext(), id)
	if err != nil {
		return site, err
	}
	if sc := scopeOf(c); !sc.Unlimited() && !sc.AllowsSite(site) {
		return devices.Site{}, siteNotFound(id)
	}
	return site, nil
}

// visibleDevice returns a device whose site the caller may see (see visibleSite).
func (s *Server) visibleDevice(c *fiber.Ctx, id string) (devices.Device, error) {
	d, err := s.Devices.GetDevice(c.UserContext(), id)
	if err != nil {
		return d, err
	}
	if sc := scopeOf(c); !sc.Unlimited() {
		site, err := s.Devices.GetSite(c.UserContext(), d.SiteID)
		if errs.Is(err, errs.KindNotFound) || (err == nil && !sc.AllowsSite(site)) {
			return devices.Device{}, deviceNotFound(id)
		}
		if err != nil {
			return devices.Device{}, err
		}
	}
	return d, nil
}

// ---- sites ----

func (s *Server) listSites(c *fiber.Ctx) error {
	sites, err := s.Devices.ListSites(c.UserContext(), devices.SiteFilter{
		Scope:      scopeOf(c),
		Department: c.Query("department"),
		RegionCode: c.Query("region"),
	})
	if err != nil {
		return err
	}
	out := make([]any, 0, len(sites))
	for _, site := range sites {
		out = append(out, site)
	}
	if s.Gateways != nil {
		children, err := s.Gateways.ChildSites(c.UserContext(), c.Query("gateway"), devices.SiteFilter{
			Scope: scopeOf(c), Department: c.Query("department"), RegionCode: c.Query("region")})
		if err != nil {
			return err
		}
		for _, cs := range children {
			out = append(out, cs)
		}
	}
	return c.JSON(fiber.Map{"sites": out})
}

func (s *Server) getSite(c *fiber.Ctx) error {
	site, err := s.visibleSite(c, c.Params("id"))
	if errs.Is(err, errs.KindNotFound) && s.Gateways != nil {
		children, cerr := s.Gateways.ChildSites(c.UserContext(), c.Query("gateway"), devices.SiteFilter{Scope: scopeOf(c)})
		if cerr != nil {
			return cerr
		}
		for _, cs := range children {
			if cs.ID == c.Params("id") {
				return c.JSON(cs)
			}
		}
	}
	if err != nil {
		return err
	}
	return c.JSON(site)
}

func (s *Server) createSite(c *fiber.Ctx) error {
	var site devices.Site
	if err := DecodeJSON(c, &site); err != nil {
		return err
	}
	if sc := scopeOf(c); !sc.Unlimited() && !sc.AllowsSite(site) {
		return errs.E(errs.KindForbidden, "out_of_scope", "you may only create sites of your departments and regions")
	}
	err := s.Devices.CreateSite(c.UserContext(), &site)
	s.Record(c, "site.create", site.ID, err, site.Name)
	if err != nil {
		return err
	}
	c.Location("/api/v1/sites/" + site.ID)
	return c.Status(fiber.StatusCreated).JSON(site)
}

func (s *Server) updateSite(c *fiber.Ctx) error {
	id := c.Params("id")
	var site devices.Site
	if err := DecodeJSON(c, &site); err != nil {
		return err
	}
	if site.ID != "" && site.ID != id {
		return errs.E(errs.KindInvalid, "id_mismatch", "the body's id %q differs from the path's %q; ids cannot be changed", site.ID, id)
	}
	site.ID = id
	if _, err := s.visibleSite(c, id); err != nil {
		return err
	}
	err := s.Devices.UpdateSite(c.UserContext(), &site)
	s.Record(c, "site.update", id, err, site.Name)
	if err != nil {
		return err
	}
	out, err := s.Devices.GetSite(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (s *Server) deleteSite(c *fiber.Ctx) error {
	id := c.Params("id")
	if _, err := s.visibleSite(c, id); err != nil {
		return err
	}
	err := s.Devices.DeleteSite(c.UserContext(), id)
	s.Record(c, "site.delete", id, err, "")
	if err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// ---- devices ----

// DeviceView is a device as the API returns it: never with secrets, and with the firmware
// check when the server has a FirmwareChecker.
type DeviceView struct {
	devices.Device
	FirmwareCheck *profiles.FirmwareCheck `json:"firmware_check,omitempty"`
	// Gateway names the site gateway a device is on, for the devices a centre's children
	// reported; State, StateSince and Reason are its live state there.
	Gateway    string     `json:"gateway,omitempty"`
	State      string     `json:"state,omitempty"`
	StateSince *time.Time `json:"state_since,omitempty"`
	Reason     string     `json:"reason,omitempty"`
}

// childView is a device reported by a child gateway, in the shape of the centre's own.
func (s *Server) childView(d devices.InventoryDevice) DeviceView {
	v := s.view(devices.Device{ID: d.ID, SiteID: d.SiteID, Kind: d.Kind, Name: d.Name, Vendor: d.Vendor, Model: d.Model,
		Profile: d.Profile, Firmware: d.Firmware, Serial: d.Serial, InstalledOn: d.InstalledOn})
	v.Gateway, v.State, v.StateSince, v.Reason = d.Gateway, d.State, d.StateSince, d.Reason
	return v
}

// redact removes write-only secrets. The store already leaves them out of reads; this is the
// last line, so that no answer can carry one whatever the store does.
func redact(d devices.Device) devices.Device {
	if d.Stream != nil {
		st := *d.Stream
		st.Password = ""
		d.Stream = &st
	}
	if d.MQTT != nil {
		m := *d.MQTT
		m.Secret = ""
		d.MQTT = &m
	}
	if d.HJ212 != nil {
		h := *d.HJ212
		h.PW = ""
		d.HJ212 = &h
	}
	return d
}

func (s *Server) view(d devices.Device) DeviceView {
	v := DeviceView{Device: redact(d)}
	if s.Firmware != nil {
		fc := s.Firmware.CheckFirmware(d.Profile, d.Firmware)
		v.FirmwareCheck = &fc
	}
	return v
}

func (s *Server) listDevices(c *fiber.Ctx) error {
	flagged := false
	switch fw := c.Query("firmware"); fw {
	case "":
	case "flagged":
		if s.Firmware == nil {
			return errs.E(errs.KindInvalid, "invalid_filter", "firmware checks are not configured on this gateway")
		}
		flagged = true
	default:
		return errs.E(errs.KindInvalid, "invalid_filter", "firmware=%q: the only filter is firmware=flagged", fw)
	}
	kind := devices.Kind(c.Query("kind"))
	switch kind {
	case "", devices.KindCamera, devices.KindSensor, devices.KindGateway:
	default:
		return errs.E(errs.KindInvalid, "invalid_filter", "kind must be camera, sensor or gateway")
	}
	list, err := s.Devices.ListDevices(c.UserContext(), devices.DeviceFilter{
		Scope:   scopeOf(c),
		SiteID:  c.Query("site"),
		Kind:    kind,
		Profile: c.Query("profile"),
	})
	if err != nil {
		return err
	}
	out := make([]DeviceView, 0, len(list))
	for _, d := range list {
		v := s.view(d)
		if flagged && v.FirmwareCheck.Status == profiles.FirmwareOK {
			continue
		}
		out = append(out, v)
	}
	if s.Gateways != nil {
		children, err := s.Gateways.ChildDevices(c.UserContext(), c.Query("gateway"), devices.DeviceFilter{
			Scope: scopeOf(c), SiteID: c.Query("site"), Kind: kind, Profile: c.Query("profile")})
		if err != nil {
			return err
		}
		for _, d := range children {
			v := s.childView(d)
			if flagged && v.FirmwareCheck.Status == profiles.FirmwareOK {
				continue
			}
			out = append(out, v)
		}
	}
	return c.JSON(fiber.Map{"devices": out})
}

func (s *Server) getDevice(c *fiber.Ctx) error {
	d, err := s.visibleDevice(c, c.Params("id"))
	if errs.Is(err, errs.KindNotFound) && s.Gateways != nil {
		if cd, site, cerr := s.Gateways.ChildDevice(c.UserContext(), c.Query("gateway"), c.Params("id")); cerr == nil {
			if sc := scopeOf(c); sc.Unlimited() || (site.ID != "" && sc.AllowsSite(site.Site)) {
				return c.JSON(s.childView(cd))
			}
		}
	}
	if err != nil {
		return err
	}
	return c.JSON(s.view(d))
}

func deviceDetail(d devices.Device) string {
	return fmt.Sprintf("site=%s kind=%s profile=%s", d.SiteID, d.Kind, d.Profile)
}

func (s *Server) createDevice(c *fiber.Ctx) error {
	var d devices.Device
	if err := DecodeJSON(c, &d); err != nil {
		return err
	}
	if !scopeOf(c).Unlimited() {
		if _, err := s.visibleSite(c, d.SiteID); err != nil {
			return err
		}
	}
	err := s.Devices.CreateDevice(c.UserContext(), &d)
	s.Record(c, "device.create", d.ID, err, deviceDetail(d))
	if err != nil {
		return err
	}
	out, err := s.Devices.GetDevice(c.UserContext(), d.ID)
	if err != nil {
		return err
	}
	c.Location("/api/v1/devices/" + d.ID)
	return c.Status(fiber.StatusCreated).JSON(s.view(out))
}

func (s *Server) updateDevice(c *fiber.Ctx) error {
	id := c.Params("id")
	var d devices.Device
	if err := DecodeJSON(c, &d); err != nil {
		return err
	}
	if d.ID != "" && d.ID != id {
		return errs.E(errs.KindInvalid, "id_mismatch", "the body's id %q differs from the path's %q; ids cannot be changed", d.ID, id)
	}
	d.ID = id
	if _, err := s.visibleDevice(c, id); err != nil {
		return err
	}
	if !scopeOf(c).Unlimited() { // a scoped caller may not move a device out of the scope
		if _, err := s.visibleSite(c, d.SiteID); err != nil {
			return err
		}
	}
	err := s.Devices.UpdateDevice(c.UserContext(), &d)
	s.Record(c, "device.update", id, err, deviceDetail(d))
	if err != nil {
		return err
	}
	out, err := s.Devices.GetDevice(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(s.view(out))
}

func (s *Server) deleteDevice(c *fiber.Ctx) error {
	id := c.Params("id")
	if _, err := s.visibleDevice(c, id); err != nil {
		return err
	}
	err := s.Devices.DeleteDevice(c.UserContext(), id)
	s.Record(c, "device.delete", id, err, "")
	if err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// ---- maintenance ----

func (s *Server) listMaintenance(c *fiber.Ctx) error {
	id := c.Params("id")
	if _, err := s.visibleDevice(c, id); err != nil {
		return err
	}
	list, err := s.Devices.ListMaintenance(c.UserContext(), id)
	if err != nil {
		return err
	}
	if list == nil {
		list = []devices.MaintenanceEntry{}
	}
	return c.JSON(fiber.Map{"maintenance": list})
}

type maintenanceRequest struct {
	Kind string    `json:"kind"`
	Note string    `json:"note"`
	At   time.Time `json:"at"` // when the work was done; default now
}

func (s *Server) addMaintenance(c *fiber.Ctx) error {
	id := c.Params("id")
	var req maintenanceRequest
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	if _, err := s.visibleDevice(c, id); err != nil {
		return err
	}
	u, _ := UserOf(c)
	e := devices.MaintenanceEntry{DeviceID: id, Actor: u.Username, Kind: req.Kind, Note: req.Note, At: req.At}
	err := s.Devices.AddMaintenance(c.UserContext(), &e)
	s.Record(c, "device.maintenance", id, err, e.Kind)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(e)
}

// ---- CSV ----

// ImportResult is the answer to a successful import.
type ImportResult struct {
	Sites   int `json:"sites"`
	Devices int `json:"devices"`
}

func (s *Server) csvOptions() devices.CSVParseOptions {
	var opts devices.CSVParseOptions
	if s.Profiles != nil { // a nil ProfileCatalog must stay a nil interface
		opts.Profiles = s.Profiles
	}
	return opts
}

// importDevices creates or updates the sites and devices of a CSV sheet, all or nothing. A sheet
// with problems is 422 and lists every bad row.
func (s *Server) importDevices(c *fiber.Ctx) error {
	body := c.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		return errs.E(errs.KindInvalid, "empty_body", "send the CSV sheet as the request body (Content-Type: text/csv)")
	}
	maxRows := orDefault(s.ImportMaxRows, DefaultImportMaxRows)
	if n := devices.CountCSVRows(body, maxRows); n > maxRows {
		s.Record(c, "device.import", "", errs.E(errs.KindInvalid, "too_many_rows", ""), fmt.Sprintf("more than %d rows", maxRows))
		return writeError(c, fiber.StatusRequestEntityTooLarge, ErrorDetail{Code: "too_many_rows",
			Message: fmt.Sprintf("the sheet has more than %d rows; one import takes at most %d (http.import_max_rows): split it and import the parts; nothing was imported", maxRows, maxRows)})
	}
	// The import stops (and rolls back) when the caller goes away or the server shuts down.
	ctx, cancel := s.untilShutdown(c.UserContext())
	defer cancel()
	sites, devs, err := devices.ParseCSV(bytes.NewReader(body), s.csvOptions())
	if err == nil {
		err = s.Devices.Import(ctx, sites, devs)
	}
	detail := fmt.Sprintf("%d bytes", len(body))
	if err == nil {
		detail = fmt.Sprintf("sites=%d devices=%d", len(sites), len(devs))
	}
	s.Record(c, "device.import", "", err, detail)
	var ie *devices.ImportError
	if errors.As(err, &ie) {
		return writeError(c, fiber.StatusUnprocessableEntity, ErrorDetail{
			Code:      "csv_invalid",
			Message:   fmt.Sprintf("the sheet has %d problem(s); nothing was imported", len(ie.Rows)),
			Rows:      ie.Rows,
			Truncated: ie.Truncated,
		})
	}
	if err != nil {
		return err
	}
	return c.JSON(ImportResult{Sites: len(sites), Devices: len(devs)})
}

// exportDevices writes every site and device as a CSV sheet that import reads back; secrets
// are never written. ?encoding=gbk for old Excel, ?headers=zh for Chinese headers.
func (s *Server) exportDevices(c *fiber.Ctx) error {
	ctx := c.UserContext()
	sites, err := s.Devices.ListSites(ctx, devices.SiteFilter{Scope: scopeOf(c)})
	if err != nil {
		return err
	}
	devs, err := s.Devices.ListDevices(ctx, devices.DeviceFilter{Scope: scopeOf(c)})
	if err != nil {
		return err
	}
	for i := range devs {
		devs[i] = redact(devs[i])
	}
	opts := devices.CSVWriteOptions{Encoding: c.Query("encoding"), ChineseHeaders: c.Query("headers") == "zh"}
	var buf bytes.Buffer
	if err := devices.WriteCSV(&buf, sites, devs, opts); err != nil {
		return err
	}
	s.Record(c, "device.export", "", nil, fmt.Sprintf("sites=%d devices=%d", len(sites), len(devs)))
	charset := "utf-8"
	if opts.Encoding != "" {
		charset = opts.Encoding
	}
	c.Set(fiber.HeaderContentType, "text/csv; charset="+charset)
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="offsite-devices-`+time.Now().Format("20060102")+`.csv"`)
	return c.Send(buf.Bytes())
}

// ---- profiles ----

func (s *Server) listProfiles(c *fiber.Ctx) error {
	list := []profiles.Profile{}
	if s.Profiles != nil {
		list = append(list, s.Profiles.List()...)
	}
	return c.JSON(fiber.Map{"profiles": list})
}

func (s *Server) getProfile(c *fiber.Ctx) error {
	id := c.Params("id")
	if s.Profiles != nil {
		if p, ok := s.Profiles.Get(id); ok {
			return c.JSON(p)
		}
	}
	return errs.E(errs.KindNotFound, "profile_not_found", "profile %q does not exist", id)
}
