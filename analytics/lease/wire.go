package lease

import "time"

// Defaults: a lease lives 15 s and workers renew every 5 s, so a dead worker's cameras are
// taken over within 20 s.
const (
	DefaultTTL        = 15 * time.Second
	DefaultRenewEvery = 5 * time.Second
)

// Assignment is one camera a worker must analyse.
type Assignment struct {
	CameraID  string         `json:"camera_id"`
	SiteID    string         `json:"site_id,omitempty"`
	Name      string         `json:"name,omitempty"`
	RTSPURL   string         `json:"rtsp_url"`
	Settings  CameraSettings `json:"settings"`
	ExpiresAt time.Time      `json:"expires_at"`
	// ActiveAlarms are the camera's alarm keys that are active in the gateway, so a worker
	// that takes the camera over can clear what its predecessor raised.
	ActiveAlarms []string `json:"active_alarms,omitempty"`
}

// Grant answers Acquire: the worker's whole current set of cameras.
type Grant struct {
	WorkerID     string       `json:"worker_id"`
	TTLMillis    int64        `json:"ttl_ms"`
	RenewMillis  int64        `json:"renew_every_ms"`
	Assignments  []Assignment `json:"assignments"`
	Unassigned   int          `json:"unassigned"` // cameras no live worker has room for
	LiveWorkers  int          `json:"live_workers"`
	TotalCameras int          `json:"total_cameras"`
}

// Lease is a row of analytics_leases (for the dashboard and tests).
type Lease struct {
	CameraID  string    `json:"camera_id"`
	WorkerID  string    `json:"worker_id"`
	ExpiresAt time.Time `json:"expires_at"`
	Live      bool      `json:"live"`
}

// Renewal answers a renewal (POST /api/v1/analytics/leases/renew): the cameras the worker still
// holds (one missing was taken over and must be dropped) and when the leases expire (RFC 3339,
// milliseconds).
type Renewal struct {
	Held      []string `json:"held"`
	ExpiresAt string   `json:"expires_at"`
}
