package devices_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/internal/errs"
)

// Published codes of well-known companies (and the example of GB 32100-2015).
var knownUSCCs = []string{
	"91350100M000100Y43", // example in GB 32100-2015
	"914403001922038216", // 华为技术有限公司
	"91110108551385082Q", // 小米科技有限责任公司
	"91440300708461136T", // 深圳市腾讯计算机系统有限公司
	"91330100716105852F",
	"91110000802100433B",
	"91310000607216596U",
	"91110000100010433L",
}

const usccChars = "0123456789ABCDEFGHJKLMNPQRTUWXY"

// makeUSCC builds a valid code the long way, independently of the package: GB 11714 check
// digit for the organisation code, then the GB 32100 check character with weights 3^i mod 31.
func makeUSCC(r *rand.Rand, dept, category byte, region string) string {
	org := make([]byte, 8)
	for i := range org {
		org[i] = "0123456789ABCDEFGHJKLMNPQRTUWXY"[r.IntN(31)]
	}
	// GB 11714: weights 3 7 9 10 5 8 4 2, letters count 10..35.
	w := []int{3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i, c := range org {
		v := int(c - '0')
		if c >= 'A' {
			v = int(c-'A') + 10
		}
		sum += v * w[i]
	}
	var check byte
	switch c := 11 - sum%11; c {
	case 10:
		check = 'X'
	case 11:
		check = '0'
	default:
		check = byte('0' + c)
	}
	body := string([]byte{dept, category}) + region + string(org) + string(check)
	total, weight := 0, 1
	for i := 0; i < 17; i++ {
		total += strings.IndexByte(usccChars, body[i]) * weight
		weight = weight * 3 % 31
	}
	return body + string(usccChars[(31-total%31)%31])
}

func TestValidateUSCCKnown(t *testing.T) {
	for _, c := range knownUSCCs {
		require.NoError(t, devices.ValidateUSCC(c), c)
	}
}

func TestValidateUSCCGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	regions := []string{"410702", "350102", "440305", "110108", "650102", "820000", "100000"}
	for i := 0; i < 500; i++ {
		dept := "1259NY"[r.IntN(6)]
		code := makeUSCC(r, dept, "123"[r.IntN(3)], regions[r.IntN(len(regions))])
		require.NoError(t, devices.ValidateUSCC(code), code)

		// Any single mistyped character and any swap of two neighbours is caught.
		pos := r.IntN(18)
		mut := []byte(code)
		for mut[pos] == code[pos] {
			mut[pos] = usccChars[r.IntN(31)]
		}
		require.Error(t, devices.ValidateUSCC(string(mut)), "%s → %s", code, mut)
		if p := r.IntN(17); code[p] != code[p+1] {
			sw := []byte(code)
			sw[p], sw[p+1] = sw[p+1], sw[p]
			require.Error(t, devices.ValidateUSCC(string(sw)), "%s → %s", code, sw)
		}
	}
}

func TestValidateUSCCInvalid(t *testing.T) {
	cases := []struct{ code, want string }{
		{"", "18 characters"},
		{"91350100M000100Y4", "18 characters"},
		{"91350100M000100Y433", "18 characters"},
		{"91350100M000100Y44", "check character"},
		{"91350100M000100I43", "not allowed"},        // I is not in the set
		{"91350100m000100Y43", "not allowed"},        // must be normalised first
		{"Z1350100M000100Y43", "not allowed"},        // Z is not in the set
		{"B1350100M000100Y43", "registration"},       // B is no registration department
		{"9199A100M000100Y43", "region code"},        // letters in the region part
		{"91990100M000100Y43", "province"},           // 99 is no province
		{"91350100M000100Ｙ43", "character 16 ('Ｙ')"}, // full-width, not normalised
		{"９１350100M000100Y43", "character 1 ('９')"},  // full-width digits, not normalised
		{"91350100M000100Y4\x00", "not allowed"},
	}
	for _, c := range cases {
		err := devices.ValidateUSCC(c.code)
		require.Error(t, err, c.code)
		require.True(t, errs.Is(err, errs.KindInvalid))
		require.Equal(t, "invalid_uscc", errs.CodeOf(err))
		require.Contains(t, err.Error(), c.want, c.code)
	}
	// What a person types is normalised: spaces, full-width characters, lower case.
	require.NoError(t, devices.ValidateUSCC(devices.NormalizeCode(" ９１350100m000100y43　")))
}

