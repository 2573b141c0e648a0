package events_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/errs"
)

type fakeDir struct{}

func (fakeDir) GetSite(_ context.Context, id string) (devices.Site, error) {
	if id != "site-1" {
		return devices.Site{}, errs.E(errs.KindNotFound, "site_not_found", "no site")
	}
	return devices.Site{ID: id, Name: "某农贸市场", USCC: "91410700MA44XXXX0X", RegionCode: "410702",
		Department: "市市场监督管理局", SupervisionItems: []string{"410700-SC-001"}}, nil
}

func (fakeDir) GetDevice(_ context.Context, id string) (devices.Device, error) {
	return devices.Device{ID: id, SiteID: "site-1", Kind: "camera", Profile: "hikvision-ds2cd"}, nil
}

func TestEnrich(t *testing.T) {
	e := event.Event{Type: "video.crowding", Device: &event.Device{ID: "cam-1"}}
	require.NoError(t, events.Enrich(context.Background(), fakeDir{}, &e))
	require.Equal(t, &event.Site{ID: "site-1", Name: "某农贸市场", USCC: "91410700MA44XXXX0X", RegionCode: "410702"}, e.Site)
	require.Equal(t, "camera", e.Device.Kind)
	require.Equal(t, "hikvision-ds2cd", e.Device.Profile)
	require.Equal(t, "市市场监督管理局", e.Department)
	require.Equal(t, "410700-SC-001", e.SupervisionItem)

	kept := event.Event{Type: "a.b", Site: &event.Site{ID: "site-1"}, Department: "其他"}
	require.NoError(t, events.Enrich(context.Background(), fakeDir{}, &kept))
	require.Equal(t, "其他", kept.Department)
	bad := event.Event{Type: "a.b", Site: &event.Site{ID: "nope"}}
	require.Equal(t, errs.KindNotFound, errs.KindOf(events.Enrich(context.Background(), fakeDir{}, &bad)))
}
