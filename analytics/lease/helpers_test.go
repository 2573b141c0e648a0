package lease_test

import (
	"encoding/json"

	"github.com/offsite-gw/offsite/analytics/lease"
)

func jsonRoundTrip(s lease.CameraSettings) (lease.CameraSettings, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return lease.CameraSettings{}, err
	}
	return lease.ParseSettings(b)
}
