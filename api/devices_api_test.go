package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/api"
	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

type siteList struct{ Sites []devices.Site }
type deviceList struct{ Devices []api.DeviceView }

func siteIDs(l siteList) []string {
	var out []string
	for _, s := range l.Sites {
		out = append(out, s.ID)
	}
	return out
}

func deviceIDs(l deviceList) []string {
	var out []string
	for _, d := range l.Devices {
		out = append(out, d.ID)
	}
	return out
}

func TestScope(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, nil)
		h.seed()
		_, officer := h.user("env.officer", auth.RoleOfficer, []string{deptEnv}, nil)
		_, viewer := h.user("region.viewer", auth.RoleViewer, nil, []string{"410703"})

		var sl siteList
		h.do("GET", "/api/v1/sites", officer, nil).json(t, &sl)
		require.Equal(t, []string{"site-env"}, siteIDs(sl))
		h.do("GET", "/api/v1/sites", viewer, nil).json(t, &sl)
		require.Equal(t, []string{"site-mkt"}, siteIDs(sl))
		h.do("GET", "/api/v1/sites", h.admin, nil).json(t, &sl)
		require.Equal(t, []string{"site-env", "site-mkt"}, siteIDs(sl))

		require.Equal(t, 200, h.do("GET", "/api/v1/sites/site-env", officer, nil).status)
		// Another department's site does not exist for the officer, exactly like a missing one.
		other := h.do("GET", "/api/v1/sites/site-mkt", officer, nil)
		missing := h.do("GET", "/api/v1/sites/site-none", officer, nil)
		require.Equal(t, 404, other.status)
		require.Equal(t, 404, missing.status)
		require.Equal(t, "site_not_found", other.errCode(t))
		require.Equal(t, "site_not_found", missing.errCode(t))

		var dl deviceList
		h.do("GET", "/api/v1/devices", officer, nil).json(t, &dl)
		require.Equal(t, []string{"cam-env-1", "cam-env-2"}, deviceIDs(dl))
		h.do("GET", "/api/v1/devices?site=site-mkt", officer, nil).json(t, &dl)
		require.Empty(t, dl.Devices)
		h.do("GET", "/api/v1/devices", viewer, nil).json(t, &dl)
		require.Equal(t, []string{"sen-mkt-1"}, deviceIDs(dl))

		r := h.do("GET", "/api/v1/devices/sen-mkt-1", officer, nil)
		require.Equal(t, 404, r.status)
		require.Equal(t, "device_not_found", r.errCode(t))
		require.Equal(t, 404, h.do("GET", "/api/v1/devices/sen-mkt-1/maintenance", officer, nil).status)
		require.Equal(t, 200, h.do("GET", "/api/v1/devices/cam-env-1", officer, nil).status)
		require.Equal(t, 200, h.do("GET", "/api/v1/devices/sen-mkt-1", viewer, nil).status)
	})
}

