package events_test

import (
	"testing"

	"github.com/offsite-gw/offsite/events"
)

func TestIsDeviceHealth(t *testing.T) {
	for typ, want := range map[string]bool{
		"device.offline": true, "device.online": true, "sensor.silent": true, "video.signal_lost": true,
		"sensor.threshold": false, "sensor.silent.extra": false, "video.intrusion": false, "alert.opened": false, "device": false,
	} {
		if got := events.IsDeviceHealth(typ); got != want {
			t.Errorf("IsDeviceHealth(%q) = %v, want %v", typ, got, want)
		}
	}
}

func TestOutcomesAreLabelled(t *testing.T) {
	for _, o := range events.Outcomes {
		if o.Code == "" || o.Label == "" || o.LabelEN == "" {
			t.Errorf("outcome %+v lacks a code or a label", o)
		}
	}
}
