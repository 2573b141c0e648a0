package devices

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/width"

	"github.com/offsite-gw/offsite/internal/errs"
)

// csvColumn is one column of the device sheet.
type csvColumn struct {
	name    string   // canonical English header, written by WriteCSV
	zh      string   // Chinese header, written by WriteCSV with ChineseHeaders
	aliases []string // further accepted headers
	field   string   // the problem field (JSON path) reported for this column
	numeric bool     // not escaped against spreadsheet formulas
	secret  bool     // never written
	site    bool     // belongs to the site part of the row
}

// csvColumns are the sheet's columns in the order WriteCSV writes them.
var csvColumns = []csvColumn{
	{name: "site_id", zh: "站点编号", aliases: []string{"站点id", "站点代码", "监管对象编号"}, field: "id", site: true},
	{name: "site_name", zh: "站点名称", aliases: []string{"监管对象名称", "监管对象"}, field: "name", site: true},
	{name: "uscc", zh: "统一社会信用代码", aliases: []string{"信用代码", "社会信用代码", "credit_code"}, field: "uscc", site: true},
	{name: "region_code", zh: "行政区划代码", aliases: []string{"区划代码", "行政区划"}, field: "region_code", site: true},
	{name: "address", zh: "地址", aliases: []string{"详细地址", "站点地址"}, field: "address", site: true},
	{name: "latitude", zh: "纬度", aliases: []string{"lat"}, field: "latitude", numeric: true, site: true},
	{name: "longitude", zh: "经度", aliases: []string{"lon", "lng"}, field: "longitude", numeric: true, site: true},
	{name: "department", zh: "主管部门", aliases: []string{"监管部门"}, field: "department", site: true},
	{name: "supervision_items", zh: "监管事项编码", aliases: []string{"监管事项"}, field: "supervision_items", site: true},
	{name: "device_id", zh: "设备编号", aliases: []string{"设备id", "设备代码"}, field: "id"},
	{name: "kind", zh: "设备类型", aliases: []string{"device_kind", "类型"}, field: "kind"},
	{name: "name", zh: "设备名称", aliases: []string{"device_name"}, field: "name"},
	{name: "vendor", zh: "厂商", aliases: []string{"生产厂商", "厂家", "品牌"}, field: "vendor"},
	{name: "model", zh: "型号", aliases: []string{"设备型号"}, field: "model"},
	{name: "profile", zh: "设备档案", aliases: []string{"档案"}, field: "profile"},
	{name: "firmware", zh: "固件版本", aliases: []string{"固件"}, field: "firmware"},
	{name: "serial", zh: "序列号", aliases: []string{"设备序列号", "sn"}, field: "serial"},
	{name: "installed_on", zh: "安装日期", aliases: []string{"installed"}, field: "installed_on"},
	{name: "rtsp_host", zh: "视频地址", aliases: []string{"rtsp地址", "摄像机ip", "ip地址"}, field: "stream.host"},
	{name: "rtsp_port", zh: "视频端口", aliases: []string{"rtsp端口"}, field: "stream.port", numeric: true},
	{name: "rtsp_username", zh: "视频用户名", aliases: []string{"rtsp用户名"}, field: "stream.username"},
	{name: "rtsp_password", zh: "视频密码", aliases: []string{"rtsp密码"}, field: "stream.password", secret: true},
	{name: "rtsp_channel", zh: "通道号", aliases: []string{"通道", "rtsp通道"}, field: "stream.channel", numeric: true},
	{name: "rtsp_stream", zh: "码流", aliases: []string{"码流类型"}, field: "stream.stream"},
	{name: "rtsp_transport", zh: "传输协议", aliases: []string{"rtsp传输"}, field: "stream.transport"},
	{name: "rtsp_url", zh: "视频流地址", aliases: []string{"rtsp_url地址"}, field: "stream.url"},
	{name: "mqtt_username", zh: "mqtt用户名", aliases: []string{"mqtt账号"}, field: "mqtt.username"},
	{name: "mqtt_secret", zh: "mqtt密钥", aliases: []string{"mqtt密码"}, field: "mqtt.secret", secret: true},
	{name: "hj212_mn", zh: "hj212设备编码", aliases: []string{"mn", "mn号", "监测点编码", "数采仪编码"}, field: "hj212.mn"},
	{name: "hj212_pw", zh: "hj212访问密码", aliases: []string{"pw", "访问密码"}, field: "hj212.pw", secret: true},
}

