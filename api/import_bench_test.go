package api_test

import (
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// BenchmarkDeviceImport20000 imports a 20,000-sensor sheet (generated MQTT secrets, default
// argon2 cost for anything else) through the API on every backend and prints
// BENCH device_import backend=… rows=20000 seconds=… rows_per_s=…
// (make bench-import). The target is under 30 s.
func BenchmarkDeviceImport20000(b *testing.B) {
	const rows = 20000
	sheet := sensorSheet(rows, generated)
	for _, be := range storetest.Backends(b) {
		b.Run(be.Name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				db := be.Open(b, testSchema...)
				h := newHarness(b, db, nil)
				h.srv.Devices = &devices.SQLStore{DB: db, Sealer: h.sealer, Profiles: h.catalog} // default argon2 cost
				req := httptest.NewRequest("POST", "/api/v1/devices/import", strings.NewReader(sheet))
				req.Header.Set("Content-Type", "text/csv")
				req.Header.Set("Authorization", "Bearer "+h.admin)
				b.StartTimer()
				start := time.Now()
				res, err := h.srv.App().Test(req, -1)
				el := time.Since(start)
				require.NoError(b, err)
				require.Equal(b, 200, res.StatusCode)
				fmt.Fprintf(os.Stdout, "BENCH device_import backend=%s rows=%d seconds=%.2f rows_per_s=%.0f\n",
					be.Name, rows, el.Seconds(), rows/el.Seconds())
			}
		})
	}
}
