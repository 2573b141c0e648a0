package devices

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/width"

	profiles "github.com/offsite-gw/offsite/firmware-profiles"
	"github.com/offsite-gw/offsite/internal/errs"
)

// Limits on free-text fields. They keep one bad CSV cell from becoming a megabyte row.
const (
	maxIDLen      = 64
	maxNameLen    = 200 // runes
	maxAddressLen = 500 // runes
	maxTextLen    = 200 // vendor, model, firmware, serial, hosts, usernames
	maxItemLen    = 100 // one supervision item code
	maxItems      = 100
)

// usccAlphabet is the GB 32100-2015 character set; a character's value is its index. I, O, S,
// V and Z are left out because they are mistaken for digits.
const usccAlphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"

// usccWeights are 3^i mod 31 for the first 17 positions.
var usccWeights = [17]int{1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28}

// usccDepartments are the registration departments (登记管理部门代码, position 1): 1 机构编制,
// 2 外交, 3 司法行政, 4 文化, 5 民政, 6 旅游, 7 宗教, 8 工会, 9 市场监管(工商), A 中央军委改革和编制办公室,
// N 农业, Y 其他.
const usccDepartments = "123456789ANY"

// NormalizeCode trims a code typed by a person and turns full-width characters (９１３５…, typed
// with a Chinese input method) into ASCII and letters into upper case.
func NormalizeCode(s string) string {
	return strings.ToUpper(width.Narrow.String(strings.TrimSpace(s)))
}

// USCCCheckChar returns the check character (position 18) for the first 17 characters of a
// unified social credit code, and false if they are not 17 characters of the GB 32100 set.
func USCCCheckChar(first17 string) (byte, bool) {
	if len(first17) != 17 {
		return 0, false
	}
	sum := 0
	for i := 0; i < 17; i++ {
		v := strings.IndexByte(usccAlphabet, first17[i])
		if v < 0 {
			return 0, false
		}
		sum += v * usccWeights[i]
	}
	return usccAlphabet[(31-sum%31)%31], true
}

// ValidateUSCC checks a unified social credit code (统一社会信用代码, GB 32100-2015): 18 characters
// of 0-9 and upper-case letters without I O S V Z, a known registration department, a numeric
// registration region, and the check character. code must already be normalised (NormalizeCode).
func ValidateUSCC(code string) error {
	if reason := usccProblem(code); reason != "" {
		return errs.E(errs.KindInvalid, "invalid_uscc", "unified social credit code %q: %s", code, reason)
	}
	return nil
}

func usccProblem(code string) string {
	if n := utf8.RuneCountInString(code); n != 18 {
		return fmt.Sprintf("must be 18 characters, got %d", n)
	}
	pos := 0
	for _, r := range code {
		pos++
		if r >= utf8.RuneSelf || strings.IndexByte(usccAlphabet, byte(r)) < 0 {
			return fmt.Sprintf("character %d (%q) is not allowed: only 0-9 and A-Z without I, O, S, V, Z", pos, r)
		}
	}
	if strings.IndexByte(usccDepartments, code[0]) < 0 {
		return fmt.Sprintf("first character %q is not a registration department code (1-9, A, N, Y)", code[0])
	}
	for i := 2; i < 8; i++ {
		if code[i] < '0' || code[i] > '9' {
			return fmt.Sprintf("characters 3-8 must be the region code of the registering office (digits), got %q", code[2:8])
		}
	}
	// Central-level registrations carry 100000; everything else a province prefix.
	if code[2:4] != "10" && !validProvince(code[2:4]) {
		return fmt.Sprintf("characters 3-8 (%s) do not start with a province code", code[2:8])
	}
	want, _ := USCCCheckChar(code[:17])
	if code[17] != want {
		return fmt.Sprintf("check character is %q but the first 17 characters give %q; a character was probably mistyped", code[17], want)
	}
	return ""
}

// validProvince reports whether the two digits are a GB/T 2260 province-level code.
func validProvince(p string) bool {
	if len(p) != 2 || p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9' {
		return false
	}
	n := int(p[0]-'0')*10 + int(p[1]-'0')
	switch {
	case n >= 11 && n <= 15, n >= 21 && n <= 23, n >= 31 && n <= 37, n >= 41 && n <= 46,
		n >= 50 && n <= 54, n >= 61 && n <= 65, n == 71, n == 81, n == 82:
		return true
	}
	return false
}

// ValidateRegionCode checks a six-digit administrative division code (GB/T 2260): a known
// province, and a province-level code (xx0000) having no county part.
func ValidateRegionCode(code string) error {
	if reason := regionProblem(code); reason != "" {
		return errs.E(errs.KindInvalid, "invalid_region_code", "region code %q: %s", code, reason)
	}
	return nil
}