// Column indexes into csvColumns, for readability below.
const (
	colSiteID = iota
	colSiteName
	colUSCC
	colRegion
	colAddress
	colLat
	colLon
	colDepartment
	colItems
	colDeviceID
	colKind
	colName
	colVendor
	colModel
	colProfile
	colFirmware
	colSerial
	colInstalledOn
	colRTSPHost
	colRTSPPort
	colRTSPUser
	colRTSPPassword
	colRTSPChannel
	colRTSPStream
	colRTSPTransport
	colRTSPURL
	colMQTTUser
	colMQTTSecret
	colHJ212MN
	colHJ212PW
	numColumns
)

// csvHeaderIndex maps every accepted header (normalised) to its column.
var csvHeaderIndex = func() map[string]int {
	m := map[string]int{}
	for i, c := range csvColumns {
		for _, h := range append([]string{c.name, c.zh}, c.aliases...) {
			m[normHeader(h)] = i
		}
	}
	// A few headers where the obvious Chinese word is ambiguous between the site and device.
	m[normHeader("设备档案/profile")] = colProfile
	return m
}()

func normHeader(h string) string {
	h = strings.ToLower(width.Narrow.String(strings.TrimSpace(h)))
	h = strings.NewReplacer(" ", "", "-", "_", "\u3000", "").Replace(h)
	return h
}

// Value aliases for people who fill the sheet in Chinese.
var (
	kindAliases   = map[string]Kind{"摄像机": KindCamera, "摄像头": KindCamera, "视频": KindCamera, "传感器": KindSensor, "网关": KindGateway}
	streamAliases = map[string]string{"主码流": "main", "主": "main", "子码流": "sub", "辅码流": "sub", "子": "sub"}
)

// CSVParseOptions tune ParseCSV.
type CSVParseOptions struct {
	// Profiles, when set, makes each device's profile have to exist and be for its kind.
	Profiles ProfileLookup
}

// CSVWriteOptions tune WriteCSV.
type CSVWriteOptions struct {
	// Encoding is "utf-8" (the default) or "gbk" (for old Excel and WPS that open CSV as GBK).
	Encoding string
	// NoBOM leaves out the UTF-8 byte order mark. Excel needs it to read UTF-8 CSV correctly.
	NoBOM bool
	// ChineseHeaders writes 站点编号, 站点名称 … instead of site_id, site_name ….
	ChineseHeaders bool
}

// RowError is one problem in one row of an imported sheet.
type RowError struct {
	Row    int    `json:"row"`    // 1-based line in the file; the header is row 1
	Column string `json:"column"` // the column's header as written in the file; "" for the whole row
	Reason string `json:"reason"`
}

func (e RowError) String() string {
	if e.Column == "" {
		return fmt.Sprintf("row %d: %s", e.Row, e.Reason)
	}
	return fmt.Sprintf("row %d, column %s: %s", e.Row, e.Column, e.Reason)
}

// ImportError lists every problem of a rejected sheet; nothing of it is imported. errs.KindOf
// reports it as KindInvalid.
type ImportError struct {
	Rows []RowError `json:"rows"`
	// Truncated is set when there were more problems than the limit (maxRowErrors).
	Truncated bool `json:"truncated,omitempty"`
}

const (
	maxRowErrors = 1000
	maxCSVBytes  = 64 << 20
)

func (e *ImportError) Error() string {
	var b strings.Builder
	rows := map[int]bool{}
	for _, r := range e.Rows {
		rows[r.Row] = true
	}
	fmt.Fprintf(&b, "the sheet has %d problem(s) in %d row(s); nothing was imported", len(e.Rows), len(rows))
	for i, r := range e.Rows {
		if i == 20 {
			fmt.Fprintf(&b, "; and %d more", len(e.Rows)-i)
			break
		}
		b.WriteString("; ")
		b.WriteString(r.String())
	}
	if e.Truncated {
		b.WriteString(" (stopped counting)")
	}
	return b.String()
}

