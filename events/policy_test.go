package events_test

import (
	"strings"
	"testing"

	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/internal/errs"
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

func TestParseEvidencePathAndOpenRef(t *testing.T) {
	s := &events.EvidenceStore{Dir: t.TempDir()}
	sum, url, err := s.Put(strings.NewReader("photo"), ".jpg")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := events.ParseEvidencePath(sum[:2], sum[2:4], sum+".jpg")
	if err != nil || ref.SHA256 != sum || ref.ContentType != "image/jpeg" || url != "/api/v1/evidence/"+sum[:2]+"/"+sum[2:4]+"/"+sum+".jpg" {
		t.Fatalf("ParseEvidencePath = %+v, %v (url %s)", ref, err, url)
	}
	f, size, err := s.OpenRef(ref)
	if err != nil || size != 5 {
		t.Fatalf("OpenRef = %d, %v", size, err)
	}
	f.Close()
	for _, p := range [][3]string{
		{sum[:2], sum[2:4], strings.ToUpper(sum) + ".jpg"},
		{"00", "00", sum + ".jpg"},
		{sum[:2], sum[2:4], sum + ".php"},
		{sum[:2], sum[2:4], sum + ".jpg.jpg"},
		{"..", "..", "passwd"},
		{"tmp", sum[2:4], sum + ".jpg"},
	} {
		if _, err := events.ParseEvidencePath(p[0], p[1], p[2]); errs.KindOf(err) != errs.KindNotFound {
			t.Errorf("ParseEvidencePath(%q) = %v, want not found", p, err)
		}
	}
	ref.Ext, ref.ContentType = ".png", "image/png"
	if _, _, err := s.OpenRef(ref); errs.KindOf(err) != errs.KindNotFound {
		t.Errorf("OpenRef of a file never stored = %v, want not found", err)
	}
}