func TestUSCCCheckChar(t *testing.T) {
	c, ok := devices.USCCCheckChar("91350100M000100Y4")
	require.True(t, ok)
	require.Equal(t, byte('3'), c)
	_, ok = devices.USCCCheckChar("91350100M000100O4")
	require.False(t, ok)
}

func TestValidateRegionCode(t *testing.T) {
	for _, c := range []string{"410702", "410700", "410000", "110108", "419001", "650102", "710000", "810000", "820000", "150100", "540102"} {
		require.NoError(t, devices.ValidateRegionCode(c), c)
	}
	bad := map[string]string{
		"":        "6 digits",
		"41070":   "6 digits",
		"4107021": "6 digits",
		"41O702":  "6 digits",
		"160102":  "province",
		"000000":  "province",
		"720000":  "province",
		"990000":  "province",
		"410012":  "county part",
		"４１０７０２":  "6 digits", // full-width: NormalizeCode first
	}
	for c, want := range bad {
		err := devices.ValidateRegionCode(c)
		require.Error(t, err, c)
		require.Contains(t, err.Error(), want, c)
	}
}

func TestValidateID(t *testing.T) {
	for _, id := range []string{"a", "cam-01", "site_1.hall", strings.Repeat("x", 64), "A.B-C_D", ".x"} {
		require.NoError(t, devices.ValidateID(id), id)
	}
	for _, id := range []string{"", " ", "a b", "摄像机1", "a/b", "a?b", strings.Repeat("x", 65), ".", "..", "x\n"} {
		require.Error(t, devices.ValidateID(id), "%q", id)
	}
}

func ptr(f float64) *float64 { return &f }

func validSite() devices.Site {
	return devices.Site{
		ID: "hall-01", Name: "新乡市红旗区政务服务中心", USCC: "91350100M000100Y43", RegionCode: "410702",
		Address: "新乡市红旗区人民东路1号", Latitude: ptr(35.30), Longitude: ptr(113.92),
		Department: "市市场监督管理局", SupervisionItems: []string{"330217001000", "330217002000"},
	}
}

