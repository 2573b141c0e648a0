package devices_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/devices"
	profiles "github.com/offsite-gw/offsite/firmware-profiles"
	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// registry is a stand-in for profiles.Registry.
type registry map[string]profiles.Profile

func (r registry) Get(id string) (profiles.Profile, bool) { p, ok := r[id]; return p, ok }

var testProfiles = registry{
	"hikvision-ipc": {ID: "hikvision-ipc", Kind: "camera"},
	"dahua-ipc":     {ID: "dahua-ipc", Kind: "camera"},
	"generic-json":  {ID: "generic-json", Kind: "sensor"},
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newStore(t *testing.T, db *store.DB) (*devices.SQLStore, *clock) {
	t.Helper()
	sealer, err := devices.NewSealer(sm4Key)
	require.NoError(t, err)
	c := &clock{t: time.Date(2026, 11, 27, 10, 15, 4, 123_456_789, time.UTC)}
	return &devices.SQLStore{DB: db, Sealer: sealer, Profiles: testProfiles, Now: c.Now, Argon2: cheap}, c
}

func site(id, region, dept string) devices.Site {
	s := validSite()
	s.ID, s.RegionCode, s.Department = id, region, dept
	return s
}

func requireKind(t *testing.T, err error, kind errs.Kind, code string) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, kind, errs.KindOf(err), "%v", err)
	require.Equal(t, code, errs.CodeOf(err), "%v", err)
}

func TestSiteCRUD(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		st, clk := newStore(t, db)

		s := validSite()
		require.NoError(t, st.CreateSite(ctx, &s))
		require.Equal(t, time.Date(2026, 11, 27, 10, 15, 4, 123_000_000, time.UTC), s.CreatedAt, "millisecond precision")
		got, err := st.GetSite(ctx, "hall-01")
		require.NoError(t, err)
		require.Equal(t, s, got)

		dup := validSite()
		requireKind(t, st.CreateSite(ctx, &dup), errs.KindConflict, "site_exists")
		bad := validSite()
		bad.ID, bad.USCC = "hall-02", "91350100M000100Y44"
		requireKind(t, st.CreateSite(ctx, &bad), errs.KindInvalid, "invalid_site")

		clk.Add(time.Hour)
		upd := got
		upd.Name = "红旗区政务服务中心（新址）"
		upd.Latitude, upd.Longitude = nil, nil
		upd.SupervisionItems = nil
		require.NoError(t, st.UpdateSite(ctx, &upd))
		got, err = st.GetSite(ctx, "hall-01")
		require.NoError(t, err)
		require.Equal(t, "红旗区政务服务中心（新址）", got.Name)
		require.Nil(t, got.Latitude)
		require.Equal(t, []string{}, got.SupervisionItems)
		require.Equal(t, s.CreatedAt, got.CreatedAt)
		require.Equal(t, s.CreatedAt.Add(time.Hour), got.UpdatedAt)
		require.Equal(t, upd, got)

		missing := validSite()
		missing.ID = "nope"
		requireKind(t, st.UpdateSite(ctx, &missing), errs.KindNotFound, "site_not_found")
		_, err = st.GetSite(ctx, "nope")
		requireKind(t, err, errs.KindNotFound, "site_not_found")

		list, err := st.ListSites(ctx, devices.SiteFilter{})
		require.NoError(t, err)
		require.Len(t, list, 1)

		require.NoError(t, st.DeleteSite(ctx, "hall-01"))
		requireKind(t, st.DeleteSite(ctx, "hall-01"), errs.KindNotFound, "site_not_found")
		list, err = st.ListSites(ctx, devices.SiteFilter{})
		require.NoError(t, err)
		require.Empty(t, list)
	})
}

