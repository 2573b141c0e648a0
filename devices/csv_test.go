package devices_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/unicode"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

const enHeader = "site_id,site_name,uscc,region_code,address,latitude,longitude,department,supervision_items," +
	"device_id,kind,name,vendor,model,profile,firmware,serial,installed_on," +
	"rtsp_host,rtsp_port,rtsp_username,rtsp_password,rtsp_channel,rtsp_stream,mqtt_username,mqtt_secret\n"

const zhHeader = "站点编号,站点名称,统一社会信用代码,行政区划代码,地址,纬度,经度,主管部门,监管事项编码," +
	"设备编号,设备类型,设备名称,厂商,型号,设备档案/profile,固件版本,序列号,安装日期," +
	"视频地址,视频端口,视频用户名,视频密码,通道号,码流,MQTT用户名,MQTT密钥\n"

// Rows shared by the tests: one market with a camera and a sensor, one kitchen with a camera.
const rows = "" +
	"mkt-01,新乡市红旗区农贸市场,91350100M000100Y43,410702,新乡市红旗区平原路88号,35.30,113.92,市市场监督管理局,330217001000；330217002000,cam-01,camera,东门入口,海康威视,DS-2CD3T47,hikvision-ipc,V5.7.3,SN0001,2024-03-15,192.168.1.64,554,admin,Hik12345!,1,main,,\n" +
	"mkt-01,新乡市红旗区农贸市场,91350100M000100Y43,410702,新乡市红旗区平原路88号,35.30,113.92,市市场监督管理局,330217001000;330217002000,dust-01,sensor,扬尘监测仪,,,generic-json,,,,,,,,,,dust-01,dust-01-secret-abc\n" +
	"kit-02,牧野区第一中学食堂,914403001922038216,410711,新乡市牧野区,,,市市场监督管理局,,cam-02,camera,后厨明厨亮灶,大华,DH-IPC-HFW,dahua-ipc,,,,10.0.0.8,,,,2,sub,,\n"

func parse(t *testing.T, data []byte) ([]devices.Site, []devices.Device, error) {
	t.Helper()
	return devices.ParseCSV(bytes.NewReader(data), devices.CSVParseOptions{Profiles: testProfiles})
}

func requireRowErrors(t *testing.T, err error, want ...devices.RowError) *devices.ImportError {
	t.Helper()
	var ie *devices.ImportError
	require.ErrorAs(t, err, &ie)
	require.True(t, errs.Is(err, errs.KindInvalid))
	for _, w := range want {
		found := false
		for _, r := range ie.Rows {
			if r.Row == w.Row && r.Column == w.Column && strings.Contains(r.Reason, w.Reason) {
				found = true
			}
		}
		require.True(t, found, "want %v among %v", w, ie.Rows)
	}
	return ie
}

func checkParsed(t *testing.T, sites []devices.Site, devs []devices.Device) {
	t.Helper()
	require.Len(t, sites, 2)
	require.Len(t, devs, 3)
	require.Equal(t, "新乡市红旗区农贸市场", sites[0].Name)
	require.Equal(t, "91350100M000100Y43", sites[0].USCC)
	require.Equal(t, []string{"330217001000", "330217002000"}, sites[0].SupervisionItems, "； and ; both separate")
	require.InDelta(t, 35.30, *sites[0].Latitude, 1e-9)
	require.Equal(t, "市市场监督管理局", sites[0].Department)
	require.Nil(t, sites[1].Latitude)
	require.Equal(t, []string{}, sites[1].SupervisionItems)

	require.Equal(t, "cam-01", devs[0].ID)
	require.Equal(t, "mkt-01", devs[0].SiteID)
	require.Equal(t, "东门入口", devs[0].Name)
	require.Equal(t, "海康威视", devs[0].Vendor)
	require.Equal(t, &devices.StreamSettings{Host: "192.168.1.64", Port: 554, Username: "admin", Password: "Hik12345!", Channel: 1, Stream: "main"}, devs[0].Stream)
	require.Nil(t, devs[0].MQTT)
	require.Equal(t, devices.KindSensor, devs[1].Kind)
	require.Nil(t, devs[1].Stream)
	require.Equal(t, &devices.MQTTCredentials{Username: "dust-01", Secret: "dust-01-secret-abc"}, devs[1].MQTT)
	require.Equal(t, "kit-02", devs[2].SiteID)
	require.Equal(t, "sub", devs[2].Stream.Stream)
	require.Equal(t, 2, devs[2].Stream.Channel)
}