func regionProblem(code string) string {
	if len(code) != 6 {
		return fmt.Sprintf("must be 6 digits (GB/T 2260, e.g. 410702), got %d characters", utf8.RuneCountInString(code))
	}
	for i := 0; i < 6; i++ {
		if code[i] < '0' || code[i] > '9' {
			return "must be 6 digits (GB/T 2260, e.g. 410702)"
		}
	}
	if !validProvince(code[:2]) {
		return fmt.Sprintf("%s is not a province code (11-15, 21-23, 31-37, 41-46, 50-54, 61-65, 71, 81, 82)", code[:2])
	}
	if code[2:4] == "00" && code[4:6] != "00" {
		return "a county part needs a city part: digits 3-4 are 00 but digits 5-6 are not"
	}
	return ""
}

// ValidateID checks a site or device id: 1-64 characters of A-Z a-z 0-9 . _ - (ids appear in
// URLs, MQTT topics and file names), and not only dots.
func ValidateID(id string) error {
	if reason := idProblem(id); reason != "" {
		return errs.E(errs.KindInvalid, "invalid_id", "id %q: %s", id, reason)
	}
	return nil
}

func idProblem(id string) string {
	if id == "" {
		return "is required"
	}
	if len(id) > maxIDLen {
		return fmt.Sprintf("is %d characters long, at most %d allowed", len(id), maxIDLen)
	}
	dots := 0
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		case c == '.':
			dots++
		default:
			r, _ := utf8.DecodeRuneInString(id[i:])
			return fmt.Sprintf("contains %q: only A-Z a-z 0-9 . _ - are allowed", r)
		}
	}
	if dots == len(id) {
		return "must not be only dots"
	}
	return ""
}

// problem is one thing wrong with one field. field uses the JSON names ("uscc",
// "stream.host"); CSV import maps them to its columns.
type problem struct {
	field  string
	reason string
}

type problems []problem

func (ps *problems) add(field, format string, args ...any) {
	*ps = append(*ps, problem{field: field, reason: fmt.Sprintf(format, args...)})
}

func (ps problems) String() string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.field + ": " + p.reason
	}
	return strings.Join(parts, "; ")
}

// checkText reports a text field that is too long or holds control characters.
func (ps *problems) checkText(field, v string, max int, required bool) {
	switch {
	case v == "" && required:
		ps.add(field, "is required")
	case !utf8.ValidString(v):
		ps.add(field, "is not valid UTF-8 text")
	case utf8.RuneCountInString(v) > max:
		ps.add(field, "is %d characters long, at most %d allowed", utf8.RuneCountInString(v), max)
	default:
		for _, r := range v {
			if unicode.IsControl(r) {
				ps.add(field, "contains a control character (%U)", r)
				return
			}
		}
	}
}

// normalizeSite trims what people type around values and normalises codes.
func normalizeSite(s *Site) {
	s.ID = strings.TrimSpace(s.ID)
	s.Name = strings.TrimSpace(s.Name)
	s.USCC = NormalizeCode(s.USCC)
	s.RegionCode = NormalizeCode(s.RegionCode)
	s.Address = strings.TrimSpace(s.Address)
	s.Department = strings.TrimSpace(s.Department)
	if s.SupervisionItems == nil {
		s.SupervisionItems = []string{}
	} else {
		items := make([]string, len(s.SupervisionItems))
		for i, it := range s.SupervisionItems {
			items[i] = width.Narrow.String(strings.TrimSpace(it))
		}
		s.SupervisionItems = items
	}
}