func TestDeviceCRUDAndSecrets(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		st, clk := newStore(t, db)
		s := validSite()
		require.NoError(t, st.CreateSite(ctx, &s))

		cam := validCamera()
		require.NoError(t, st.CreateDevice(ctx, &cam))
		require.Empty(t, cam.Stream.Password, "cleared after the write")
		require.True(t, cam.Stream.HasPassword)

		sensor := validSensor()
		require.NoError(t, st.CreateDevice(ctx, &sensor))
		require.Empty(t, sensor.MQTT.Secret)

		// Reads never return secrets.
		got, err := st.GetDevice(ctx, "cam-01")
		require.NoError(t, err)
		require.Equal(t, cam, got)
		require.Empty(t, got.Stream.Password)
		require.True(t, got.Stream.HasPassword)
		require.Equal(t, "192.168.1.64", got.Stream.Host)
		gotSensor, err := st.GetDevice(ctx, "dust-01")
		require.NoError(t, err)
		require.Equal(t, sensor, gotSensor)
		require.Empty(t, gotSensor.MQTT.Secret)
		all, err := st.ListDevices(ctx, devices.DeviceFilter{})
		require.NoError(t, err)
		require.Len(t, all, 2)
		js, err := json.Marshal(all)
		require.NoError(t, err)
		require.NotContains(t, string(js), "Hik12345!")
		require.NotContains(t, string(js), "s3cret")
		require.NotContains(t, string(js), "argon2")
		require.NotContains(t, string(js), "sm4gcm")

		// At rest: sealed and hashed.
		var enc, hash string
		require.NoError(t, db.QueryRow(ctx, `SELECT rtsp_password_enc FROM devices WHERE id = ?`, "cam-01").Scan(&enc))
		require.True(t, strings.HasPrefix(enc, "sm4gcm:v1:"), enc)
		require.NotContains(t, enc, "Hik12345!")
		require.NoError(t, db.QueryRow(ctx, `SELECT mqtt_secret_hash FROM devices WHERE id = ?`, "dust-01").Scan(&hash))
		require.True(t, strings.HasPrefix(hash, "$argon2id$v=19$"), hash)

		pw, err := st.CameraPassword(ctx, "cam-01")
		require.NoError(t, err)
		require.Equal(t, "Hik12345!", pw)
		pw, err = st.CameraPassword(ctx, "dust-01")
		require.NoError(t, err)
		require.Empty(t, pw)
		_, err = st.CameraPassword(ctx, "nope")
		requireKind(t, err, errs.KindNotFound, "device_not_found")

		// A different key cannot read it, and says so.
		other, err := devices.NewSealer(aesKey)
		require.NoError(t, err)
		st2 := &devices.SQLStore{DB: db, Sealer: other}
		_, err = st2.CameraPassword(ctx, "cam-01")
		requireKind(t, err, errs.KindInternal, "secrets_key_mismatch")

		// MQTT logins.
		dev, err := st.CheckMQTT(ctx, "dust-01", "s3cret-s3cret-s3cret")
		require.NoError(t, err)
		require.Equal(t, "dust-01", dev.ID)
		require.Empty(t, dev.MQTT.Secret)
		_, errWrong := st.CheckMQTT(ctx, "dust-01", "s3cret-s3cret-wrong")
		requireKind(t, errWrong, errs.KindUnauthorized, "mqtt_login_refused")
		_, errUnknown := st.CheckMQTT(ctx, "ghost", "s3cret-s3cret-s3cret")
		requireKind(t, errUnknown, errs.KindUnauthorized, "mqtt_login_refused")
		require.Equal(t, errWrong.Error(), errUnknown.Error(), "unknown user and wrong secret look the same")
		_, err = st.CheckMQTT(ctx, "", "")
		requireKind(t, err, errs.KindUnauthorized, "mqtt_login_refused")

		// Update with empty password and secret keeps them.
		clk.Add(time.Minute)
		upd := got
		upd.Name = "大厅全景（东）"
		upd.Stream.Port = 8554
		require.NoError(t, st.UpdateDevice(ctx, &upd))
		require.True(t, upd.Stream.HasPassword)
		require.Equal(t, cam.CreatedAt, upd.CreatedAt)
		pw, err = st.CameraPassword(ctx, "cam-01")
		require.NoError(t, err)
		require.Equal(t, "Hik12345!", pw)
		got, err = st.GetDevice(ctx, "cam-01")
		require.NoError(t, err)
		require.Equal(t, upd, got)

		updSensor := gotSensor
		updSensor.MQTT = &devices.MQTTCredentials{Username: "dust-01"}
		updSensor.Firmware = "1.2.0"
		require.NoError(t, st.UpdateDevice(ctx, &updSensor))
		_, err = st.CheckMQTT(ctx, "dust-01", "s3cret-s3cret-s3cret")
		require.NoError(t, err, "secret kept")

		// A new password and secret replace the old ones.
		upd.Stream.Password = "NewPass-2026"
		require.NoError(t, st.UpdateDevice(ctx, &upd))
		pw, err = st.CameraPassword(ctx, "cam-01")
		require.NoError(t, err)
		require.Equal(t, "NewPass-2026", pw)
		updSensor.MQTT.Secret = "rotated-rotated-rotated"
		require.NoError(t, st.UpdateDevice(ctx, &updSensor))
		_, err = st.CheckMQTT(ctx, "dust-01", "s3cret-s3cret-s3cret")
		requireKind(t, err, errs.KindUnauthorized, "mqtt_login_refused")
		_, err = st.CheckMQTT(ctx, "dust-01", "rotated-rotated-rotated")
		require.NoError(t, err)

		// Removing MQTT removes the login.
		updSensor.MQTT = nil
		require.NoError(t, st.UpdateDevice(ctx, &updSensor))
		_, err = st.CheckMQTT(ctx, "dust-01", "rotated-rotated-rotated")
		requireKind(t, err, errs.KindUnauthorized, "mqtt_login_refused")

		// Conflicts and invalid references.
		dupCam := validCamera()
		requireKind(t, st.CreateDevice(ctx, &dupCam), errs.KindConflict, "device_exists")
		s2 := validSensor()
		s2.ID = "dust-02"
		s2.MQTT.Username = "shared-user"
		require.NoError(t, st.CreateDevice(ctx, &s2))
		s3 := validSensor()
		s3.ID = "dust-03"
		s3.MQTT.Username = "shared-user"
		requireKind(t, st.CreateDevice(ctx, &s3), errs.KindConflict, "mqtt_username_taken")
		noSecret := validSensor()
		noSecret.ID, noSecret.MQTT = "dust-04", &devices.MQTTCredentials{Username: "dust-04"}
		requireKind(t, st.CreateDevice(ctx, &noSecret), errs.KindInvalid, "mqtt_secret_required")
		orphan := validCamera()
		orphan.ID, orphan.SiteID = "cam-09", "no-such-site"
		requireKind(t, st.CreateDevice(ctx, &orphan), errs.KindInvalid, "unknown_site")
		ghost := validCamera()
		ghost.ID = "cam-ghost"
		requireKind(t, st.UpdateDevice(ctx, &ghost), errs.KindNotFound, "device_not_found")

		// Profiles must exist and fit the kind.
		unknown := validCamera()
		unknown.ID, unknown.Profile = "cam-02", "acme-9000"
		requireKind(t, st.CreateDevice(ctx, &unknown), errs.KindInvalid, "unknown_profile")
		wrongKind := validCamera()
		wrongKind.ID, wrongKind.Profile = "cam-02", "generic-json"
		err = st.CreateDevice(ctx, &wrongKind)
		requireKind(t, err, errs.KindInvalid, "unknown_profile")
		require.ErrorContains(t, err, "is for a sensor, but the device is a camera")

		// Without a sealer, a password cannot be stored.
		noKey := &devices.SQLStore{DB: db, Argon2: cheap}
		c3 := validCamera()
		c3.ID = "cam-03"
		requireKind(t, noKey.CreateDevice(ctx, &c3), errs.KindUnavailable, "secrets_key_missing")

		// A site with devices cannot go.
		requireKind(t, st.DeleteSite(ctx, "hall-01"), errs.KindConflict, "site_has_devices")
		for _, id := range []string{"cam-01", "dust-01", "dust-02"} {
			require.NoError(t, st.DeleteDevice(ctx, id))
		}
		requireKind(t, st.DeleteDevice(ctx, "cam-01"), errs.KindNotFound, "device_not_found")
		require.NoError(t, st.DeleteSite(ctx, "hall-01"))
	})
}