func TestParseCSV(t *testing.T) {
	sites, devs, err := parse(t, []byte(enHeader+rows))
	require.NoError(t, err)
	checkParsed(t, sites, devs)
}

func TestParseCSVChineseHeadersBOMAndCRLF(t *testing.T) {
	data := "\uFEFF" + strings.ReplaceAll(zhHeader+rows, "\n", "\r\n")
	sites, devs, err := parse(t, []byte(data))
	require.NoError(t, err)
	checkParsed(t, sites, devs)
}

func TestParseCSVGBK(t *testing.T) {
	gbk, err := simplifiedchinese.GBK.NewEncoder().String(zhHeader + rows)
	require.NoError(t, err)
	require.False(t, strings.Contains(gbk, "农贸市场"), "really re-encoded")
	sites, devs, err := parse(t, []byte(gbk))
	require.NoError(t, err)
	checkParsed(t, sites, devs)
	require.Equal(t, "牧野区第一中学食堂", sites[1].Name)
	require.Equal(t, "后厨明厨亮灶", devs[2].Name)
}

func TestParseCSVUTF16Tabs(t *testing.T) {
	// Excel's "Unicode text": UTF-16 LE with BOM, tab-separated.
	text := strings.ReplaceAll(zhHeader+rows, ",", "\t")
	enc, err := unicode.UTF16(unicode.LittleEndian, unicode.UseBOM).NewEncoder().String(text)
	require.NoError(t, err)
	sites, devs, err := parse(t, []byte(enc))
	require.NoError(t, err)
	checkParsed(t, sites, devs)
}

func TestParseCSVChineseValues(t *testing.T) {
	data := zhHeader +
		"mkt-01,农贸市场,,４１０７０２,,,,,,cam-01,摄像机,东门,,,hikvision-ipc,,,２０２４-０３-１５,192.168.1.64,,,,,主码流,,\n" +
		"mkt-01,农贸市场,,410702,,,,,,gw-01,网关,边缘网关,,,,,,,,,,,,,,\n"
	sites, devs, err := parse(t, []byte(data))
	require.NoError(t, err)
	require.Equal(t, "410702", sites[0].RegionCode, "full-width digits accepted")
	require.Equal(t, devices.KindCamera, devs[0].Kind)
	require.Equal(t, "main", devs[0].Stream.Stream)
	require.Equal(t, "2024-03-15", devs[0].InstalledOn)
	require.Equal(t, devices.KindGateway, devs[1].Kind)
}

func TestParseCSVOneBadCreditCodeImportsNothing(t *testing.T) {
	bad := strings.Replace(rows, "914403001922038216", "914403001922038217", 1)
	sites, devs, err := parse(t, []byte(enHeader+bad))
	require.Nil(t, sites)
	require.Nil(t, devs)
	ie := requireRowErrors(t, err, devices.RowError{Row: 4, Column: "uscc", Reason: "check character"})
	require.Len(t, ie.Rows, 1)
	require.Contains(t, err.Error(), "row 4, column uscc")
	require.Contains(t, err.Error(), "nothing was imported")

	// With Chinese headers the column is named as the file names it.
	_, _, err = parse(t, []byte(zhHeader+bad))
	requireRowErrors(t, err, devices.RowError{Row: 4, Column: "统一社会信用代码", Reason: "check character"})
}

