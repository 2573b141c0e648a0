package worker_test

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/analytics/lease"
	"github.com/offsite-gw/offsite/events/event"
)

// TestDemoClips plays the demo cameras' clips twice (simcam loops them) through the worker's
// detectors with the demo settings: the counter empties and the picture goes black, so both
// alert kinds appear — and clear — within the first loops.
func TestDemoClips(t *testing.T) {
	raw, err := os.ReadFile("../../streams/simcam/clips/analytics-settings.json")
	require.NoError(t, err)
	var all map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &all))
	for _, tc := range []struct {
		clip, typ, key string
		by             time.Duration
	}{
		{"counter-empties", event.TypeVideoStaffAbsent, "cam-1/staff_absent/w1", 50 * time.Second},
		{"goes-black", event.TypeVideoTamper, "cam-1/tamper", 40 * time.Second},
	} {
		t.Run(tc.clip, func(t *testing.T) {
			set, err := lease.ParseSettings(all[tc.clip])
			require.NoError(t, err)
			b, err := os.ReadFile("../../streams/simcam/clips/" + tc.clip + ".h264")
			require.NoError(t, err)
			twice := append(append([]byte(nil), b...), b...)
			loop := filepathTemp(t, twice)
			res := analyzeClip(t, loop, set, monday10, keyframeEvery)
			raised := res.of(tc.typ, "active")
			require.NotEmpty(t, raised)
			require.Equal(t, tc.key, raised[0].AlarmKey)
			require.Less(t, raised[0].At.Sub(monday10), tc.by)
			require.NotEmpty(t, res.of(tc.typ, "cleared"), "clears when the loop starts again")
			for _, s := range res.signals {
				require.Equal(t, tc.typ, s.Type, "no other alarm: %s %s", s.AlarmKey, s.State)
			}
		})
	}
}

func filepathTemp(t *testing.T, b []byte) string {
	p := t.TempDir() + "/clip.h264"
	require.NoError(t, os.WriteFile(p, b, 0o644))
	return p
}