func TestScopes(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		st, _ := newStore(t, db)
		const market, eco = "市市场监督管理局", "市生态环境局"
		for _, s := range []devices.Site{
			site("xx-market", "410702", market), // 新乡 红旗区
			site("xx-plant", "410711", eco),     // 新乡 牧野区
			site("zz-hall", "410102", market),   // 郑州 中原区
			site("fz-hall", "350102", eco),      // 福州 鼓楼区
		} {
			require.NoError(t, st.CreateSite(ctx, &s))
			d := devices.Device{ID: "gw-" + s.ID, SiteID: s.ID, Kind: devices.KindGateway}
			require.NoError(t, st.CreateDevice(ctx, &d))
		}
		ids := func(scope devices.Scope, f devices.SiteFilter) []string {
			plain := f.Department == "" && f.RegionCode == ""
			f.Scope = scope
			sites, err := st.ListSites(ctx, f)
			require.NoError(t, err)
			devs, err := st.ListDevices(ctx, devices.DeviceFilter{Scope: scope})
			require.NoError(t, err)
			var out []string
			for i, s := range sites {
				out = append(out, s.ID)
				if plain {
					require.Equal(t, "gw-"+s.ID, devs[i].ID, "devices follow their site's scope")
					require.True(t, scope.AllowsSite(s))
				}
			}
			if plain {
				require.Len(t, devs, len(sites))
			}
			return out
		}
		require.Equal(t, []string{"fz-hall", "xx-market", "xx-plant", "zz-hall"}, ids(devices.Scope{}, devices.SiteFilter{}))
		require.Equal(t, []string{"xx-market", "xx-plant", "zz-hall"}, ids(devices.Scope{Regions: []string{"41"}}, devices.SiteFilter{}))
		require.Equal(t, []string{"xx-market", "xx-plant"}, ids(devices.Scope{Regions: []string{"4107"}}, devices.SiteFilter{}))
		require.Equal(t, []string{"fz-hall", "xx-market"}, ids(devices.Scope{Regions: []string{"410702", "35"}}, devices.SiteFilter{}))
		require.Equal(t, []string{"xx-market", "zz-hall"}, ids(devices.Scope{Departments: []string{market}}, devices.SiteFilter{}))
		require.Equal(t, []string{"xx-plant"}, ids(devices.Scope{Departments: []string{eco}, Regions: []string{"41"}}, devices.SiteFilter{}))
		require.Empty(t, ids(devices.Scope{Regions: []string{""}}, devices.SiteFilter{}), "blank entries deny")
		require.Empty(t, ids(devices.Scope{Departments: []string{""}}, devices.SiteFilter{}), "blank entries deny")
		require.Empty(t, ids(devices.Scope{Regions: []string{"4107'--"}}, devices.SiteFilter{}))
		// Filters narrow within the scope, never widen it.
		require.Equal(t, []string{"xx-market"}, ids(devices.Scope{Regions: []string{"4107"}}, devices.SiteFilter{Department: market}))
		require.Empty(t, ids(devices.Scope{Regions: []string{"35"}}, devices.SiteFilter{RegionCode: "41"}))
		require.Equal(t, []string{"zz-hall"}, ids(devices.Scope{}, devices.SiteFilter{RegionCode: "4101"}))

		byKind, err := st.ListDevices(ctx, devices.DeviceFilter{SiteID: "xx-plant", Kind: devices.KindGateway})
		require.NoError(t, err)
		require.Len(t, byKind, 1)
		none, err := st.ListDevices(ctx, devices.DeviceFilter{Kind: devices.KindCamera})
		require.NoError(t, err)
		require.Empty(t, none)
		require.NotNil(t, none, "an empty list, not null, in JSON")
	})
}