func TestParseCSVListsEveryBadRow(t *testing.T) {
	data := enHeader +
		// 2: fine
		"mkt-01,农贸市场,91350100M000100Y43,410702,,,,市市场监督管理局,,cam-01,camera,,,,hikvision-ipc,,,,10.0.0.1,,,,,,,\n" +
		// 3: same site, other name and region
		"mkt-01,农贸市场二,91350100M000100Y43,410711,,,,市市场监督管理局,,cam-02,camera,,,,hikvision-ipc,,,,10.0.0.2,,,,,,,\n" +
		// 4: duplicate device id
		"mkt-01,农贸市场,91350100M000100Y43,410702,,,,市市场监督管理局,,cam-01,camera,,,,hikvision-ipc,,,,10.0.0.3,,,,,,,\n" +
		// 5: bad region, unknown profile
		"kit-02,食堂,,990101,,,,,,cam-05,camera,,,,acme-9000,,,,10.0.0.5,,,,,,,\n" +
		// 6: profile for another kind, bad date, bad port
		"kit-03,食堂,,410711,,,,,,cam-06,camera,,,,generic-json,,,2024-13-01,10.0.0.6,port,,,,,,\n" +
		// 7: MQTT username used twice, bad latitude
		"kit-04,食堂,,410711,,abc,113.9,,,s-07,sensor,,,,generic-json,,,,,,,,,,shared,secret-secret-1\n" +
		"kit-04,食堂,,410711,,abc,113.9,,,s-08,sensor,,,,generic-json,,,,,,,,,,shared,secret-secret-2\n" +
		"\n" + // blank lines are skipped
		// 10: camera without host, unknown kind
		"kit-05,食堂,,410711,,,,,,cam-10,camera,,,,,,,,,,,,,,,\n" +
		"kit-05,食堂,,410711,,,,,,x-11,robot,,,,,,,,,,,,,,,\n"
	_, _, err := parse(t, []byte(data))
	requireRowErrors(t, err,
		devices.RowError{Row: 3, Column: "site_name", Reason: "all rows of one site must agree"},
		devices.RowError{Row: 3, Column: "region_code", Reason: "on row 2"},
		devices.RowError{Row: 4, Column: "device_id", Reason: `device "cam-01" is already on row 2`},
		devices.RowError{Row: 5, Column: "region_code", Reason: "99 is not a province"},
		devices.RowError{Row: 5, Column: "profile", Reason: `profile "acme-9000" is not known`},
		devices.RowError{Row: 6, Column: "profile", Reason: "is for a sensor"},
		devices.RowError{Row: 6, Column: "installed_on", Reason: "YYYY-MM-DD"},
		devices.RowError{Row: 6, Column: "rtsp_port", Reason: "not a whole number"},
		devices.RowError{Row: 7, Column: "latitude", Reason: "not a number"},
		devices.RowError{Row: 8, Column: "mqtt_username", Reason: "already used on row 7"},
		devices.RowError{Row: 10, Column: "rtsp_host", Reason: "needs its RTSP host"},
		devices.RowError{Row: 11, Column: "kind", Reason: `"robot" is not a device kind`},
	)
}

func TestParseCSVHeaderProblems(t *testing.T) {
	_, _, err := parse(t, []byte("site_id,device_id,kind,colour\n"))
	requireRowErrors(t, err, devices.RowError{Row: 1, Column: "colour", Reason: "unknown column"})
	_, _, err = parse(t, []byte("site_id,站点编号,device_id,kind\n"))
	requireRowErrors(t, err, devices.RowError{Row: 1, Column: "站点编号", Reason: "appears twice"})
	_, _, err = parse(t, []byte("site_name,device_id\n"))
	requireRowErrors(t, err,
		devices.RowError{Row: 1, Column: "site_id", Reason: "required column is missing"},
		devices.RowError{Row: 1, Column: "kind", Reason: "required column is missing"})
	_, _, err = parse(t, nil)
	requireRowErrors(t, err, devices.RowError{Row: 1, Reason: "empty"})
	_, _, err = parse(t, []byte("site_id,device_id,kind\nmkt-01,\"cam\"x\",camera\n"))
	requireRowErrors(t, err, devices.RowError{Row: 2, Reason: "not valid CSV"})
	_, _, err = parse(t, []byte("site_id,device_id,kind\nmkt-01,cam-1,camera,extra\n"))
	requireRowErrors(t, err, devices.RowError{Row: 2, Reason: "no header"})
}

func TestParseCSVRowNumbersWithMultilineCells(t *testing.T) {
	data := "site_id,site_name,region_code,address,device_id,kind,profile\n" +
		"s1,站点,410702,\"第一行\n第二行\",d1,sensor,generic-json\n" +
		"s2,站点,410702,,d2,sensor,nope\n"
	_, _, err := parse(t, []byte(data))
	ie := requireRowErrors(t, err,
		devices.RowError{Row: 2, Column: "address", Reason: "control character"},
		devices.RowError{Row: 4, Column: "profile", Reason: "not known"})
	require.Len(t, ie.Rows, 2)
}