// Unwrap lets errs.KindOf see KindInvalid.
func (e *ImportError) Unwrap() error {
	return errs.E(errs.KindInvalid, "csv_invalid", "the device sheet has errors; nothing was imported")
}

func (e *ImportError) add(row int, column, format string, args ...any) {
	if len(e.Rows) >= maxRowErrors {
		e.Truncated = true
		return
	}
	e.Rows = append(e.Rows, RowError{Row: row, Column: column, Reason: fmt.Sprintf(format, args...)})
}

// decodeCSVText turns the bytes of a sheet into text: UTF-8 with or without BOM, UTF-16 with
// BOM (Excel's "Unicode text"), or else GBK/GB18030 (what Excel on Chinese Windows writes).
func decodeCSVText(b []byte) (string, error) {
	switch {
	case bytes.HasPrefix(b, []byte{0xEF, 0xBB, 0xBF}):
		b = b[3:]
		if !utf8.Valid(b) {
			return "", errors.New("the file starts with a UTF-8 byte order mark but is not valid UTF-8")
		}
		return string(b), nil
	case bytes.HasPrefix(b, []byte{0xFF, 0xFE}), bytes.HasPrefix(b, []byte{0xFE, 0xFF}):
		out, err := unicode.UTF16(unicode.LittleEndian, unicode.ExpectBOM).NewDecoder().Bytes(b)
		if err != nil {
			return "", fmt.Errorf("the file looks like UTF-16 but does not decode: %w", err)
		}
		return string(out), nil
	case utf8.Valid(b):
		return string(b), nil
	}
	out, err := simplifiedchinese.GB18030.NewDecoder().Bytes(b)
	if err != nil || bytes.ContainsRune(out, utf8.RuneError) {
		return "", errors.New("the file is neither UTF-8 nor GBK/GB18030 text; save it from Excel as \"CSV UTF-8\"")
	}
	return string(out), nil
}

// ParseCSV reads a device sheet: one row per device with its site's columns (a row without
// device columns is a site without devices). It checks every row and returns *ImportError
// listing every problem, or the sites (in order of first appearance) and devices.
func ParseCSV(r io.Reader, opts CSVParseOptions) ([]Site, []Device, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxCSVBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("devices: read CSV: %w", err)
	}
	ie := &ImportError{}
	if len(raw) > maxCSVBytes {
		ie.add(1, "", "the file is larger than %d MiB; split it", maxCSVBytes>>20)
		return nil, nil, ie
	}
	text, err := decodeCSVText(raw)
	if err != nil {
		ie.add(1, "", "%v", err)
		return nil, nil, ie
	}
	cr := csv.NewReader(strings.NewReader(text))
	cr.FieldsPerRecord = -1
	first, _, _ := strings.Cut(text, "\n")
	if strings.Contains(first, "\t") && !strings.Contains(first, ",") {
		cr.Comma = '\t' // Excel's "Unicode text" export
	}

	header, err := cr.Read()
	if err == io.EOF {
		ie.add(1, "", "the file is empty; the first row must be the header (site_id, site_name, … or 站点编号, 站点名称, …)")
		return nil, nil, ie
	}
	if err != nil {
		ie.add(csvErrLine(err, 1), "", "%s", csvErrReason(err))
		return nil, nil, ie
	}
	cols := make([]int, len(header)) // file column → csvColumns index, -1 for an empty header
	names := make([]string, numColumns)
	for i, h := range header {
		h = strings.TrimSpace(h)
		cols[i] = -1
		if h == "" {
			continue
		}
		c, ok := csvHeaderIndex[normHeader(h)]
		switch {
		case !ok:
			ie.add(1, h, "unknown column; the columns are %s", knownColumns())
		case names[c] != "":
			ie.add(1, h, "column %s appears twice (also as %q)", csvColumns[c].name, names[c])
		default:
			cols[i] = c
			names[c] = h
		}
	}
	for _, c := range []int{colSiteID, colDeviceID, colKind} {
		if names[c] == "" {
			ie.add(1, csvColumns[c].name, "required column is missing (%s / %s)", csvColumns[c].name, csvColumns[c].zh)
		}
	}
	if len(ie.Rows) > 0 {
		return nil, nil, ie
	}
	colName := func(c int) string {
		if names[c] != "" {
			return names[c]
		}
		return csvColumns[c].name
	}

	p := sheetParser{
		ie: ie, opts: opts, colName: colName, sites: []Site{}, devs: []Device{},
		siteRow: map[string]int{}, deviceRow: map[string]int{}, mqttRow: map[string]int{}, mnRow: map[string]int{},
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			ie.add(csvErrLine(err, 0), "", "%s; nothing after this line was read", csvErrReason(err))
			break
		}
		line, _ := cr.FieldPos(0)
		var vals [numColumns]string
		blank := true
		for i, v := range rec {
			if strings.TrimSpace(v) == "" {
				continue
			}
			blank = false
			if i >= len(cols) || cols[i] < 0 {
				ie.add(line, "", "value %q in column %d, which has no header", truncate(v, 40), i+1)
				continue
			}
			vals[cols[i]] = v
		}
		if !blank {
			p.row(line, &vals)
		}
	}
	if len(ie.Rows) > 0 {
		return nil, nil, ie
	}
	return p.sites, p.devs, nil
}

