package centre_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/centre"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

type rig struct {
	log     *events.Log
	gws     *devices.GatewayStore
	recv    *centre.Receiver
	secrets map[string]string
}

func newRig(t *testing.T, db *store.DB) *rig {
	t.Helper()
	sealer, err := devices.NewSealer(devices.GenerateSealerKey())
	require.NoError(t, err)
	l := &events.Log{DB: db, GatewayID: "centre-01"}
	require.NoError(t, l.Initialize())
	al := &events.Alerts{Log: l}
	require.NoError(t, al.Initialize())
	r := &rig{log: l, gws: &devices.GatewayStore{DB: db, Sealer: sealer}, secrets: map[string]string{}}
	r.recv = &centre.Receiver{Log: l, Gateways: r.gws}
	for _, id := range []string{"gw-hall", "gw-market"} {
		g := devices.Gateway{ID: id, Name: id}
		secret, err := r.gws.Enrol(context.Background(), &g, "")
		require.NoError(t, err)
		r.secrets[id] = secret
	}
	return r
}

func siteEvent(gw, id, typ string) event.Event {
	return event.Event{ID: id, Type: typ, Severity: "major", State: event.StateActive, AlarmKey: "dev-1/" + typ,
		OccurredAt: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC), GatewayID: gw, Department: "市住房和城乡建设局",
		Site: &event.Site{ID: "site-1", Name: "工地", RegionCode: "410702"}, Device: &event.Device{ID: "dev-1", Kind: "sensor"},
		Message: "扬尘超标"}
}

// signed builds a batch body and its headers as a site gateway signs them.
func signed(t *testing.T, gw, secret string, evs ...event.Event) (http.Header, []byte) {
	t.Helper()
	for i := range evs {
		b, err := json.Marshal(&evs[i])
		require.NoError(t, err)
		evs[i].Raw = b
	}
	body := uplink.EncodeBatch(gw, evs)
	return sign(t, gw, secret, body), body
}

func sign(t *testing.T, gw, secret string, body []byte) http.Header {
	req, _ := http.NewRequest(http.MethodPost, "http://centre/offsite/v1/events:batch", nil)
	require.NoError(t, uplink.SignRequest(req, gw, uplink.AlgSM3, []byte(secret), time.Now(), body))
	return req.Header
}

func eventsOf(t *testing.T, l *events.Log, typ string) []event.Event {
	evs, err := l.Since(context.Background(), 0, events.Filter{Types: []string{typ}}, 1000)
	require.NoError(t, err)
	return evs
}

func TestBatchIsLoggedOnceInOrderWithItsIDsAndGateway(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		r := newRig(t, db)
		e1 := siteEvent("gw-hall", "01JDA0000000000000000000A1", event.TypeSensorThreshold)
		e2 := siteEvent("gw-hall", "01JDA0000000000000000000A2", event.TypeSensorSilent)
		e2.AlarmKey, e2.State = "", ""
		h, body := signed(t, "gw-hall", r.secrets["gw-hall"], e1, e2)
		resp, err := r.recv.Batch(ctx, h, body, "127.0.0.1")
		require.NoError(t, err)
		require.Equal(t, []string{e1.ID, e2.ID}, resp.Accepted)
		require.Empty(t, resp.Rejected)

		got := eventsOf(t, r.log, "sensor.")
		require.Len(t, got, 2)
		require.Equal(t, e1.ID, got[0].ID, "kept in the order sent")
		require.Equal(t, "gw-hall", got[0].GatewayID, "keeps the site's gateway_id")
		sent, err := json.Marshal(&e1)
		require.NoError(t, err)
		require.JSONEq(t, string(sent), string(got[0].Raw), "stored with the same content")

		// The alarm opened an alert at the centre, in the department of the site's event.
		opened := eventsOf(t, r.log, "alert.opened")
		require.Len(t, opened, 1)
		require.Equal(t, "centre-01", opened[0].GatewayID)
		require.Equal(t, "市住房和城乡建设局", opened[0].Department)

		// The same batch again (new nonce, as a retry is): duplicates, nothing new.
		h, body = signed(t, "gw-hall", r.secrets["gw-hall"], e1, e2)
		resp, err = r.recv.Batch(ctx, h, body, "127.0.0.1")
		require.NoError(t, err)
		require.Empty(t, resp.Accepted)
		require.Equal(t, []string{e1.ID, e2.ID}, resp.Duplicates)
		require.Len(t, eventsOf(t, r.log, "sensor."), 2)

		// A duplicate id with other content is rejected and counted, the rest of the batch stored.
		changed := e1
		changed.Message = "别的内容"
		e3 := siteEvent("gw-hall", "01JDA0000000000000000000A3", event.TypeVideoTamper)
		h, body = signed(t, "gw-hall", r.secrets["gw-hall"], changed, e3)
		resp, err = r.recv.Batch(ctx, h, body, "127.0.0.1")
		require.NoError(t, err)
		require.Equal(t, []string{e3.ID}, resp.Accepted)
		require.Len(t, resp.Rejected, 1)
		require.Equal(t, e1.ID, resp.Rejected[0].ID)
		require.Contains(t, resp.Rejected[0].Reason, "different content")
		stored, err := r.log.Get(ctx, e1.ID)
		require.NoError(t, err)
		require.Equal(t, "扬尘超标", stored.Message, "the first content stays")

		g, err := r.gws.Get(ctx, "gw-hall")
		require.NoError(t, err)
		require.Equal(t, devices.GatewayOnline, g.State)
		require.EqualValues(t, 3, g.EventsReceived)
		require.EqualValues(t, 1, g.Refused)
		require.Contains(t, g.LastRefusal, "conflicting_content")
	})
}