func TestSitesAndDevicesCRUD(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, nil)
		h.seed()
		_, maint := h.user("maint", auth.RoleMaintainer, nil, nil)

		// Site round trip.
		var s devices.Site
		r := h.do("GET", "/api/v1/sites/site-env", maint, nil)
		require.Equal(t, 200, r.status)
		r.json(t, &s)
		require.Equal(t, "城东污水处理厂", s.Name)
		require.Equal(t, deptEnv, s.Department)
		s.Name = "城东污水处理厂（二期）"
		s.SupervisionItems = []string{"410702-HB-001"}
		r = h.do("PUT", "/api/v1/sites/site-env", maint, s)
		require.Equal(t, 200, r.status, string(r.body))
		var s2 devices.Site
		h.do("GET", "/api/v1/sites/site-env", maint, nil).json(t, &s2)
		require.Equal(t, s.Name, s2.Name)
		require.Equal(t, []string{"410702-HB-001"}, s2.SupervisionItems)
		require.Equal(t, s.CreatedAt, s2.CreatedAt)
		s.ID = "other"
		r = h.do("PUT", "/api/v1/sites/site-env", maint, s)
		require.Equal(t, 400, r.status)
		require.Equal(t, "id_mismatch", r.errCode(t))
		r = h.do("POST", "/api/v1/sites", maint, map[string]any{"id": "bad", "name": "x", "uscc": "123"})
		require.Equal(t, 400, r.status)
		r = h.do("POST", "/api/v1/sites", maint, map[string]any{"id": "site-env", "name": "dup", "uscc": uscc("91410702MA44A1B2C"), "region_code": "410702"})
		require.Equal(t, 409, r.status, string(r.body))
		r = h.do("DELETE", "/api/v1/sites/site-env", maint, nil)
		require.Equal(t, 409, r.status, "a site with devices is not deleted")

		// Device round trip.
		var d api.DeviceView
		r = h.do("GET", "/api/v1/devices/cam-env-1", maint, nil)
		require.Equal(t, 200, r.status)
		r.json(t, &d)
		require.Equal(t, devices.KindCamera, d.Kind)
		require.NotNil(t, d.Stream)
		require.True(t, d.Stream.HasPassword)
		d.Name = "进水口（东）"
		d.Firmware = "V5.7.9"
		d.Stream.HasPassword = false
		r = h.do("PUT", "/api/v1/devices/cam-env-1", maint, d.Device)
		require.Equal(t, 200, r.status, string(r.body))
		var d2 api.DeviceView
		r.json(t, &d2)
		require.Equal(t, "进水口（东）", d2.Name)
		require.True(t, d2.Stream.HasPassword, "an empty password keeps the stored one")

		var dl deviceList
		h.do("GET", "/api/v1/devices?kind=sensor", maint, nil).json(t, &dl)
		require.Equal(t, []string{"sen-mkt-1"}, deviceIDs(dl))
		h.do("GET", "/api/v1/devices?profile=test-cam&site=site-env", maint, nil).json(t, &dl)
		require.Equal(t, []string{"cam-env-1", "cam-env-2"}, deviceIDs(dl))
		require.Equal(t, 400, h.do("GET", "/api/v1/devices?kind=robot", maint, nil).status)

		// Maintenance log.
		r = h.do("POST", "/api/v1/devices/cam-env-1/maintenance", maint, map[string]any{"kind": "repair", "note": "更换电源"})
		require.Equal(t, 201, r.status, string(r.body))
		r = h.do("POST", "/api/v1/devices/cam-env-1/maintenance", maint, map[string]any{"kind": "dance"})
		require.Equal(t, 400, r.status)
		var ml struct{ Maintenance []devices.MaintenanceEntry }
		h.do("GET", "/api/v1/devices/cam-env-1/maintenance", maint, nil).json(t, &ml)
		require.Len(t, ml.Maintenance, 1)
		require.Equal(t, "maint", ml.Maintenance[0].Actor)
		require.Equal(t, "更换电源", ml.Maintenance[0].Note)
		require.Equal(t, 404, h.do("POST", "/api/v1/devices/nope/maintenance", maint, map[string]any{"kind": "note"}).status)

		// Delete.
		for _, id := range []string{"cam-env-1", "cam-env-2"} {
			require.Equal(t, 204, h.do("DELETE", "/api/v1/devices/"+id, maint, nil).status)
		}
		require.Equal(t, 404, h.do("GET", "/api/v1/devices/cam-env-1", maint, nil).status)
		require.Equal(t, 204, h.do("DELETE", "/api/v1/sites/site-env", maint, nil).status)
		require.Equal(t, 404, h.do("GET", "/api/v1/sites/site-env", maint, nil).status)

		// Each change is in the audit log under the maintainer's name.
		got := map[string]bool{}
		for _, e := range h.auditEntries(audit.Filter{Actor: "maint"}) {
			if e.Result == "ok" {
				got[e.Action+" "+e.Target] = true
			}
		}
		for _, want := range []string{"site.update site-env", "device.update cam-env-1", "device.maintenance cam-env-1",
			"device.delete cam-env-1", "site.delete site-env"} {
			require.True(t, got[want], want)
		}
		failed := h.auditEntries(audit.Filter{Actor: "maint", Action: "site.delete"})
		require.Equal(t, "failed", failed[len(failed)-1].Result, "refused changes are audited too")
	})
}