func csvErrLine(err error, dflt int) int {
	var pe *csv.ParseError
	if errors.As(err, &pe) && pe.Line > 0 {
		return pe.Line
	}
	return dflt
}

func csvErrReason(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return "not valid CSV: " + pe.Err.Error() + " (a quote inside a cell must be doubled)"
	}
	return "not valid CSV: " + err.Error()
}

func knownColumns() string {
	parts := make([]string, len(csvColumns))
	for i, c := range csvColumns {
		parts[i] = c.name + "/" + c.zh
	}
	return strings.Join(parts, ", ")
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

// sheetParser turns rows into sites and devices, collecting every problem.
type sheetParser struct {
	ie      *ImportError
	opts    CSVParseOptions
	colName func(int) string

	sites     []Site
	devs      []Device
	siteRow   map[string]int // site id → row that defined it
	siteIdx   map[string]int // site id → index in sites
	deviceRow map[string]int
	mqttRow   map[string]int
	mnRow     map[string]int
}

func (p *sheetParser) fieldColumn(site bool, field string) string {
	for i, c := range csvColumns {
		if c.site == site && c.field == field {
			return p.colName(i)
		}
	}
	switch field {
	case "site_id":
		return p.colName(colSiteID)
	case "stream":
		return p.colName(colRTSPHost)
	}
	return field
}

func (p *sheetParser) row(line int, v *[numColumns]string) {
	for i, c := range csvColumns {
		if !c.secret && !c.numeric {
			v[i] = unescapeCell(v[i])
		}
	}
	site, ok := p.site(line, v)
	hasDevice := false
	for c := colDeviceID; c < numColumns; c++ {
		hasDevice = hasDevice || strings.TrimSpace(v[c]) != ""
	}
	if hasDevice {
		p.device(line, v)
	}
	if !ok {
		return
	}
	if prev, seen := p.siteRow[site.ID]; seen {
		p.sameSite(line, prev, &p.sites[p.siteIdx[site.ID]], &site)
		return
	}
	if p.siteIdx == nil {
		p.siteIdx = map[string]int{}
	}
	p.siteRow[site.ID] = line
	p.siteIdx[site.ID] = len(p.sites)
	p.sites = append(p.sites, site)
}

// site reads and checks the site part of a row.
func (p *sheetParser) site(line int, v *[numColumns]string) (Site, bool) {
	s := Site{
		ID: v[colSiteID], Name: v[colSiteName], USCC: v[colUSCC], RegionCode: v[colRegion],
		Address: v[colAddress], Department: v[colDepartment],
	}
	before := len(p.ie.Rows)
	if items := strings.TrimSpace(v[colItems]); items != "" {
		for _, it := range strings.FieldsFunc(items, func(r rune) bool { return r == ';' || r == '；' }) {
			if it = strings.TrimSpace(it); it != "" { // "a;;b" and a trailing ";" are what people type
				s.SupervisionItems = append(s.SupervisionItems, it)
			}
		}
	}
	s.Latitude = p.float(line, colLat, v[colLat])
	s.Longitude = p.float(line, colLon, v[colLon])
	normalizeSite(&s)
	if _, seen := p.siteRow[s.ID]; seen {
		// Later rows of a known site are checked for agreement with its first row instead.
		return s, len(p.ie.Rows) == before
	}
	badCoords := len(p.ie.Rows) > before // a number that did not parse is reported once
	for _, pr := range siteProblems(&s) {
		if badCoords && (pr.field == "latitude" || pr.field == "longitude") {
			continue
		}
		p.ie.add(line, p.fieldColumn(true, pr.field), "%s", pr.reason)
	}
	return s, len(p.ie.Rows) == before
}

func (p *sheetParser) float(line, col int, v string) *float64 {
	v = width.Narrow.String(strings.TrimSpace(v))
	if v == "" {
		return nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		p.ie.add(line, p.colName(col), "%q is not a number (decimal degrees, e.g. 35.30)", truncate(v, 40))
		return nil
	}
	return &f
}

func (p *sheetParser) int(line, col int, v, what string) int {
	v = width.Narrow.String(strings.TrimSpace(v))
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		p.ie.add(line, p.colName(col), "%q is not a whole number (%s)", truncate(v, 40), what)
		return 0
	}
	return n
}

