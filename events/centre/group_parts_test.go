package centre_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// One transaction of a group commit records a group's nonces, events and contacts with a
// statement each (on PostgreSQL); the outcome must be what batch-by-batch recording gives:
// a nonce repeated within the group or used before is a replay, an id an earlier batch of the
// group logged is a duplicate (or a conflict), seqs follow the order sent, the events a
// batch's alarm opens come after the group's, a gateway's contacts add up and its return
// from offline is reported once.
func TestGroupOfBatchesRecordsLikeOneByOne(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		r := newRig(t, db)
		ok, err := r.gws.UseNonce(ctx, db, "gw-hall", "used-before")
		require.NoError(t, err)
		require.True(t, ok)
		// gw-market was online, then silent and marked offline.
		_, err = r.gws.Contact(ctx, "gw-market", "127.0.0.1", "", 0, 0)
		require.NoError(t, err)
		marked, err := r.gws.MarkOffline(ctx, "gw-market", time.Now().Add(time.Hour))
		require.NoError(t, err)
		require.True(t, marked)

		reading := func(gw, id, msg string) json.RawMessage {
			e := siteEvent(gw, id, "sensor.reading")
			e.State, e.AlarmKey, e.Message = "", "", msg
			b, err := json.Marshal(&e)
			require.NoError(t, err)
			return b
		}
		alarm := siteEvent("gw-market", "01JDA0000000000000000000M2", "sensor.threshold")
		alarmRaw, err := json.Marshal(&alarm)
		require.NoError(t, err)
		h1 := reading("gw-hall", "01JDA0000000000000000000H1", "一")
		h2 := reading("gw-hall", "01JDA0000000000000000000H2", "二")
		m1 := reading("gw-market", "01JDA0000000000000000000M1", "三")
		h3 := reading("gw-hall", "01JDA0000000000000000000H3", "四")
		h2changed := reading("gw-hall", "01JDA0000000000000000000H2", "改过")

		var fresh []bool
		var got []events.Received
		var prev map[string]string
		err = r.log.InTx(ctx, func(tx *events.Tx) error {
			var err error
			fresh, err = r.gws.UseNonces(ctx, tx, []devices.NonceUse{{Gateway: "gw-hall", Nonce: "n1"},
				{Gateway: "gw-market", Nonce: "n1"}, {Gateway: "gw-hall", Nonce: "n1"}, {Gateway: "gw-hall", Nonce: "used-before"}})
			if err != nil {
				return err
			}
			got, err = tx.AppendReceivedGroup(ctx, []events.ReceivedBatch{
				{Sender: "gw-hall", Events: []json.RawMessage{h1, h2}},
				{Sender: "gw-market", Events: []json.RawMessage{m1, alarmRaw, h3}}, // h3 names another gateway
				{Sender: "gw-hall", Events: []json.RawMessage{h3, h1, h2changed}},
			})
			if err != nil {
				return err
			}
			prev, err = r.gws.ContactsIn(ctx, tx, []devices.GatewayContact{
				{Gateway: "gw-hall", Addr: "10.0.0.1", Version: "1.0", Backlog: 7, Events: 2},
				{Gateway: "gw-market", Addr: "10.0.0.2", Events: 2},
				{Gateway: "gw-hall", Addr: "10.0.0.3", Backlog: 3, Events: 1},
			})
			return err
		})
		require.NoError(t, err)
		require.Equal(t, []bool{true, true, false, false}, fresh)

		require.Equal(t, []string{h1ID, h2ID}, got[0].Accepted)
		require.Equal(t, []string{"01JDA0000000000000000000M1", alarm.ID}, got[1].Accepted)
		require.Equal(t, 1, got[1].Foreign)
		require.Equal(t, []string{"01JDA0000000000000000000H3"}, got[2].Accepted)
		require.Equal(t, []string{h1ID}, got[2].Duplicates)
		require.Equal(t, 1, got[2].Conflicts)
		require.Equal(t, h2ID, got[2].Rejected[0].ID)

		all, err := r.log.Since(ctx, 0, events.Filter{}, 100)
		require.NoError(t, err)
		var order []string
		for _, e := range all {
			order = append(order, e.Type+" "+e.ID)
		}
		require.Len(t, order, 6)
		require.Equal(t, []string{"sensor.reading " + h1ID, "sensor.reading " + h2ID, "sensor.reading 01JDA0000000000000000000M1",
			"sensor.threshold " + alarm.ID, "sensor.reading 01JDA0000000000000000000H3"}, order[:5], "seqs in the order sent")
		require.Equal(t, "alert.opened", all[5].Type, "the alert the alarm opened comes after the group's events")
		require.Equal(t, "二", all[1].Message, "the first content of an id is kept")

		require.Equal(t, map[string]string{"gw-hall": devices.GatewayUnknown, "gw-market": devices.GatewayOffline}, prev)
		hall, err := r.gws.Get(ctx, "gw-hall")
		require.NoError(t, err)
		require.EqualValues(t, 3, hall.EventsReceived)
		require.Equal(t, "10.0.0.3", hall.LastAddr)
		require.Equal(t, "1.0", hall.Version)
		require.EqualValues(t, 3, hall.LagEvents)
		require.Equal(t, devices.GatewayOnline, hall.State)
		market, err := r.gws.Get(ctx, "gw-market")
		require.NoError(t, err)
		require.Equal(t, devices.GatewayOnline, market.State)
		require.EqualValues(t, 2, market.EventsReceived)
	})
}

const (
	h1ID = "01JDA0000000000000000000H1"
	h2ID = "01JDA0000000000000000000H2"
)