func TestRefusedRequestsStoreNothing(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		r := newRig(t, db)
		before, _ := r.log.Head()
		ev := siteEvent("gw-hall", "01JDA0000000000000000000B1", event.TypeSensorThreshold)

		// Signed with another gateway's secret.
		h, body := signed(t, "gw-hall", r.secrets["gw-market"], ev)
		_, err := r.recv.Batch(ctx, h, body, "127.0.0.1")
		require.True(t, errs.Is(err, errs.KindUnauthorized), "%v", err)
		require.Equal(t, centre.RefusedSignature, errs.CodeOf(err))

		// Unknown gateway.
		h, body = signed(t, "gw-nobody", "0123456789abcdef0123", siteEvent("gw-nobody", "01JDA0000000000000000000B2", event.TypeSensorThreshold))
		_, err = r.recv.Batch(ctx, h, body, "127.0.0.1")
		require.Equal(t, centre.RefusedUnknownGateway, errs.CodeOf(err))

		// A replayed request: the first is stored, the same bytes and headers again are refused.
		h, body = signed(t, "gw-hall", r.secrets["gw-hall"], ev)
		_, err = r.recv.Batch(ctx, h, body, "127.0.0.1")
		require.NoError(t, err)
		head1, _ := r.log.Head()
		_, err = r.recv.Batch(ctx, h, body, "127.0.0.1")
		require.Equal(t, centre.RefusedReplay, errs.CodeOf(err), "%v", err)
		head2, _ := r.log.Head()
		require.Equal(t, head1, head2, "a replay stores nothing")

		// A stale timestamp.
		stale := siteEvent("gw-hall", "01JDA0000000000000000000B3", event.TypeSensorThreshold)
		b, _ := json.Marshal(&stale)
		stale.Raw = b
		body = uplink.EncodeBatch("gw-hall", []event.Event{stale})
		req, _ := http.NewRequest(http.MethodPost, "http://centre/", nil)
		require.NoError(t, uplink.SignRequest(req, "gw-hall", uplink.AlgSM3, []byte(r.secrets["gw-hall"]), time.Now().Add(-time.Hour), body))
		_, err = r.recv.Batch(ctx, req.Header, body, "127.0.0.1")
		require.Equal(t, centre.RefusedStale, errs.CodeOf(err))

		// An event claiming another gateway: rejected alone, the site dead-letters it.
		foreign := siteEvent("gw-market", "01JDA0000000000000000000B4", event.TypeSensorThreshold)
		h, body = signed(t, "gw-hall", r.secrets["gw-hall"], foreign)
		resp, err := r.recv.Batch(ctx, h, body, "127.0.0.1")
		require.NoError(t, err)
		require.Empty(t, resp.Accepted)
		require.Len(t, resp.Rejected, 1)
		require.Contains(t, resp.Rejected[0].Reason, `gateway_id "gw-market" is not the sender's`)
		_, err = r.log.Get(ctx, foreign.ID)
		require.True(t, errs.Is(err, errs.KindNotFound), "nothing of it is stored")

		// A body naming another gateway than the signed header.
		_, body = signed(t, "gw-hall", r.secrets["gw-hall"], ev)
		forged := []byte(strings.Replace(string(body), `"gateway_id":"gw-hall"`, `"gateway_id":"gw-market"`, 1))
		_, err = r.recv.Batch(ctx, sign(t, "gw-hall", r.secrets["gw-hall"], forged), forged, "127.0.0.1")
		require.Equal(t, centre.RefusedForeign, errs.CodeOf(err))

		after, _ := r.log.Head()
		// Only ev itself and the alert it opened (alert.opened) were logged.
		require.Equal(t, before+2, after)
		g, err := r.gws.Get(ctx, "gw-hall")
		require.NoError(t, err)
		require.EqualValues(t, 5, g.Refused, "wrong secret, replay, stale, foreign event, forged body")
	})
}

