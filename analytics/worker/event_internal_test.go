package worker

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/analytics/lease"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/event"
)

// The worker sends event.Event, whose JSON always carries id and gateway_id (empty here):
// POST /api/v1/events (events.ParseEvent, unknown fields refused) must take it as it is.
func TestWorkerEventParses(t *testing.T) {
	w := &Worker{}
	at := time.Date(2026, 12, 3, 9, 30, 0, 123456789, time.UTC)
	a := lease.Assignment{CameraID: "cam-1", SiteID: "site-1"}
	for _, s := range []Signal{
		{Type: event.TypeVideoStaffAbsent, State: event.StateActive, AlarmKey: "cam-1/staff_absent/w1", Zone: "w1",
			Metric: "absent_seconds", Value: 300, Limit: 300, Message: "nobody at w1", At: at},
		{Type: event.TypeVideoTamper, State: event.StateCleared, AlarmKey: "cam-1/tamper", Reason: ReasonCovered, At: at},
	} {
		ev := w.event(a, s)
		ev.Evidence = []event.Evidence{{Kind: "snapshot", URL: "/api/v1/evidence/x.jpg", SHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}}
		body, err := json.Marshal(ev)
		require.NoError(t, err)
		got, err := events.ParseEvent(body)
		require.NoError(t, err, "%s", body)
		require.Empty(t, got.GatewayID)
		require.Equal(t, s.Type, got.Type)
		require.Equal(t, s.AlarmKey, got.AlarmKey)
		require.Equal(t, at.Truncate(time.Millisecond), got.OccurredAt.UTC(), "occurred_at in milliseconds")
		require.Equal(t, &event.Device{ID: "cam-1", Kind: "camera"}, got.Device)
		require.Equal(t, "site-1", got.Site.ID)
		require.Equal(t, ev.Reading, got.Reading)
		require.Equal(t, ev.Evidence, got.Evidence)
	}
}