func siteProblems(s *Site) problems {
	var ps problems
	if r := idProblem(s.ID); r != "" {
		ps.add("id", "%s", r)
	}
	ps.checkText("name", s.Name, maxNameLen, true)
	if s.USCC != "" { // a site run by a person without a registered entity has none
		if r := usccProblem(s.USCC); r != "" {
			ps.add("uscc", "%s", r)
		}
	}
	if s.RegionCode == "" {
		ps.add("region_code", "is required (6 digits, GB/T 2260, e.g. 410702)")
	} else if r := regionProblem(s.RegionCode); r != "" {
		ps.add("region_code", "%s", r)
	}
	ps.checkText("address", s.Address, maxAddressLen, false)
	ps.checkText("department", s.Department, maxNameLen, false)
	switch {
	case (s.Latitude == nil) != (s.Longitude == nil):
		ps.add("latitude", "latitude and longitude must be given together")
	case s.Latitude != nil:
		if lat := *s.Latitude; math.IsNaN(lat) || lat < -90 || lat > 90 {
			ps.add("latitude", "%v is outside -90..90", lat)
		}
		if lon := *s.Longitude; math.IsNaN(lon) || lon < -180 || lon > 180 {
			ps.add("longitude", "%v is outside -180..180", lon)
		}
	}
	if len(s.SupervisionItems) > maxItems {
		ps.add("supervision_items", "%d items, at most %d allowed", len(s.SupervisionItems), maxItems)
	}
	seen := map[string]bool{}
	for i, it := range s.SupervisionItems {
		switch {
		case it == "":
			ps.add("supervision_items", "item %d is empty", i+1)
		case it != strings.TrimSpace(it):
			ps.add("supervision_items", "item %d (%q) has spaces around it", i+1, it)
		case seen[it]:
			ps.add("supervision_items", "item %q is listed twice", it)
		default:
			before := len(ps)
			ps.checkText("supervision_items", it, maxItemLen, true)
			if len(ps) == before && strings.ContainsAny(it, ";；") {
				ps.add("supervision_items", "item %q contains a semicolon, which separates items", it)
			}
		}
		seen[it] = true
	}
	return ps
}

// ValidateSite normalises s in place (trims spaces, turns full-width digits and lower-case
// letters of codes into ASCII upper case) and checks every field. The error is KindInvalid and
// names each wrong field.
func ValidateSite(s *Site) error {
	normalizeSite(s)
	if ps := siteProblems(s); len(ps) > 0 {
		return errs.E(errs.KindInvalid, "invalid_site", "site %q: %s", s.ID, ps)
	}
	return nil
}

// MaintenanceKinds are the kinds a maintenance log entry may have.
var MaintenanceKinds = []string{"install", "inspect", "repair", "replace", "firmware", "note"}

func normalizeDevice(d *Device) {
	d.ID = strings.TrimSpace(d.ID)
	d.SiteID = strings.TrimSpace(d.SiteID)
	d.Kind = Kind(strings.ToLower(strings.TrimSpace(string(d.Kind))))
	d.Name = strings.TrimSpace(d.Name)
	d.Vendor = strings.TrimSpace(d.Vendor)
	d.Model = strings.TrimSpace(d.Model)
	d.Profile = strings.TrimSpace(d.Profile)
	d.Firmware = strings.TrimSpace(d.Firmware)
	d.Serial = strings.TrimSpace(d.Serial)
	d.InstalledOn = width.Narrow.String(strings.TrimSpace(d.InstalledOn))
	if st := d.Stream; st != nil {
		st.Host = strings.TrimSpace(st.Host)
		st.Username = strings.TrimSpace(st.Username)
		st.Stream = strings.ToLower(strings.TrimSpace(st.Stream))
		st.Transport = strings.ToLower(strings.TrimSpace(st.Transport))
		st.URL = strings.TrimSpace(st.URL)
	}
	if d.MQTT != nil {
		d.MQTT.Username = strings.TrimSpace(d.MQTT.Username)
	}
	if d.HJ212 != nil {
		d.HJ212.MN = strings.TrimSpace(d.HJ212.MN)
	}
}

func deviceProblems(d *Device) problems {
	var ps problems
	if r := idProblem(d.ID); r != "" {
		ps.add("id", "%s", r)
	}
	if r := idProblem(d.SiteID); r != "" {
		ps.add("site_id", "%s", r)
	}
	switch d.Kind {
	case KindCamera, KindSensor, KindGateway:
	case "":
		ps.add("kind", "is required (camera, sensor or gateway)")
	default:
		ps.add("kind", "%q is not a device kind (camera, sensor or gateway)", d.Kind)
	}
	ps.checkText("name", d.Name, maxNameLen, false)
	ps.checkText("vendor", d.Vendor, maxTextLen, false)
	ps.checkText("model", d.Model, maxTextLen, false)
	ps.checkText("firmware", d.Firmware, maxTextLen, false)
	ps.checkText("serial", d.Serial, maxTextLen, false)
	if d.Profile != "" {
		if r := idProblem(d.Profile); r != "" {
			ps.add("profile", "%s", r)
		}
	} else if d.Kind == KindSensor {
		ps.add("profile", "is required for a sensor: it says how to decode its messages")
	}
	if d.InstalledOn != "" {
		if _, err := time.Parse(time.DateOnly, d.InstalledOn); err != nil {
			ps.add("installed_on", "%q is not a date written YYYY-MM-DD", d.InstalledOn)
		}
	}
	if st := d.Stream; st != nil {
		if d.Kind != KindCamera && d.Kind != "" {
			ps.add("stream", "only cameras have stream settings, this device is a %s", d.Kind)
		}
		streamProblems(&ps, st)
	} else if d.Kind == KindCamera {
		ps.add("stream.host", "a camera needs its RTSP host (or an explicit rtsp:// URL)")
	}
	if m := d.MQTT; m != nil {
		if r := idProblem(m.Username); r != "" {
			ps.add("mqtt.username", "%s", r)
		}
		if m.Secret != "" {
			if n := utf8.RuneCountInString(m.Secret); n < 12 || n > 128 {
				ps.add("mqtt.secret", "must be 12 to 128 characters, got %d", n)
			}
		}
	}
	if h := d.HJ212; h != nil {
		if d.Kind != KindSensor && d.Kind != "" {
			ps.add("hj212", "only sensors are HJ 212 stations, this device is a %s", d.Kind)
		}
		if !hj212MNRE.MatchString(h.MN) {
			ps.add("hj212.mn", "%q must be 1 to 24 letters and digits (the MN the data logger sends)", h.MN)
		}
		// PW travels in every frame: printable ASCII without the frame's separators.
		if h.PW != "" && !validHJ212PW(h.PW) {
			ps.add("hj212.pw", "must be 1 to 64 printable ASCII characters without ; , = & #")
		}
	}
	return ps
}

