package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/ingest/hj212"
)

// TestDemoHJ212PermitAlertAndFault plays the demo's wastewater outlet station over real TCP:
// a COD value over the plant's permit limit (40 mg/L, stricter than the profile's 50) becomes
// an alert that 市生态环境局's officer sees with the reading and the limit, and a value
// flagged D becomes a device-health event a maintainer sees, not an officer's alert.
func TestDemoHJ212PermitAlertAndFault(t *testing.T) {
	dir := t.TempDir()
	_, dj, out := startDemo(t, dir)
	var full struct {
		HJ212   string `json:"hj212"`
		Sensors []struct {
			ID, Protocol, MN, PW string
		} `json:"sensors"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "demo.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &full))
	require.True(t, strings.HasPrefix(full.HJ212, "tcp://127.0.0.1:"), full.HJ212)
	var mn, pw, device string
	for _, s := range full.Sensors {
		if s.Protocol == "hj212" {
			mn, pw, device = s.MN, s.PW, s.ID
		}
	}
	require.NotEmpty(t, mn, "demo.json lists the HJ 212 station with its MN and PW")

	c, err := net.DialTimeout("tcp", strings.TrimPrefix(full.HJ212, "tcp://"), 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	fr := hj212.NewReader(bufio.NewReader(c), 0)
	send := func(qn, fields string) {
		seg := fmt.Sprintf("QN=%s;ST=32;CN=2011;PW=%s;MN=%s;Flag=5;CP=&&DataTime=%s;%s&&", qn, pw, mn, hj212.FormatTime(time.Now()), fields)
		_, err := c.Write(hj212.AppendFrame(nil, []byte(seg)))
		require.NoError(t, err)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
		for {
			data, err := fr.Next()
			require.NoError(t, err, out.String())
			a, err := hj212.ParseSegment(data)
			require.NoError(t, err)
			if a.CN == hj212.CNDataAck {
				require.Equal(t, qn, a.QN)
				return
			}
		}
	}
	send("20261203120000001", "w01018-Rtd=45.5,w01018-Flag=N;w21003-Rtd=1.2,w21003-Flag=N")

	eco := login(t, dj.HTTP, "officer-eco", password(dj, "officer-eco"))
	type alertList struct {
		Alerts []struct {
			ID, Type string
			Source   struct {
				Reading struct {
					Metric       string
					Value, Limit float64
				}
				Department string
			}
		}
	}
	var found bool
	require.Eventually(t, func() bool {
		code, body := get(t, dj.HTTP+"/api/v1/alerts?state=opened", eco)
		var al alertList
		if code != 200 || json.Unmarshal(body, &al) != nil {
			return false
		}
		for _, a := range al.Alerts {
			if a.Type == "sensor.threshold" && a.Source.Reading.Metric == "cod" && a.Source.Reading.Value == 45.5 {
				require.Equal(t, 40.0, a.Source.Reading.Limit, "the site's permit limit, not the profile's 50")
				require.Equal(t, "市生态环境局", a.Source.Department)
				found = true
			}
		}
		return found
	}, 30*time.Second, 200*time.Millisecond, "the officer of 市生态环境局 sees the COD alert")

	// The 市住房和城乡建设局 officer does not see the plant's alert.
	code, body := get(t, dj.HTTP+"/api/v1/alerts?state=opened", login(t, dj.HTTP, "officer", password(dj, "officer")))
	require.Equal(t, 200, code)
	require.NotContains(t, string(body), device)

	// A D flag: stored, no limit alarm even though 99 > 40, a device.fault for maintainers.
	send("20261203120000002", "w01018-Rtd=99.0,w01018-Flag=D;w21003-Rtd=1.2,w21003-Flag=N")
	maint := login(t, dj.HTTP, "maintainer", password(dj, "maintainer"))
	require.Eventually(t, func() bool {
		code, body := get(t, dj.HTTP+"/api/v1/events?type=device.fault&device="+device, maint)
		return code == 200 && strings.Contains(string(body), `"state":"active"`) && strings.Contains(string(body), "仪器故障")
	}, 30*time.Second, 200*time.Millisecond, "the maintainer sees the device fault")
	code, body = get(t, dj.HTTP+"/api/v1/events?type=sensor.threshold&device="+device, eco)
	require.Equal(t, 200, code)
	require.NotContains(t, string(body), `"value":99`, "a D-flagged value raises no limit alarm")
	// Readings stay at the site gateway that serves the plant (the centre gets events).
	site, siteUsers := siteOf(t, dj, "demo-gw-city")
	siteAdmin := login(t, site, "admin", userPassword(siteUsers, "admin"))
	from, to := time.Now().Add(-10*time.Minute).UTC().Format(time.RFC3339), time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	require.Eventually(t, func() bool {
		code, body := get(t, site+"/api/v1/devices/"+device+"/telemetry?metric=cod&step=1m&from="+from+"&to="+to, siteAdmin)
		return code == 200 && strings.Contains(string(body), `"D"`)
	}, 30*time.Second, 200*time.Millisecond, "the value is stored with its flag (the simulated station's later readings are N)")
}