func TestParseCSVSiteWithoutDevices(t *testing.T) {
	sites, devs, err := parse(t, []byte("site_id,site_name,region_code,device_id,kind\nempty-01,空站点,410702,,\n"))
	require.NoError(t, err)
	require.Len(t, sites, 1)
	require.Empty(t, devs)
}

func exportFixture() ([]devices.Site, []devices.Device) {
	s1 := validSite()
	s1.ID = "mkt-01"
	s1.Name = "=HYPERLINK(\"http://evil\")" // formula injection attempt
	s2 := site("kit-02", "410711", "市市场监督管理局")
	s2.Name = "'引号开头"
	s2.Latitude, s2.Longitude = ptr(-33.868820), ptr(151.209296)
	s3 := site("empty-03", "350102", "市生态环境局")
	s3.USCC = ""
	s3.SupervisionItems = nil
	cam := validCamera()
	cam.SiteID = "mkt-01"
	cam.Stream.Transport = "udp"
	cam.Name = "-东门, \"主\"入口"
	sensor := validSensor()
	sensor.SiteID = "mkt-01"
	cam2 := validCamera()
	cam2.ID, cam2.SiteID, cam2.Profile = "cam-02", "kit-02", "dahua-ipc"
	cam2.Stream = &devices.StreamSettings{URL: "rtsp://10.0.0.9:554/cam/realmonitor?channel=1&subtype=0", Password: "x-pass"}
	return []devices.Site{s1, s2, s3}, []devices.Device{cam, sensor, cam2}
}

// withoutSecrets strips what an export leaves out: secrets and timestamps.
func withoutSecrets(t *testing.T, sites []devices.Site, devs []devices.Device) ([]devices.Site, []devices.Device) {
	out := make([]devices.Device, len(devs))
	for i, d := range devs {
		if d.Stream != nil {
			st := *d.Stream
			st.Password, st.HasPassword = "", false
			d.Stream = &st
		}
		if d.MQTT != nil {
			d.MQTT = &devices.MQTTCredentials{Username: d.MQTT.Username}
		}
		out[i] = d
	}
	for i := range sites {
		require.NoError(t, devices.ValidateSite(&sites[i]))
	}
	return sites, out
}

func TestCSVRoundTrip(t *testing.T) {
	for _, opts := range []devices.CSVWriteOptions{
		{},
		{ChineseHeaders: true},
		{Encoding: "gbk"},
		{Encoding: "GBK", ChineseHeaders: true},
		{NoBOM: true},
	} {
		sites, devs := exportFixture()
		var buf bytes.Buffer
		require.NoError(t, devices.WriteCSV(&buf, sites, devs, opts))
		out := buf.Bytes()
		if opts.Encoding == "" && !opts.NoBOM {
			require.True(t, bytes.HasPrefix(out, []byte{0xEF, 0xBB, 0xBF}), "BOM by default")
		} else {
			require.False(t, bytes.HasPrefix(out, []byte{0xEF, 0xBB, 0xBF}))
		}
		for _, secret := range []string{"Hik12345!", "s3cret", "x-pass"} {
			require.NotContains(t, string(out), secret, "secrets are never written")
		}
		require.NotContains(t, string(out), ",=HYPERLINK", "formulas are defused")

		gotSites, gotDevs, err := parse(t, out)
		require.NoError(t, err, "%+v", opts)
		wantSites, wantDevs := withoutSecrets(t, sites, devs)
		require.Equal(t, wantSites, gotSites, "%+v", opts)
		require.Equal(t, wantDevs, gotDevs, "%+v", opts)
	}
}

func TestWriteCSVErrors(t *testing.T) {
	sites, devs := exportFixture()
	require.Error(t, devices.WriteCSV(&bytes.Buffer{}, sites[1:], devs, devices.CSVWriteOptions{}), "device of a site not exported")
	err := devices.WriteCSV(&bytes.Buffer{}, sites, devs, devices.CSVWriteOptions{Encoding: "latin1"})
	require.Equal(t, "invalid_encoding", errs.CodeOf(err))
	sites[0].Address = "𠀀 emoji 😀"
	err = devices.WriteCSV(&bytes.Buffer{}, sites, devs, devices.CSVWriteOptions{Encoding: "gbk"})
	require.Equal(t, "csv_not_encodable", errs.CodeOf(err))
	require.ErrorContains(t, err, "export as utf-8")
	require.NoError(t, devices.WriteCSV(&bytes.Buffer{}, sites, devs, devices.CSVWriteOptions{Encoding: "gb18030"}))
}