var hj212MNRE = regexp.MustCompile(`^[0-9A-Za-z]{1,24}$`)

func validHJ212PW(pw string) bool {
	if len(pw) > 64 {
		return false
	}
	for i := 0; i < len(pw); i++ {
		c := pw[i]
		if c <= ' ' || c > '~' || strings.IndexByte(";,=&#", c) >= 0 {
			return false
		}
	}
	return true
}

func streamProblems(ps *problems, st *StreamSettings) {
	if st.Host == "" && st.URL == "" {
		ps.add("stream.host", "a camera needs its RTSP host (or an explicit rtsp:// URL)")
	}
	if st.Host != "" {
		ps.checkText("stream.host", st.Host, maxTextLen, false)
		if strings.ContainsAny(st.Host, " /@?#") {
			ps.add("stream.host", "%q must be a host name or IP address only, without scheme, path or credentials", st.Host)
		}
	}
	if st.Port < 0 || st.Port > 65535 {
		ps.add("stream.port", "%d is not a TCP port (1-65535, empty for 554)", st.Port)
	}
	if st.Channel < 0 || st.Channel > 1024 {
		ps.add("stream.channel", "%d is not a camera channel (1-1024, empty for 1)", st.Channel)
	}
	switch st.Stream {
	case "", "main", "sub":
	default:
		ps.add("stream.stream", "%q must be main or sub", st.Stream)
	}
	switch st.Transport {
	case "", "tcp", "udp":
	default:
		ps.add("stream.transport", "%q must be tcp or udp", st.Transport)
	}
	ps.checkText("stream.username", st.Username, maxTextLen, false)
	if len(st.Password) > 256 {
		ps.add("stream.password", "is longer than 256 bytes")
	}
	if st.URL != "" {
		u, err := url.Parse(st.URL)
		switch {
		case err != nil || (u.Scheme != "rtsp" && u.Scheme != "rtsps") || u.Host == "":
			ps.add("stream.url", "%q must be an rtsp:// or rtsps:// URL with a host", st.URL)
		case u.User != nil:
			ps.add("stream.url", "must not carry credentials; put them in username and password, which are kept encrypted")
		}
	}
}

// ValidateDevice normalises d in place (trims spaces, lower-cases kind, stream and transport)
// and checks every field. It does not check that the site or profile exist; the store does.
// The error is KindInvalid and names each wrong field.
func ValidateDevice(d *Device) error {
	normalizeDevice(d)
	if ps := deviceProblems(d); len(ps) > 0 {
		return errs.E(errs.KindInvalid, "invalid_device", "device %q: %s", d.ID, ps)
	}
	return nil
}

// ProfileLookup finds a firmware profile by id; profiles.Registry satisfies it.
type ProfileLookup interface {
	Get(id string) (profiles.Profile, bool)
}

// profileProblem checks a device's profile against a registry: it must exist and be for the
// device's kind.
func profileProblem(d *Device, reg ProfileLookup) string {
	if reg == nil || d.Profile == "" {
		return ""
	}
	p, ok := reg.Get(d.Profile)
	if !ok {
		return fmt.Sprintf("profile %q is not known; see GET /api/v1/profiles or offsite profiles validate", d.Profile)
	}
	if p.Kind != "" && p.Kind != string(d.Kind) {
		return fmt.Sprintf("profile %q is for a %s, but the device is a %s", d.Profile, p.Kind, d.Kind)
	}
	return ""
}