// sameSite reports the columns in which a later row of a site disagrees with its first row.
func (p *sheetParser) sameSite(line, first int, a, b *Site) {
	diff := func(col int, x, y string) {
		if x != y {
			p.ie.add(line, p.colName(col), "site %q has %q here but %q on row %d; all rows of one site must agree", a.ID, truncate(y, 40), truncate(x, 40), first)
		}
	}
	fl := func(f *float64) string {
		if f == nil {
			return ""
		}
		return strconv.FormatFloat(*f, 'f', -1, 64)
	}
	diff(colSiteName, a.Name, b.Name)
	diff(colUSCC, a.USCC, b.USCC)
	diff(colRegion, a.RegionCode, b.RegionCode)
	diff(colAddress, a.Address, b.Address)
	diff(colLat, fl(a.Latitude), fl(b.Latitude))
	diff(colLon, fl(a.Longitude), fl(b.Longitude))
	diff(colDepartment, a.Department, b.Department)
	diff(colItems, strings.Join(a.SupervisionItems, ";"), strings.Join(b.SupervisionItems, ";"))
}

// device reads and checks the device part of a row.
func (p *sheetParser) device(line int, v *[numColumns]string) {
	kind := strings.ToLower(strings.TrimSpace(v[colKind]))
	if k, ok := kindAliases[kind]; ok {
		kind = string(k)
	}
	d := Device{
		ID: v[colDeviceID], SiteID: v[colSiteID], Kind: Kind(kind), Name: v[colName], Vendor: v[colVendor],
		Model: v[colModel], Profile: v[colProfile], Firmware: v[colFirmware], Serial: v[colSerial],
		InstalledOn: v[colInstalledOn],
	}
	hasStream := false
	for c := colRTSPHost; c <= colRTSPURL; c++ {
		hasStream = hasStream || strings.TrimSpace(v[c]) != ""
	}
	if hasStream || d.Kind == KindCamera {
		stream := strings.TrimSpace(v[colRTSPStream])
		if s, ok := streamAliases[stream]; ok {
			stream = s
		}
		d.Stream = &StreamSettings{
			Host: v[colRTSPHost], Port: p.int(line, colRTSPPort, v[colRTSPPort], "TCP port, empty for 554"),
			Username: v[colRTSPUser], Password: v[colRTSPPassword],
			Channel: p.int(line, colRTSPChannel, v[colRTSPChannel], "camera channel, empty for 1"),
			Stream:  stream, Transport: v[colRTSPTransport], URL: v[colRTSPURL],
		}
	}
	if strings.TrimSpace(v[colMQTTUser]) != "" {
		d.MQTT = &MQTTCredentials{Username: v[colMQTTUser], Secret: v[colMQTTSecret]}
	} else if v[colMQTTSecret] != "" {
		p.ie.add(line, p.colName(colMQTTSecret), "a secret without mqtt_username; fill in the username too")
	}
	if strings.TrimSpace(v[colHJ212MN]) != "" {
		d.HJ212 = &HJ212Credentials{MN: v[colHJ212MN], PW: v[colHJ212PW]}
	} else if v[colHJ212PW] != "" {
		p.ie.add(line, p.colName(colHJ212PW), "a PW without hj212_mn; fill in the station's MN too")
	}
	normalizeDevice(&d)
	bad, kindOK := false, true
	for _, pr := range deviceProblems(&d) {
		bad = true
		kindOK = kindOK && pr.field != "kind" && pr.field != "profile"
		if pr.field == "site_id" {
			continue // reported with the site part of the row
		}
		p.ie.add(line, p.fieldColumn(false, pr.field), "%s", pr.reason)
	}
	if r := profileProblem(&d, p.opts.Profiles); r != "" && kindOK {
		bad = true
		p.ie.add(line, p.colName(colProfile), "%s", r)
	}
	if prev, dup := p.deviceRow[d.ID]; dup && d.ID != "" {
		bad = true
		p.ie.add(line, p.colName(colDeviceID), "device %q is already on row %d", d.ID, prev)
	} else if d.ID != "" {
		p.deviceRow[d.ID] = line
	}
	if d.MQTT != nil && d.MQTT.Username != "" {
		if prev, dup := p.mqttRow[d.MQTT.Username]; dup {
			bad = true
			p.ie.add(line, p.colName(colMQTTUser), "MQTT username %q is already used on row %d", d.MQTT.Username, prev)
		} else {
			p.mqttRow[d.MQTT.Username] = line
		}
	}
	if d.HJ212 != nil && d.HJ212.MN != "" {
		if prev, dup := p.mnRow[d.HJ212.MN]; dup {
			bad = true
			p.ie.add(line, p.colName(colHJ212MN), "HJ 212 MN %q is already used on row %d", d.HJ212.MN, prev)
		} else {
			p.mnRow[d.HJ212.MN] = line
		}
	}
	if !bad {
		p.devs = append(p.devs, d)
	}
}