type snapshot struct {
	Sites   []devices.Site
	Devices []devices.Device
	Raw     []string
}

func takeSnapshot(t *testing.T, st *devices.SQLStore, db *store.DB) snapshot {
	ctx := context.Background()
	sites, err := st.ListSites(ctx, devices.SiteFilter{})
	require.NoError(t, err)
	devs, err := st.ListDevices(ctx, devices.DeviceFilter{})
	require.NoError(t, err)
	rows, err := db.Query(ctx, `SELECT id, rtsp_password_enc, mqtt_secret_hash FROM devices ORDER BY id`)
	require.NoError(t, err)
	defer rows.Close()
	var raw []string
	for rows.Next() {
		var a, b, c string
		require.NoError(t, rows.Scan(&a, &b, &c))
		raw = append(raw, a+"|"+b+"|"+c)
	}
	require.NoError(t, rows.Err())
	return snapshot{sites, devs, raw}
}

func TestImportAllOrNothing(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		st, clk := newStore(t, db)
		s := validSite()
		require.NoError(t, st.CreateSite(ctx, &s))
		cam := validCamera()
		require.NoError(t, st.CreateDevice(ctx, &cam))
		taken := validSensor()
		require.NoError(t, st.CreateDevice(ctx, &taken))
		before := takeSnapshot(t, st, db)

		batch := func() ([]devices.Site, []devices.Device) {
			s1 := validSite()
			s1.Name = "改名后的政务服务中心"
			s2 := site("market-02", "410711", "市市场监督管理局")
			c1 := validCamera() // update, no password: keeps the stored one
			c1.Stream.Password = ""
			c1.Name = "大厅全景（改）"
			c2 := validCamera()
			c2.ID, c2.SiteID, c2.Stream.Password = "cam-02", "market-02", "Dahua-888"
			c2.Profile = "dahua-ipc"
			sn := validSensor()
			sn.ID, sn.SiteID, sn.MQTT = "dust-02", "market-02", &devices.MQTTCredentials{Username: "dust-02", Secret: "dust-02-secret-xyz"}
			return []devices.Site{s1, s2}, []devices.Device{c1, c2, sn}
		}
		clk.Add(time.Hour)

		// Caught in validation before the transaction.
		sites, devs := batch()
		devs[1].Kind = "robot"
		err := st.Import(ctx, sites, devs)
		requireKind(t, err, errs.KindInvalid, "import_invalid")
		require.ErrorContains(t, err, "nothing was imported")
		require.Equal(t, before, takeSnapshot(t, st, db))

		// Caught in the database half-way: the last device's MQTT username is taken.
		sites, devs = batch()
		devs[2].MQTT.Username = "dust-01"
		err = st.Import(ctx, sites, devs)
		requireKind(t, err, errs.KindConflict, "mqtt_username_taken")
		require.ErrorContains(t, err, "nothing was imported")
		require.Equal(t, before, takeSnapshot(t, st, db))

		// A device on a site that is neither in the batch nor stored.
		sites, devs = batch()
		devs[2].SiteID = "elsewhere"
		requireKind(t, st.Import(ctx, sites, devs), errs.KindInvalid, "unknown_site")
		require.Equal(t, before, takeSnapshot(t, st, db))

		// Twice the same device.
		sites, devs = batch()
		devs = append(devs, devs[1])
		requireKind(t, st.Import(ctx, sites, devs), errs.KindInvalid, "import_invalid")
		require.Equal(t, before, takeSnapshot(t, st, db))

		// The good batch goes in whole.
		sites, devs = batch()
		require.NoError(t, st.Import(ctx, sites, devs))
		after := takeSnapshot(t, st, db)
		require.Len(t, after.Sites, 2)
		require.Len(t, after.Devices, 4)
		got, err := st.GetSite(ctx, "hall-01")
		require.NoError(t, err)
		require.Equal(t, "改名后的政务服务中心", got.Name)
		require.Equal(t, s.CreatedAt, got.CreatedAt)
		require.Equal(t, s.CreatedAt.Add(time.Hour), got.UpdatedAt)
		pw, err := st.CameraPassword(ctx, "cam-01")
		require.NoError(t, err)
		require.Equal(t, "Hik12345!", pw, "an empty password in an import keeps the stored one")
		pw, err = st.CameraPassword(ctx, "cam-02")
		require.NoError(t, err)
		require.Equal(t, "Dahua-888", pw)
		_, err = st.CheckMQTT(ctx, "dust-02", "dust-02-secret-xyz")
		require.NoError(t, err)
		gotCam, err := st.GetDevice(ctx, "cam-02")
		require.NoError(t, err)
		require.Equal(t, devs[1], gotCam, "the passed devices carry what was stored")

		// Importing what was exported (no secrets) changes no credential.
		require.NoError(t, st.Import(ctx, after.Sites, after.Devices))
		again := takeSnapshot(t, st, db)
		require.Equal(t, after.Raw, again.Raw)
	})
}

