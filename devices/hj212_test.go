package devices_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

func hj212Station() devices.Device {
	return devices.Device{ID: "ww-01", SiteID: "hall-01", Kind: devices.KindSensor, Name: "废水总排口", Profile: "generic-json",
		HJ212: &devices.HJ212Credentials{MN: "41070200000001W0000001", PW: "123456"}}
}

func TestHJ212Credentials(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		st, _ := newStore(t, db)
		s := validSite()
		require.NoError(t, st.CreateSite(ctx, &s))

		d := hj212Station()
		require.NoError(t, st.CreateDevice(ctx, &d))
		require.Empty(t, d.HJ212.PW, "cleared after the write")
		got, err := st.GetDevice(ctx, "ww-01")
		require.NoError(t, err)
		require.Equal(t, &devices.HJ212Credentials{MN: "41070200000001W0000001"}, got.HJ212, "PW is never read back")

		dev, err := st.CheckHJ212(ctx, "41070200000001W0000001", "123456")
		require.NoError(t, err)
		require.Equal(t, "ww-01", dev.ID)
		_, err = st.CheckHJ212(ctx, "41070200000001W0000001", "654321")
		requireKind(t, err, errs.KindUnauthorized, "hj212_login_refused")
		_, err = st.CheckHJ212(ctx, "41070200000001W0000009", "123456")
		requireKind(t, err, errs.KindUnauthorized, "hj212_login_refused")

		// An update without PW keeps it; a second station with the same MN is refused.
		got.Name = "废水总排口 1"
		require.NoError(t, st.UpdateDevice(ctx, &got))
		_, err = st.CheckHJ212(ctx, "41070200000001W0000001", "123456")
		require.NoError(t, err)
		other := hj212Station()
		other.ID = "ww-02"
		requireKind(t, st.CreateDevice(ctx, &other), errs.KindConflict, "hj212_mn_taken")
		// A new station needs its PW.
		other.HJ212 = &devices.HJ212Credentials{MN: "41070200000001W0000002"}
		requireKind(t, st.CreateDevice(ctx, &other), errs.KindInvalid, "hj212_pw_required")

		// Bad MN and PW are refused before anything is stored.
		bad := hj212Station()
		bad.ID, bad.HJ212 = "ww-03", &devices.HJ212Credentials{MN: "MN-WITH-DASH", PW: "a;b"}
		err = st.CreateDevice(ctx, &bad)
		require.Equal(t, errs.KindInvalid, errs.KindOf(err))
		require.Contains(t, err.Error(), "hj212.mn")
		require.Contains(t, err.Error(), "hj212.pw")
	})
}

func TestHJ212CSVColumns(t *testing.T) {
	csv := "站点编号,站点名称,统一社会信用代码,行政区划代码,主管部门,设备编号,设备类型,设备档案,MN号,访问密码\n" +
		"mkt-01,新乡市红旗区污水处理厂,91350100M000100Y43,410702,市生态环境局,ww-01,sensor,generic-json,41070200000001W0000001,123456\n"
	sites, devs, err := parse(t, []byte(csv))
	require.NoError(t, err)
	require.Len(t, sites, 1)
	require.Equal(t, &devices.HJ212Credentials{MN: "41070200000001W0000001", PW: "123456"}, devs[0].HJ212)

	var out bytes.Buffer
	devs[0].HJ212.PW = ""
	require.NoError(t, devices.WriteCSV(&out, sites, devs, devices.CSVWriteOptions{}))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Contains(t, lines[0], "hj212_mn")
	require.Contains(t, lines[1], "41070200000001W0000001")
	require.NotContains(t, out.String(), "123456")

	dup := csv + "mkt-01,新乡市红旗区污水处理厂,91350100M000100Y43,410702,市生态环境局,ww-02,sensor,generic-json,41070200000001W0000001,123456\n"
	_, _, err = parse(t, []byte(dup))
	require.ErrorContains(t, err, "already used on row 2")
}
