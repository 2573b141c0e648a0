package devices_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// A gateway list whose inventory counts cannot be read is an error, not a list of gateways
// that seem to have reported no sites and no devices.
func TestGatewayListReportsAFailedCount(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		sealer, err := devices.NewSealer(devices.GenerateSealerKey())
		require.NoError(t, err)
		gws := &devices.GatewayStore{DB: db, Sealer: sealer}
		_, err = gws.Enrol(ctx, &devices.Gateway{ID: "gw-hall"}, "")
		require.NoError(t, err)
		list, err := gws.List(ctx)
		require.NoError(t, err)
		require.Len(t, list, 1)

		_, err = db.Exec(ctx, `DROP TABLE gateway_devices`)
		require.NoError(t, err)
		list, err = gws.List(ctx)
		require.Error(t, err)
		require.ErrorContains(t, err, "gateway_devices")
		require.Nil(t, list)
	})
}