// Spreadsheets run a cell that starts with = + - @ as a formula, so a device name can become
// a command on the maintainer's PC. Such cells are written with a leading apostrophe (which
// Excel shows as text), and one leading apostrophe is removed on import. A value that itself
// starts with an apostrophe gets one more, so every value survives the round trip.
func escapeCell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r', '\'':
		return "'" + s
	}
	return s
}

func unescapeCell(s string) string {
	if len(s) >= 2 && s[0] == '\'' {
		switch s[1] {
		case '=', '+', '-', '@', '\t', '\r', '\'':
			return s[1:]
		}
	}
	return s
}

// WriteCSV writes sites and their devices as one sheet that ParseCSV reads back: a row per
// device, and a row without device columns for a site that has none. Secrets are never
// written; their columns stay empty so the file can be filled in and imported.
func WriteCSV(w io.Writer, sites []Site, devs []Device, opts CSVWriteOptions) error {
	var enc *encoding.Encoder
	switch strings.ToLower(strings.ReplaceAll(opts.Encoding, "-", "")) {
	case "", "utf8":
	case "gbk", "cp936":
		enc = simplifiedchinese.GBK.NewEncoder()
	case "gb18030":
		enc = simplifiedchinese.GB18030.NewEncoder()
	default:
		return errs.E(errs.KindInvalid, "invalid_encoding", "CSV encoding %q is not supported; use utf-8 or gbk", opts.Encoding)
	}
	known := map[string]bool{}
	for _, s := range sites {
		known[s.ID] = true
	}
	bySite := map[string][]Device{}
	for _, d := range devs {
		if !known[d.SiteID] {
			return errs.E(errs.KindInvalid, "export_site_missing", "device %q is on site %q, which is not among the exported sites", d.ID, d.SiteID)
		}
		bySite[d.SiteID] = append(bySite[d.SiteID], d)
	}

	var buf bytes.Buffer
	cw := csv.NewWriter(&buf)
	cw.UseCRLF = true // Windows tools expect it
	header := make([]string, numColumns)
	for i, c := range csvColumns {
		header[i] = c.name
		if opts.ChineseHeaders {
			header[i] = c.zh
		}
	}
	_ = cw.Write(header) // writes to a bytes.Buffer do not fail
	for _, s := range sites {
		ds := bySite[s.ID]
		if len(ds) == 0 {
			_ = cw.Write(csvRecord(&s, nil))
		}
		for i := range ds {
			_ = cw.Write(csvRecord(&s, &ds[i]))
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("devices: write CSV: %w", err)
	}

	out := buf.Bytes()
	if enc != nil {
		b, err := enc.Bytes(out)
		if err != nil {
			return errs.E(errs.KindInvalid, "csv_not_encodable", "%s cannot hold the character %s; export as utf-8 instead", opts.Encoding, firstUnencodable(out, opts.Encoding))
		}
		out = b
	} else if !opts.NoBOM {
		out = append([]byte{0xEF, 0xBB, 0xBF}, out...)
	}
	if _, err := w.Write(out); err != nil {
		return fmt.Errorf("devices: write CSV: %w", err)
	}
	return nil
}

func firstUnencodable(text []byte, enc string) string {
	e := simplifiedchinese.GBK.NewEncoder()
	if strings.EqualFold(enc, "gb18030") {
		e = simplifiedchinese.GB18030.NewEncoder()
	}
	for _, r := range string(text) {
		if _, err := e.String(string(r)); err != nil {
			return fmt.Sprintf("%q (%U)", r, r)
		}
	}
	return "in the data"
}

func csvRecord(s *Site, d *Device) []string {
	rec := make([]string, numColumns)
	rec[colSiteID] = s.ID
	rec[colSiteName] = s.Name
	rec[colUSCC] = s.USCC
	rec[colRegion] = s.RegionCode
	rec[colAddress] = s.Address
	if s.Latitude != nil && s.Longitude != nil {
		rec[colLat] = strconv.FormatFloat(*s.Latitude, 'f', -1, 64)
		rec[colLon] = strconv.FormatFloat(*s.Longitude, 'f', -1, 64)
	}
	rec[colDepartment] = s.Department
	rec[colItems] = strings.Join(s.SupervisionItems, ";")
	if d != nil {
		rec[colDeviceID] = d.ID
		rec[colKind] = string(d.Kind)
		rec[colName] = d.Name
		rec[colVendor] = d.Vendor
		rec[colModel] = d.Model
		rec[colProfile] = d.Profile
		rec[colFirmware] = d.Firmware
		rec[colSerial] = d.Serial
		rec[colInstalledOn] = d.InstalledOn
		if st := d.Stream; st != nil {
			rec[colRTSPHost] = st.Host
			if st.Port != 0 {
				rec[colRTSPPort] = strconv.Itoa(st.Port)
			}
			rec[colRTSPUser] = st.Username
			if st.Channel != 0 {
				rec[colRTSPChannel] = strconv.Itoa(st.Channel)
			}
			rec[colRTSPStream] = st.Stream
			rec[colRTSPTransport] = st.Transport
			rec[colRTSPURL] = st.URL
		}
		if d.MQTT != nil {
			rec[colMQTTUser] = d.MQTT.Username
		}
		if d.HJ212 != nil {
			rec[colHJ212MN] = d.HJ212.MN
		}
	}
	for i, c := range csvColumns {
		if !c.numeric && !c.secret {
			rec[i] = escapeCell(rec[i])
		}
	}
	return rec
}