func TestMaintenance(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		st, clk := newStore(t, db)
		s := validSite()
		require.NoError(t, st.CreateSite(ctx, &s))
		cam := validCamera()
		require.NoError(t, st.CreateDevice(ctx, &cam))

		t0 := clk.Now()
		e1 := devices.MaintenanceEntry{DeviceID: "cam-01", Actor: "张工", Kind: "install", Note: "安装于大厅东北角", At: t0.Add(-48 * time.Hour)}
		require.NoError(t, st.AddMaintenance(ctx, &e1))
		require.NotZero(t, e1.ID)
		e2 := devices.MaintenanceEntry{DeviceID: "cam-01", Actor: "李工", Kind: "Repair", Note: "更换电源适配器"}
		require.NoError(t, st.AddMaintenance(ctx, &e2))
		require.Equal(t, time.UnixMilli(t0.UnixMilli()).UTC(), e2.At, "defaults to now")
		require.Equal(t, "repair", e2.Kind)
		e3 := devices.MaintenanceEntry{DeviceID: "cam-01", Actor: "张工", Kind: "firmware", Note: "V5.7.3 → V5.7.15", At: t0.Add(-24 * time.Hour)}
		require.NoError(t, st.AddMaintenance(ctx, &e3))

		log, err := st.ListMaintenance(ctx, "cam-01")
		require.NoError(t, err)
		require.Equal(t, []devices.MaintenanceEntry{e2, e3, e1}, log, "newest first")

		requireKind(t, st.AddMaintenance(ctx, &devices.MaintenanceEntry{DeviceID: "nope", Actor: "x", Kind: "note"}), errs.KindNotFound, "device_not_found")
		requireKind(t, st.AddMaintenance(ctx, &devices.MaintenanceEntry{DeviceID: "cam-01", Actor: "x", Kind: "party"}), errs.KindInvalid, "invalid_maintenance")
		requireKind(t, st.AddMaintenance(ctx, &devices.MaintenanceEntry{DeviceID: "cam-01", Kind: "note"}), errs.KindInvalid, "invalid_maintenance")
		_, err = st.ListMaintenance(ctx, "nope")
		requireKind(t, err, errs.KindNotFound, "device_not_found")

		require.NoError(t, st.DeleteDevice(ctx, "cam-01"))
		var n int
		require.NoError(t, db.QueryRow(ctx, `SELECT COUNT(*) FROM maintenance`).Scan(&n))
		require.Zero(t, n, "the log goes with its device")
	})
}

