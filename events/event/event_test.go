package event_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/events/event"
)

func valid() event.Event {
	return event.Event{ID: "01JDQ3W8Y6ZJ1V2K3M4N5P6Q7R", Type: event.TypeSensorThreshold, Severity: "major",
		State: event.StateActive, AlarmKey: "dust-01/pm10-high", OccurredAt: time.Date(2026, 11, 27, 10, 15, 4, 123456789, time.UTC)}
}

func TestValidate(t *testing.T) {
	require.NoError(t, (&event.Event{Type: "video.tamper", OccurredAt: time.Now()}).Validate(), "id may be left to the log")
	for name, tc := range map[string]struct {
		mutate func(e *event.Event)
		want   string
	}{
		"lower-case id":     {func(e *event.Event) { e.ID = strings.ToLower(e.ID) }, "ULID"},
		"id too long":       {func(e *event.Event) { e.ID += "0" }, "ULID"},
		"id overflows":      {func(e *event.Event) { e.ID = "8" + e.ID[1:] }, "ULID"},
		"id with I":         {func(e *event.Event) { e.ID = "I" + e.ID[1:] }, "ULID"},
		"type not dotted":   {func(e *event.Event) { e.Type = "threshold" }, "type"},
		"unknown severity":  {func(e *event.Event) { e.Severity = "huge" }, "severity"},
		"state without key": {func(e *event.Event) { e.AlarmKey = "" }, "alarm_key"},
		"no time":           {func(e *event.Event) { e.OccurredAt = time.Time{} }, "occurred_at"},
		"message too long":  {func(e *event.Event) { e.Message = strings.Repeat("x", event.MaxText+1) }, "message"},
		"bad evidence hash": {func(e *event.Event) { e.Evidence = []event.Evidence{{Kind: "snapshot", SHA256: "abc"}} }, "sha256"},
		"device without id": {func(e *event.Event) { e.Device = &event.Device{} }, "device.id"},
		"message not UTF-8": {func(e *event.Event) { e.Message = "\xff" }, "UTF-8"},
	} {
		t.Run(name, func(t *testing.T) {
			e := valid()
			require.NoError(t, e.Validate())
			tc.mutate(&e)
			require.ErrorContains(t, e.Validate(), tc.want)
		})
	}
}

// The wire shape is the contract's: occurred_at in UTC with exactly three fraction digits,
// gateway_id always present, the log's own fields never sent.
func TestWireShape(t *testing.T) {
	e := valid()
	e.Seq, e.Raw = 42, json.RawMessage(`{}`)
	b, err := json.Marshal(e)
	require.NoError(t, err)
	require.JSONEq(t, `{"id":"01JDQ3W8Y6ZJ1V2K3M4N5P6Q7R","type":"sensor.threshold","severity":"major","state":"active",
		"occurred_at":"2026-11-27T10:15:04.123Z","gateway_id":"","alarm_key":"dust-01/pm10-high"}`, string(b))
	var back event.Event
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, e.OccurredAt.Truncate(time.Millisecond), back.OccurredAt)
	require.Equal(t, 2, event.SeverityRank("major"))
	require.Equal(t, -1, event.SeverityRank("huge"))
}
