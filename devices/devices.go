// Package devices owns the supervised sites (监管对象), the cameras, sensors and gateways on
// them, their credentials and maintenance records, and the store behind them. It does not
// decode payloads (ingest/) or move video (streams/).
package devices

import (
	"context"
	"time"
)

// Kind is what a device is.
type Kind string

const (
	KindCamera  Kind = "camera"
	KindSensor  Kind = "sensor"
	KindGateway Kind = "gateway"
)

// Site is a supervised object (监管对象): a service hall, market, construction site, kitchen,
// cold store or plant.
type Site struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// USCC is the unified social credit code (统一社会信用代码, GB 32100-2015) of the
	// supervised entity; checksum-validated.
	USCC string `json:"uscc"`
	// RegionCode is the six-digit administrative division code (GB/T 2260), e.g. 410702.
	RegionCode string   `json:"region_code"`
	Address    string   `json:"address"`
	Latitude   *float64 `json:"latitude,omitempty"`
	Longitude  *float64 `json:"longitude,omitempty"`
	// Department is the supervising department, e.g. 市生态环境局.
	Department string `json:"department"`
	// SupervisionItems are the supervision item codes (监管事项编码) that apply to the site.
	SupervisionItems []string  `json:"supervision_items"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
}

// Device is a camera, sensor or site gateway registered on a site.
type Device struct {
	ID          string `json:"id"`
	SiteID      string `json:"site_id"`
	Kind        Kind   `json:"kind"`
	Name        string `json:"name"`
	Vendor      string `json:"vendor"`
	Model       string `json:"model"`
	Profile     string `json:"profile"` // firmware-profiles id
	Firmware    string `json:"firmware"`
	Serial      string `json:"serial"`
	InstalledOn string `json:"installed_on"` // YYYY-MM-DD, may be empty
	// Stream holds camera connection settings; nil for other kinds.
	Stream *StreamSettings `json:"stream,omitempty"`
	// MQTT holds a sensor's broker credentials; nil when the device has none.
	MQTT *MQTTCredentials `json:"mqtt,omitempty"`
	// HJ212 holds an HJ 212 station's identity (MN) and password (PW); nil for other devices.
	HJ212     *HJ212Credentials `json:"hj212,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// StreamSettings says how to pull a camera. The RTSP URL is built from the profile's template
// unless URL is set.
type StreamSettings struct {
	Host     string `json:"host"`
	Port     int    `json:"port,omitempty"` // default 554
	Username string `json:"username,omitempty"`
	// Password is write-only: accepted on create/update, stored encrypted, never returned by
	// reads (use Store.CameraPassword).
	Password  string `json:"password,omitempty"`
	Channel   int    `json:"channel,omitempty"`   // camera channel, default 1
	Stream    string `json:"stream,omitempty"`    // "main" or "sub" (default)
	Transport string `json:"transport,omitempty"` // "tcp" (default) or "udp"
	URL       string `json:"url,omitempty"`       // explicit rtsp:// URL without credentials; overrides the template
	// HasPassword is set on reads when a password is stored.
	HasPassword bool `json:"has_password,omitempty"`
}

// MQTTCredentials are a sensor's broker login. Secret is write-only: accepted on create,
// stored hashed, never returned by reads.
type MQTTCredentials struct {
	Username string `json:"username"`
	Secret   string `json:"secret,omitempty"`
}

// HJ212Credentials are an HJ 212-2017 station's identity and password (docs/contracts.md §8):
// MN (监测点编码, up to 24 letters and digits) names the station in every frame and PW (访问密码)
// is sent with it. PW is write-only: accepted on create, stored hashed, never returned by reads.
type HJ212Credentials struct {
	MN string `json:"mn"`
	PW string `json:"pw,omitempty"`
}

// MaintenanceEntry is one line in a device's maintenance log.
type MaintenanceEntry struct {
	ID       int64     `json:"id"`
	DeviceID string    `json:"device_id"`
	At       time.Time `json:"at"`
	Actor    string    `json:"actor"`
	Kind     string    `json:"kind"` // install, inspect, repair, replace, firmware, note
	Note     string    `json:"note"`
}

// Scope limits what a caller may see: sites of the listed departments and of regions whose
// code starts with one of the listed prefixes. Empty lists mean no limit on that axis.
type Scope struct {
	Departments []string
	Regions     []string
}

// SiteFilter selects sites in List calls.
type SiteFilter struct {
	Scope      Scope
	Department string
	RegionCode string // prefix
}

// DeviceFilter selects devices in List calls.
type DeviceFilter struct {
	Scope   Scope
	SiteID  string
	Kind    Kind
	Profile string
}

// Store keeps sites, devices and maintenance records. Errors carry errs kinds: KindNotFound,
// KindConflict (duplicate id, MQTT username or HJ 212 MN taken, site still has devices), KindInvalid.
type Store interface {
	CreateSite(ctx context.Context, s *Site) error
	GetSite(ctx context.Context, id string) (Site, error)
	UpdateSite(ctx context.Context, s *Site) error
	DeleteSite(ctx context.Context, id string) error
	ListSites(ctx context.Context, f SiteFilter) ([]Site, error)

	CreateDevice(ctx context.Context, d *Device) error
	GetDevice(ctx context.Context, id string) (Device, error)
	UpdateDevice(ctx context.Context, d *Device) error
	DeleteDevice(ctx context.Context, id string) error
	ListDevices(ctx context.Context, f DeviceFilter) ([]Device, error)

	// Import creates or updates the given sites and devices in one transaction: all or
	// nothing.
	Import(ctx context.Context, sites []Site, devs []Device) error

	AddMaintenance(ctx context.Context, e *MaintenanceEntry) error
	ListMaintenance(ctx context.Context, deviceID string) ([]MaintenanceEntry, error)

	// CameraPassword returns the decrypted RTSP password of a camera ("" if none).
	CameraPassword(ctx context.Context, deviceID string) (string, error)
	// CheckMQTT verifies a sensor's broker login and returns its device.
	CheckMQTT(ctx context.Context, username, secret string) (Device, error)
	// CheckHJ212 verifies an HJ 212 station's MN and PW and returns its device.
	CheckHJ212(ctx context.Context, mn, pw string) (Device, error)
}