func TestValidateSite(t *testing.T) {
	s := validSite()
	s.USCC = " 91350100m000100y43 "
	s.Name = "  " + s.Name + " "
	s.SupervisionItems = []string{" 330217001000 ", "330217002000"}
	require.NoError(t, devices.ValidateSite(&s))
	require.Equal(t, "91350100M000100Y43", s.USCC, "normalised in place")
	require.Equal(t, "新乡市红旗区政务服务中心", s.Name)
	require.Equal(t, []string{"330217001000", "330217002000"}, s.SupervisionItems)

	noUSCC := validSite()
	noUSCC.USCC = ""
	noUSCC.Latitude, noUSCC.Longitude = nil, nil
	noUSCC.SupervisionItems = nil
	require.NoError(t, devices.ValidateSite(&noUSCC), "credit code and coordinates are optional")
	require.Equal(t, []string{}, noUSCC.SupervisionItems)

	cases := []struct {
		name  string
		edit  func(*devices.Site)
		field string
	}{
		{"id missing", func(s *devices.Site) { s.ID = "" }, "id: is required"},
		{"id chars", func(s *devices.Site) { s.ID = "站点1" }, "id: contains"},
		{"name missing", func(s *devices.Site) { s.Name = " " }, "name: is required"},
		{"name too long", func(s *devices.Site) { s.Name = strings.Repeat("长", 201) }, "name: is 201 characters"},
		{"uscc", func(s *devices.Site) { s.USCC = "91350100M000100Y44" }, "uscc: check character"},
		{"region missing", func(s *devices.Site) { s.RegionCode = "" }, "region_code: is required"},
		{"region", func(s *devices.Site) { s.RegionCode = "990101" }, "region_code: 99 is not a province"},
		{"lat range", func(s *devices.Site) { s.Latitude = ptr(95) }, "latitude: 95 is outside"},
		{"lon range", func(s *devices.Site) { s.Longitude = ptr(-181) }, "longitude: -181 is outside"},
		{"lat NaN", func(s *devices.Site) { s.Latitude = ptr(math.NaN()) }, "latitude: NaN"},
		{"lat alone", func(s *devices.Site) { s.Longitude = nil }, "latitude: latitude and longitude must be given together"},
		{"empty item", func(s *devices.Site) { s.SupervisionItems = []string{"a", "  "} }, "supervision_items: item 2 is empty"},
		{"dup item", func(s *devices.Site) { s.SupervisionItems = []string{"a", "a"} }, "listed twice"},
		{"item with ;", func(s *devices.Site) { s.SupervisionItems = []string{"a；b"} }, "semicolon"},
		{"control char", func(s *devices.Site) { s.Address = "a\x07b" }, "address: contains a control character"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := validSite()
			c.edit(&s)
			err := devices.ValidateSite(&s)
			require.Error(t, err)
			require.True(t, errs.Is(err, errs.KindInvalid))
			require.Equal(t, "invalid_site", errs.CodeOf(err))
			require.Contains(t, err.Error(), c.field)
		})
	}
}

func validCamera() devices.Device {
	return devices.Device{
		ID: "cam-01", SiteID: "hall-01", Kind: devices.KindCamera, Name: "大厅全景", Vendor: "海康威视",
		Model: "DS-2CD3T47", Profile: "hikvision-ipc", Firmware: "V5.7.3", Serial: "DS-2CD3T47-20230101AACH123456789",
		InstalledOn: "2024-03-15",
		Stream:      &devices.StreamSettings{Host: "192.168.1.64", Port: 554, Username: "admin", Password: "Hik12345!", Channel: 1, Stream: "main"},
	}
}

func validSensor() devices.Device {
	return devices.Device{
		ID: "dust-01", SiteID: "hall-01", Kind: devices.KindSensor, Name: "扬尘监测仪", Profile: "generic-json",
		MQTT: &devices.MQTTCredentials{Username: "dust-01", Secret: "s3cret-s3cret-s3cret"},
	}
}

