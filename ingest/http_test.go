package ingest_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/ingest"
)

func TestHTTP(t *testing.T) {
	tel := openSQLiteTelemetry(t)
	s := newStack(t, sensorFleet(), tel)
	base := time.Now().Truncate(2 * time.Minute).Add(-10 * time.Minute)
	for i := range 6 {
		s.pipe.Submit(ingest.Message{Topic: "offsite/site-1/dust-1/up", Payload: dustPayload(base.Add(time.Duration(i)*time.Minute), float64(100+i))})
	}
	s.pipe.Submit(ingest.Message{Topic: "offsite/site-1/dust-1/up", Payload: []byte("{oops")})
	s.flush(t, tel)

	api := &ingest.API{Telemetry: tel, Quarantine: s.quar, Presence: s.presence,
		Authorize: func(c *fiber.Ctx, device string) error {
			if device == "cold-1" {
				return fiber.NewError(fiber.StatusForbidden, "not in your scope")
			}
			return nil
		}}
	app := fiber.New()
	api.Routes(app.Group("/api/v1"))
	get := func(path string, into any) int {
		resp, err := app.Test(httptest.NewRequest("GET", path, nil), 10000)
		require.NoError(t, err)
		defer resp.Body.Close()
		if into != nil && resp.StatusCode == 200 {
			require.NoError(t, json.NewDecoder(resp.Body).Decode(into))
		}
		return resp.StatusCode
	}
	var latest struct{ Readings []ingest.Reading }
	require.Equal(t, 200, get("/api/v1/devices/dust-1/readings/latest", &latest))
	require.Len(t, latest.Readings, 8)

	var series struct{ Points []ingest.Point }
	require.Equal(t, 200, get(fmt.Sprintf("/api/v1/devices/dust-1/readings/series?metric=pm10&from=%s&to=%s&step=2m",
		base.Format(time.RFC3339), base.Add(6*time.Minute).Format(time.RFC3339)), &series))
	require.Len(t, series.Points, 3)
	require.Equal(t, 100.5, series.Points[0].Mean)
	require.EqualValues(t, 2, series.Points[0].Count)

	require.Equal(t, 400, get("/api/v1/devices/dust-1/readings/series?metric=pm10&step=1s&from=2020-01-01T00:00:00Z", nil), "too many points")
	require.Equal(t, 400, get("/api/v1/devices/dust-1/readings/series", nil), "metric required")
	require.Equal(t, 403, get("/api/v1/devices/cold-1/readings/latest", nil))

	var q struct{ Entries []ingest.QuarantineEntry }
	require.Equal(t, 200, get("/api/v1/ingest/quarantine?device=dust-1", &q))
	require.Len(t, q.Entries, 1)
	require.Equal(t, "malformed_json", q.Entries[0].Reason)
	require.Equal(t, "{oops", string(q.Entries[0].Payload))

	var st ingest.DeviceState
	require.Equal(t, 200, get("/api/v1/devices/dust-1/presence", &st))
	require.Equal(t, ingest.StateOnline, st.State)
}