func TestSecretsNeverReturned(t *testing.T) {
	h := newHarness(t, storetest.SQLite(t, testSchema...), nil)
	var bodies []string
	keep := func(r resp) resp { bodies = append(bodies, string(r.body)); return r }

	keep(h.do("POST", "/api/v1/sites", h.admin, map[string]any{"id": "s1", "name": "站点", "uscc": uscc("91410702MA44A1B2C"), "region_code": "410702", "department": deptEnv}))
	r := keep(h.do("POST", "/api/v1/devices", h.admin, map[string]any{"id": "c1", "site_id": "s1", "kind": "camera", "profile": "test-cam",
		"stream": map[string]any{"host": "10.0.0.1", "username": "u", "password": "Cam-Pass-Secret-1"}}))
	require.Equal(t, 201, r.status, string(r.body))
	r = keep(h.do("POST", "/api/v1/devices", h.admin, map[string]any{"id": "m1", "site_id": "s1", "kind": "sensor", "profile": "test-sensor",
		"mqtt": map[string]any{"username": "m1", "secret": "Mqtt-Secret-Value-1"}}))
	require.Equal(t, 201, r.status, string(r.body))
	keep(h.do("PUT", "/api/v1/devices/c1", h.admin, map[string]any{"site_id": "s1", "kind": "camera", "profile": "test-cam",
		"stream": map[string]any{"host": "10.0.0.1", "password": "Cam-Pass-Secret-2"}}))
	keep(h.do("GET", "/api/v1/devices", h.admin, nil))
	keep(h.do("GET", "/api/v1/devices/c1", h.admin, nil))
	keep(h.do("GET", "/api/v1/devices/m1", h.admin, nil))
	keep(h.do("GET", "/api/v1/devices/export", h.admin, nil))
	keep(h.do("POST", "/api/v1/users", h.admin, map[string]any{"username": "u1", "role": "viewer", "password": "User-Pass-Secret-1"}))
	keep(h.do("GET", "/api/v1/users", h.admin, nil))
	keep(h.do("GET", "/api/v1/audit?limit=5000", h.admin, nil))

	all := strings.Join(bodies, "\n")
	for _, secret := range []string{"Cam-Pass-Secret-1", "Cam-Pass-Secret-2", "Mqtt-Secret-Value-1", "User-Pass-Secret-1", "$argon2id", "$sha256$", "password_hash"} {
		require.NotContains(t, all, secret)
	}
	require.NotContains(t, h.logs.String(), "Cam-Pass-Secret-1")
	require.Contains(t, all, `"has_password":true`)
}

func TestCSVImport(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, nil)
		const header = "site_id,site_name,uscc,region_code,department,device_id,kind,name,profile,firmware,rtsp_host\n"
		good := uscc("91410702MA44A1B2C")
		bad := header +
			fmt.Sprintf("s1,站点一,%s,410702,%s,c1,camera,一号,test-cam,V5.7.1,10.0.0.1\n", good, deptEnv) +
			fmt.Sprintf("s2,站点二,%s,410702,%s,c2,robot,二号,test-cam,V5.7.1,10.0.0.2\n", good, deptEnv) +
			"s3,站点三,91410702MA44A1B2X,410702,dept,c3,camera,三号,test-cam,V5.7.1,10.0.0.3\n"
		r := h.do("POST", "/api/v1/devices/import", h.admin, bad)
		require.Equal(t, 422, r.status, string(r.body))
		var eb api.ErrorBody
		r.json(t, &eb)
		require.Equal(t, "csv_invalid", eb.Error.Code)
		rows := map[int]bool{}
		for _, re := range eb.Error.Rows {
			rows[re.Row] = true
			require.NotEmpty(t, re.Reason)
		}
		require.Equal(t, map[int]bool{3: true, 4: true}, rows, "rows 3 and 4 are bad; the header is row 1")

		// Nothing of a rejected sheet is imported.
		var dl deviceList
		h.do("GET", "/api/v1/devices", h.admin, nil).json(t, &dl)
		require.Empty(t, dl.Devices)

		ok := header +
			fmt.Sprintf("s1,站点一,%s,410702,%s,c1,camera,一号,test-cam,V5.7.1,10.0.0.1\n", good, deptEnv) +
			fmt.Sprintf("s1,站点一,%s,410702,%s,c2,camera,二号,test-cam,V5.5.0,10.0.0.2\n", good, deptEnv)
		r = h.do("POST", "/api/v1/devices/import", h.admin, ok)
		require.Equal(t, 200, r.status, string(r.body))
		var res api.ImportResult
		r.json(t, &res)
		require.Equal(t, api.ImportResult{Sites: 1, Devices: 2}, res)

		// Export reads back.
		r = h.do("GET", "/api/v1/devices/export", h.admin, nil)
		require.Equal(t, 200, r.status)
		require.Contains(t, r.header.Get("Content-Type"), "text/csv")
		require.Contains(t, string(r.body), "c2")
		require.Equal(t, 200, h.do("POST", "/api/v1/devices/import", h.admin, string(r.body)).status, "an export imports again")

		require.Equal(t, 400, h.do("POST", "/api/v1/devices/import", h.admin, "").status)

		imports := h.auditEntries(audit.Filter{Action: "device.import"})
		require.Len(t, imports, 3)
		require.Equal(t, "failed", imports[2].Result)
		require.Equal(t, "ok", imports[1].Result)
		require.Len(t, h.auditEntries(audit.Filter{Action: "device.export"}), 1)
	})
}

