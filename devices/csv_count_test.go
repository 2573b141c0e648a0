package devices_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/devices"
)

func TestCountCSVRows(t *testing.T) {
	sheet := []byte(enHeader + rows)
	_, devs, err := devices.ParseCSV(bytes.NewReader(sheet), devices.CSVParseOptions{Profiles: testProfiles})
	require.NoError(t, err)
	require.Equal(t, len(devs), devices.CountCSVRows(sheet, 0))
	require.Equal(t, 0, devices.CountCSVRows([]byte(enHeader), 0))
	require.Equal(t, 2, devices.CountCSVRows([]byte("a,b\n1,2\n\n , \n\"x\ny\",3\n"), 0), "blank rows do not count; a quoted line break is one row")
	require.Greater(t, devices.CountCSVRows([]byte("a\n1\n2\n3\n4\n"), 2), 2, "over the limit is reported as over")
}

// FuzzCountCSVRows: the quick count that guards the import limit never says a sheet is within
// a limit that the sheet's devices exceed, and never panics.
func FuzzCountCSVRows(f *testing.F) {
	f.Add([]byte(enHeader+rows), 1)
	f.Add([]byte("\uFEFF"+zhHeader+rows), 0)
	f.Add([]byte("site_id,device_id,kind\n\"a\nb\",c,camera\n"), 1)
	f.Add([]byte{0xff, 0xfe, 0x0a, 0x00, 0x41, 0x00}, 3)
	f.Fuzz(func(t *testing.T, data []byte, limit int) {
		if limit < 0 || limit > 1000 {
			return
		}
		n := devices.CountCSVRows(data, limit)
		exact := devices.CountCSVRows(data, 0)
		if n <= limit {
			require.LessOrEqual(t, exact, limit, "within %d by the quick count, %d by the exact one", limit, exact)
		}
		if _, devs, err := devices.ParseCSV(bytes.NewReader(data), devices.CSVParseOptions{Profiles: testProfiles}); err == nil {
			require.GreaterOrEqual(t, exact, len(devs), "every device is a row")
		}
	})
}