// The real cost parameters work end to end (the other tests use cheap ones): a secret a person
// made up takes argon2id at the default cost; a generated one, too long and random to guess,
// takes the fast salted SHA-256. Both log in, and a wrong secret does not.
func TestCheckMQTTDefaultCost(t *testing.T) {
	db := storetest.SQLite(t, testSchema...)
	ctx := context.Background()
	st := &devices.SQLStore{DB: db}
	s := validSite()
	require.NoError(t, st.CreateSite(ctx, &s))
	for i, c := range []struct{ secret, hash string }{
		{"dust-sensor-01", "$m=16384,t=1,p=1$"},
		{devices.GenerateSecret(), "$sha256$"},
	} {
		d := validSensor()
		d.ID, d.MQTT.Username, d.MQTT.Secret = fmt.Sprintf("dust-%d", i), fmt.Sprintf("dust-%d", i), c.secret
		require.NoError(t, st.CreateDevice(ctx, &d))
		var hash string
		require.NoError(t, db.QueryRow(ctx, `SELECT mqtt_secret_hash FROM devices WHERE id = ?`, d.ID).Scan(&hash))
		require.Contains(t, hash, c.hash)
		_, err := st.CheckMQTT(ctx, d.MQTT.Username, c.secret)
		require.NoError(t, err)
		_, err = st.CheckMQTT(ctx, d.MQTT.Username, c.secret+"x")
		requireKind(t, err, errs.KindUnauthorized, "mqtt_login_refused")
	}
}