func TestFirmwareCheck(t *testing.T) {
	h := newHarness(t, storetest.SQLite(t, testSchema...), nil)
	h.seed()
	var d api.DeviceView
	h.do("GET", "/api/v1/devices/cam-env-2", h.admin, nil).json(t, &d)
	require.NotNil(t, d.FirmwareCheck)
	require.Equal(t, "bad", d.FirmwareCheck.Status)
	require.Contains(t, d.FirmwareCheck.Reason, "CVE-2021-36260")

	var dl deviceList
	h.do("GET", "/api/v1/devices?firmware=flagged", h.admin, nil).json(t, &dl)
	require.Equal(t, []string{"cam-env-2"}, deviceIDs(dl))
	require.Equal(t, 400, h.do("GET", "/api/v1/devices?firmware=all", h.admin, nil).status)

	var pl struct{ Profiles []map[string]any }
	h.do("GET", "/api/v1/profiles", h.admin, nil).json(t, &pl)
	require.Len(t, pl.Profiles, 2)
	r := h.do("GET", "/api/v1/profiles/none", h.admin, nil)
	require.Equal(t, 404, r.status)
	require.Equal(t, "profile_not_found", r.errCode(t))
}

func TestAuditEndpoint(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, nil)
		h.seed()
		var out struct{ Entries []audit.Entry }
		r := h.do("GET", "/api/v1/audit?action=site.&actor=admin", h.admin, nil)
		require.Equal(t, 200, r.status, string(r.body))
		r.json(t, &out)
		require.Len(t, out.Entries, 2)
		for _, e := range out.Entries {
			require.Equal(t, "site.create", e.Action)
			require.Equal(t, "admin", e.Actor)
			require.Equal(t, "admin", e.Role)
			require.Equal(t, "ok", e.Result)
			require.NotEmpty(t, e.IP)
		}
		h.do("GET", "/api/v1/audit?action=auth.login&limit=1", h.admin, nil).json(t, &out)
		require.Len(t, out.Entries, 1)

		now := h.clock.Now()
		from := now.Add(-time1m).UTC().Format("2006-01-02T15:04:05Z")
		h.do("GET", "/api/v1/audit?action=device.create&from="+from+"&to="+fmt.Sprint(now.Add(time1m).UnixMilli()), h.admin, nil).json(t, &out)
		require.Len(t, out.Entries, 3)
		h.do("GET", "/api/v1/audit?action=device.create&to="+fmt.Sprint(now.Add(-time1m).UnixMilli()), h.admin, nil).json(t, &out)
		require.Empty(t, out.Entries)

		for _, q := range []string{"from=yesterday", "limit=0", "limit=abc", "from=2026-11-28&to=2026-11-27"} {
			r := h.do("GET", "/api/v1/audit?"+q, h.admin, nil)
			require.Equal(t, 400, r.status, q)
		}
	})
}