func TestValidateDevice(t *testing.T) {
	d := validCamera()
	d.Kind = " Camera "
	d.Stream.Stream = "MAIN"
	require.NoError(t, devices.ValidateDevice(&d))
	require.Equal(t, devices.KindCamera, d.Kind)
	require.Equal(t, "main", d.Stream.Stream)
	s := validSensor()
	require.NoError(t, devices.ValidateDevice(&s))
	gw := devices.Device{ID: "gw-1", SiteID: "hall-01", Kind: devices.KindGateway}
	require.NoError(t, devices.ValidateDevice(&gw))
	byURL := validCamera()
	byURL.Stream = &devices.StreamSettings{URL: "rtsp://10.0.0.5:554/Streaming/Channels/101"}
	require.NoError(t, devices.ValidateDevice(&byURL))

	cases := []struct {
		name string
		dev  func() devices.Device
		edit func(*devices.Device)
		want string
	}{
		{"id", validCamera, func(d *devices.Device) { d.ID = "cam 1" }, "id: contains"},
		{"site", validCamera, func(d *devices.Device) { d.SiteID = "" }, "site_id: is required"},
		{"kind missing", validCamera, func(d *devices.Device) { d.Kind = "" }, "kind: is required"},
		{"kind", validCamera, func(d *devices.Device) { d.Kind = "robot" }, `kind: "robot" is not a device kind`},
		{"date", validCamera, func(d *devices.Device) { d.InstalledOn = "2024/03/15" }, "installed_on"},
		{"date impossible", validCamera, func(d *devices.Device) { d.InstalledOn = "2024-02-30" }, "installed_on"},
		{"camera without stream", validCamera, func(d *devices.Device) { d.Stream = nil }, "stream.host"},
		{"host with scheme", validCamera, func(d *devices.Device) { d.Stream.Host = "rtsp://1.2.3.4" }, "stream.host"},
		{"port", validCamera, func(d *devices.Device) { d.Stream.Port = 70000 }, "stream.port"},
		{"stream", validCamera, func(d *devices.Device) { d.Stream.Stream = "third" }, "stream.stream"},
		{"transport", validCamera, func(d *devices.Device) { d.Stream.Transport = "http" }, "stream.transport"},
		{"url scheme", validCamera, func(d *devices.Device) { d.Stream.URL = "http://x/y" }, "stream.url"},
		{"url creds", validCamera, func(d *devices.Device) { d.Stream.URL = "rtsp://admin:pw@x/y" }, "must not carry credentials"},
		{"sensor stream", validSensor, func(d *devices.Device) { d.Stream = &devices.StreamSettings{Host: "x"} }, "only cameras"},
		{"sensor profile", validSensor, func(d *devices.Device) { d.Profile = "" }, "profile: is required for a sensor"},
		{"mqtt user", validSensor, func(d *devices.Device) { d.MQTT.Username = "a/b" }, "mqtt.username"},
		{"mqtt secret short", validSensor, func(d *devices.Device) { d.MQTT.Secret = "short" }, "mqtt.secret: must be 12 to 128"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := c.dev()
			c.edit(&d)
			err := devices.ValidateDevice(&d)
			require.Error(t, err)
			require.True(t, errs.Is(err, errs.KindInvalid))
			require.Equal(t, "invalid_device", errs.CodeOf(err))
			require.Contains(t, err.Error(), c.want)
		})
	}
}

func TestScopeAllowsSite(t *testing.T) {
	s := validSite() // 410702, 市市场监督管理局
	require.True(t, devices.Scope{}.AllowsSite(s))
	require.True(t, devices.Scope{Regions: []string{"41"}}.AllowsSite(s))
	require.True(t, devices.Scope{Regions: []string{"35", "4107"}}.AllowsSite(s))
	require.False(t, devices.Scope{Regions: []string{"4108"}}.AllowsSite(s))
	require.True(t, devices.Scope{Departments: []string{"市市场监督管理局"}, Regions: []string{"41"}}.AllowsSite(s))
	require.False(t, devices.Scope{Departments: []string{"市生态环境局"}}.AllowsSite(s))
	require.False(t, devices.Scope{Regions: []string{""}}.AllowsSite(s), "a blank entry denies")
	require.False(t, devices.Scope{Departments: []string{" "}}.AllowsSite(s), "a blank entry denies")
}

func FuzzValidateUSCC(f *testing.F) {
	for _, c := range knownUSCCs {
		f.Add(c)
	}
	f.Add("")
	f.Add("91350100M000100Y4")
	f.Add("９１350100M000100Y43")
	f.Add("\xff\xfe91350100M000100Y43")
	f.Fuzz(func(t *testing.T, in string) {
		err := devices.ValidateUSCC(in)
		norm := devices.NormalizeCode(in)
		require.Equal(t, norm, devices.NormalizeCode(norm), "normalising twice changes nothing")
		if err != nil {
			require.True(t, errs.Is(err, errs.KindInvalid))
			return
		}
		require.Len(t, in, 18)
		want, ok := devices.USCCCheckChar(in[:17])
		require.True(t, ok)
		require.Equal(t, want, in[17])
		for _, c := range []byte(usccChars) {
			if c != in[17] {
				require.Error(t, devices.ValidateUSCC(in[:17]+string(c)), "only one check character fits")
			}
		}
	})
}