func TestInventoryKeepsTheNewestRevisionAndIsScoped(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		r := newRig(t, db)
		put := func(gw string, inv devices.Inventory) (centre.InventoryAnswer, error) {
			body, err := json.Marshal(inv)
			require.NoError(t, err)
			return r.recv.Inventory(ctx, sign(t, gw, r.secrets[gw], body), body, "127.0.0.1")
		}
		hall := devices.Inventory{GatewayID: "gw-hall", Revision: 2, Version: "v1.2",
			Sites: []devices.Site{{ID: "hall", Name: "政务服务中心", Department: "市政务服务和大数据管理局", RegionCode: "410702"}},
			Devices: []devices.InventoryDevice{{ID: "cam-1", SiteID: "hall", Kind: devices.KindCamera, Name: "窗口", State: "online"},
				{ID: "env-1", SiteID: "hall", Kind: devices.KindSensor, Name: "温湿度", State: "offline"}}}
		ans, err := put("gw-hall", hall)
		require.NoError(t, err)
		require.Equal(t, centre.InventoryAnswer{Revision: 2, Stored: true}, ans)
		market := devices.Inventory{GatewayID: "gw-market", Revision: 1,
			Sites:   []devices.Site{{ID: "market", Name: "农贸市场", Department: "市市场监督管理局", RegionCode: "410702"}},
			Devices: []devices.InventoryDevice{{ID: "cam-1", SiteID: "market", Kind: devices.KindCamera, Name: "后厨"}}}
		_, err = put("gw-market", market)
		require.NoError(t, err)

		// An older revision changes nothing; the answer names the revision held.
		old := hall
		old.Revision = 1
		old.Devices = nil
		ans, err = put("gw-hall", old)
		require.NoError(t, err)
		require.Equal(t, centre.InventoryAnswer{Revision: 2, Stored: false}, ans)
		devs, err := r.gws.ChildDevices(ctx, "gw-hall", devices.DeviceFilter{})
		require.NoError(t, err)
		require.Len(t, devs, 2)

		// Scope by department works across gateways; one id on two gateways stays two devices.
		cams, err := r.gws.ChildDevices(ctx, "", devices.DeviceFilter{Kind: devices.KindCamera})
		require.NoError(t, err)
		require.Len(t, cams, 2)
		scoped, err := r.gws.ChildDevices(ctx, "", devices.DeviceFilter{Scope: devices.Scope{Departments: []string{"市市场监督管理局"}}})
		require.NoError(t, err)
		require.Len(t, scoped, 1)
		require.Equal(t, "gw-market", scoped[0].Gateway)
		sites, err := r.gws.ChildSites(ctx, "", devices.SiteFilter{Scope: devices.Scope{Departments: []string{"市政务服务和大数据管理局"}}})
		require.NoError(t, err)
		require.Len(t, sites, 1)
		require.Equal(t, "gw-hall", sites[0].Gateway)

		g, err := r.gws.Get(ctx, "gw-hall")
		require.NoError(t, err)
		require.EqualValues(t, 2, g.InventoryRevision)
		require.Equal(t, "v1.2", g.Version)
		require.Equal(t, 1, g.Sites)
		require.Equal(t, 2, g.Devices)

		// An inventory naming another gateway is refused.
		_, err = put("gw-hall", market)
		require.Equal(t, centre.RefusedForeign, errs.CodeOf(err))
		// A device on a site the inventory does not have is refused with the reason.
		bad := hall
		bad.Revision = 3
		bad.Devices = []devices.InventoryDevice{{ID: "x", SiteID: "nowhere", Kind: devices.KindSensor}}
		_, err = put("gw-hall", bad)
		require.Equal(t, centre.RefusedBody, errs.CodeOf(err))
		require.Contains(t, err.Error(), `site "nowhere" is not in the inventory`)
	})
}