func TestParseCSVNotText(t *testing.T) {
	_, _, err := parse(t, []byte{0x81, 0x30, 0xff, 0xff, 0x00, 0x81})
	require.Error(t, err)
	_, _, err = parse(t, []byte("\xEF\xBB\xBFsite_id\xff"))
	requireRowErrors(t, err, devices.RowError{Row: 1, Reason: "byte order mark"})
}

// A sheet goes through the store whole, or not at all.
func TestCSVImportIntoStore(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		st, _ := newStore(t, db)
		sites, devs, err := parse(t, []byte(zhHeader+rows))
		require.NoError(t, err)
		require.NoError(t, st.Import(ctx, sites, devs))
		pw, err := st.CameraPassword(ctx, "cam-01")
		require.NoError(t, err)
		require.Equal(t, "Hik12345!", pw)
		_, err = st.CheckMQTT(ctx, "dust-01", "dust-01-secret-abc")
		require.NoError(t, err)

		// Export, import again: nothing changes, secrets stay.
		storedSites, err := st.ListSites(ctx, devices.SiteFilter{})
		require.NoError(t, err)
		storedDevs, err := st.ListDevices(ctx, devices.DeviceFilter{})
		require.NoError(t, err)
		var buf bytes.Buffer
		require.NoError(t, devices.WriteCSV(&buf, storedSites, storedDevs, devices.CSVWriteOptions{}))
		s2, d2, err := parse(t, buf.Bytes())
		require.NoError(t, err)
		require.NoError(t, st.Import(ctx, s2, d2))
		pw, err = st.CameraPassword(ctx, "cam-01")
		require.NoError(t, err)
		require.Equal(t, "Hik12345!", pw)
		_, err = st.CheckMQTT(ctx, "dust-01", "dust-01-secret-abc")
		require.NoError(t, err)
	})
}

func FuzzParseCSV(f *testing.F) {
	f.Add([]byte(enHeader + rows))
	f.Add([]byte("\uFEFF" + zhHeader + rows))
	gbk, _ := simplifiedchinese.GBK.NewEncoder().String(zhHeader + rows)
	f.Add([]byte(gbk))
	f.Add([]byte("site_id,device_id,kind\n"))
	f.Add([]byte("site_id,site_name,region_code,device_id,kind\ns,n,410702,,\n"))
	f.Add([]byte("site_id,device_id,kind\n\"a\nb\",c,camera\n"))
	f.Add([]byte{0xff, 0xfe, 0x00, 0x00})
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sites, devs, err := devices.ParseCSV(bytes.NewReader(data), devices.CSVParseOptions{Profiles: testProfiles})
		if err != nil {
			var ie *devices.ImportError
			require.True(t, errors.As(err, &ie), "%T %v", err, err)
			require.NotEmpty(t, ie.Rows)
			for _, r := range ie.Rows {
				require.GreaterOrEqual(t, r.Row, 1)
				require.NotEmpty(t, r.Reason)
			}
			require.Nil(t, sites)
			require.Nil(t, devs)
			return
		}
		// Whatever is accepted is valid, and survives export and import unchanged.
		siteIDs := map[string]bool{}
		for i := range sites {
			s := sites[i]
			require.NoError(t, devices.ValidateSite(&s))
			require.Equal(t, sites[i], s, "already normalised")
			siteIDs[s.ID] = true
		}
		for i := range devs {
			d := devs[i]
			require.NoError(t, devices.ValidateDevice(&d))
			require.True(t, siteIDs[d.SiteID])
		}
		var buf bytes.Buffer
		require.NoError(t, devices.WriteCSV(&buf, sites, devs, devices.CSVWriteOptions{}))
		s2, d2, err := devices.ParseCSV(&buf, devices.CSVParseOptions{Profiles: testProfiles})
		require.NoError(t, err)
		ws, wd := withoutSecrets(t, sites, devs)
		require.Equal(t, ws, s2)
		require.Equal(t, wd, d2)
	})
}