func TestSilentGatewayGoesOfflineAndComesBack(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		r := newRig(t, db)
		now := time.Now()
		clock := func() time.Time { return now }
		var mu = make(chan struct{}, 1)
		mu <- struct{}{}
		setNow := func(t time.Time) { <-mu; now = t; mu <- struct{}{} }
		readNow := func() time.Time { <-mu; defer func() { mu <- struct{}{} }(); return clock() }
		r.recv.Now = readNow
		r.gws.Now = readNow

		h, body := signed(t, "gw-hall", r.secrets["gw-hall"], siteEvent("gw-hall", "01JDA0000000000000000000C1", event.TypeSensorSilent))
		_, err := r.recv.Batch(ctx, h, body, "127.0.0.1")
		require.NoError(t, err)
		inv, err := json.Marshal(devices.Inventory{GatewayID: "gw-hall", Revision: 1,
			Sites:   []devices.Site{{ID: "hall", Name: "政务服务中心", Department: "市政务服务和大数据管理局", RegionCode: "410702"}},
			Devices: []devices.InventoryDevice{{ID: "cam-1", SiteID: "hall", Kind: devices.KindCamera, Name: "窗口", State: "online"}}})
		require.NoError(t, err)
		_, err = r.recv.Inventory(ctx, sign(t, "gw-hall", r.secrets["gw-hall"], inv), inv, "127.0.0.1")
		require.NoError(t, err)
		camState := func() (string, string) {
			d, _, err := r.gws.ChildDevice(ctx, "", "cam-1")
			require.NoError(t, err)
			list, err := r.gws.ChildDevices(ctx, "gw-hall", devices.DeviceFilter{})
			require.NoError(t, err)
			require.Len(t, list, 1)
			require.Equal(t, d.State+"/"+d.Reason, list[0].State+"/"+list[0].Reason, "one device, two reads")
			return d.State, d.Reason
		}
		st, _ := camState()
		require.Equal(t, "online", st)

		mon := &centre.Monitor{Receiver: r.recv, OfflineAfter: time.Minute, Every: 10 * time.Millisecond}
		go mon.Run(ctx)
		// The clock moves on while the monitor runs; silence counts only from its start.
		require.Eventually(t, func() bool {
			setNow(readNow().Add(15 * time.Second))
			return len(eventsOf(t, r.log, event.TypeGatewayOffline)) == 1
		}, 30*time.Second, 20*time.Millisecond)
		off := eventsOf(t, r.log, event.TypeGatewayOffline)[0]
		require.Equal(t, "gateway/gw-hall/offline", off.AlarmKey)
		require.Equal(t, event.StateActive, off.State)
		g, err := r.gws.Get(ctx, "gw-hall")
		require.NoError(t, err)
		require.Equal(t, devices.GatewayOffline, g.State)
		// What the silent gateway last reported is not live any more: its camera reads offline
		// because the site cannot be reached.
		st, why := camState()
		require.Equal(t, "offline", st)
		require.Equal(t, "gateway_unreachable", why)
		// gw-market never spoke: it is not reported offline (unknown is not a change).
		mk, _ := r.gws.Get(ctx, "gw-market")
		require.Equal(t, devices.GatewayUnknown, mk.State)

		// Contact again: gateway.online clears the alarm; the offline one is announced once.
		h, body = signed(t, "gw-hall", r.secrets["gw-hall"])
		_, err = r.recv.Batch(ctx, h, body, "127.0.0.1")
		require.NoError(t, err)
		on := eventsOf(t, r.log, event.TypeGatewayOnline)
		require.Len(t, on, 1)
		require.Equal(t, event.StateCleared, on[0].State)
		require.Len(t, eventsOf(t, r.log, event.TypeGatewayOffline), 1)
		st, _ = camState()
		require.Equal(t, "online", st, "the gateway reports again: its last inventory is live again")
	})
}
