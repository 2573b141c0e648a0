package ingest_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/ingest"
)

// The layout of telemetry files written before series and points: one row of strings per
// reading. Files made before HJ 212 lack the flag column.
const oldReadingsTable = `CREATE TABLE readings (
    device TEXT NOT NULL, metric TEXT NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL,
    site TEXT NOT NULL, unit TEXT NOT NULL, quality TEXT NOT NULL, recv INTEGER NOT NULL,
    %FLAG% PRIMARY KEY (device, metric, ts)) WITHOUT ROWID;
CREATE INDEX readings_ts ON readings(ts);`

// An upgraded gateway opens the telemetry file its earlier version wrote and keeps every
// reading: the latest values, the chart series and the counts are what they were, with and
// without the HJ 212 flag column.
func TestSQLiteTelemetryConvertsEarlierFiles(t *testing.T) {
	for _, withFlag := range []bool{true, false} {
		t.Run(map[bool]string{true: "with-flag", false: "before-hj212"}[withFlag], func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "telemetry.db")
			old, err := sql.Open("sqlite", "file:"+path)
			require.NoError(t, err)
			flagCol := ""
			if withFlag {
				flagCol = "flag TEXT NOT NULL DEFAULT '',"
			}
			_, err = old.Exec(strings.ReplaceAll(oldReadingsTable, "%FLAG%", flagCol))
			require.NoError(t, err)
			base := time.Now().Add(-2 * time.Hour).Truncate(time.Hour)
			for i := range 60 {
				ts := base.Add(time.Duration(i) * time.Minute).UnixMilli()
				flag := "N"
				if i == 59 {
					flag = "M"
				}
				if withFlag {
					_, err = old.Exec(`INSERT INTO readings VALUES ('wwtp-1','cod',?,?,'site-a','mg/L','good',?,?)`, ts, float64(i), ts+500, flag)
				} else {
					_, err = old.Exec(`INSERT INTO readings VALUES ('wwtp-1','cod',?,?,'site-a','mg/L','good',?)`, ts, float64(i), ts+500)
				}
				require.NoError(t, err)
				_, err = old.Exec(`INSERT INTO readings (device, metric, ts, value, site, unit, quality, recv) VALUES ('wwtp-1','ph',?,7.1,'site-a','','late',?)`, ts, ts)
				require.NoError(t, err)
			}
			require.NoError(t, old.Close())

			s := &ingest.SQLiteTelemetry{Path: path, Logger: quietLogger(), FlushInterval: 20 * time.Millisecond}
			require.NoError(t, s.Initialize())
			defer s.Close()
			ctx := context.Background()
			n, err := s.Count(ctx, "wwtp-1")
			require.NoError(t, err)
			require.EqualValues(t, 120, n, "every reading of the old file is kept")

			latest, err := s.Latest(ctx, "wwtp-1")
			require.NoError(t, err)
			require.Len(t, latest, 2)
			require.Equal(t, "cod", latest[0].Metric)
			require.Equal(t, 59.0, latest[0].Value)
			require.Equal(t, "site-a", latest[0].Site)
			require.Equal(t, "mg/L", latest[0].Unit)
			require.Equal(t, base.Add(59*time.Minute).UnixMilli(), latest[0].Time.UnixMilli())
			require.Equal(t, base.Add(59*time.Minute).Add(500*time.Millisecond).UnixMilli(), latest[0].ReceiveTime.UnixMilli())
			require.Equal(t, ingest.Quality("late"), latest[1].Quality)
			if withFlag {
				require.Equal(t, "M", latest[0].Flag)
			} else {
				require.Equal(t, "", latest[0].Flag)
			}

			pts, err := s.Series(ctx, ingest.SeriesQuery{Device: "wwtp-1", Metric: "cod", From: base, To: base.Add(time.Hour), Step: 30 * time.Minute})
			require.NoError(t, err)
			require.Len(t, pts, 2)
			require.EqualValues(t, 30, pts[0].Count)
			require.Equal(t, 14.5, pts[0].Mean)
			require.Equal(t, 59.0, pts[1].Max)

			// New readings go on the same series after the conversion.
			now := time.Now().Truncate(time.Millisecond)
			s.Write([]ingest.Reading{{Device: "wwtp-1", Site: "site-a", Metric: "cod", Value: 99, Unit: "mg/L", Quality: ingest.QualityGood, Flag: "N", Time: now, ReceiveTime: now}})
			require.NoError(t, s.Flush(ctx))
			latest, err = s.Latest(ctx, "wwtp-1")
			require.NoError(t, err)
			require.Equal(t, 99.0, latest[0].Value)
			n, err = s.Count(ctx, "")
			require.NoError(t, err)
			require.EqualValues(t, 121, n)
		})
	}
}

// A reading keeps the site and unit it was stored with; a device moved to another site goes
// on reporting its newest value, and its chart spans both sites.
func TestSQLiteTelemetryDeviceMovesSite(t *testing.T) {
	s := openSQLiteTelemetry(t).(*ingest.SQLiteTelemetry)
	ctx := context.Background()
	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Minute)
	s.Write([]ingest.Reading{
		{Device: "gas-1", Site: "kitchen-a", Metric: "ch4", Value: 1, Unit: "%LEL", Quality: ingest.QualityGood, Time: t0, ReceiveTime: t0},
		{Device: "gas-1", Site: "kitchen-a", Metric: "ch4", Value: 2, Unit: "%LEL", Quality: ingest.QualityGood, Time: t0.Add(time.Minute), ReceiveTime: t0},
	})
	require.NoError(t, s.Flush(ctx))
	s.Write([]ingest.Reading{
		{Device: "gas-1", Site: "kitchen-b", Metric: "ch4", Value: 7, Unit: "%LEL", Quality: ingest.QualityGood, Time: t0.Add(2 * time.Minute), ReceiveTime: t0},
	})
	require.NoError(t, s.Flush(ctx))
	latest, err := s.Latest(ctx, "gas-1")
	require.NoError(t, err)
	require.Len(t, latest, 1, "one latest value a metric, whichever site")
	require.Equal(t, 7.0, latest[0].Value)
	require.Equal(t, "kitchen-b", latest[0].Site)
	pts, err := s.Series(ctx, ingest.SeriesQuery{Device: "gas-1", Metric: "ch4", From: t0, To: t0.Add(time.Hour), Step: time.Hour})
	require.NoError(t, err)
	require.Len(t, pts, 1)
	require.EqualValues(t, 3, pts[0].Count)
	require.Equal(t, 7.0, pts[0].Max)
}

// Retention deletes what is older than it keeps, series by series, and forgets a series left
// empty; a device that reports again afterwards is stored as before.
func TestSQLiteTelemetryRetention(t *testing.T) {
	path := filepath.Join(t.TempDir(), "telemetry.db")
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	s := &ingest.SQLiteTelemetry{Path: path, Logger: quietLogger(), FlushInterval: 20 * time.Millisecond, Retention: 365 * 24 * time.Hour}
	require.NoError(t, s.Initialize())
	var rs []ingest.Reading
	for i := range 48 {
		at := now.Add(-time.Duration(i) * time.Hour)
		rs = append(rs, ingest.Reading{Device: "dust-1", Site: "site", Metric: "pm10", Value: float64(i), Unit: "µg/m³", Quality: ingest.QualityGood, Time: at, ReceiveTime: at})
	}
	old := now.Add(-40 * time.Hour)
	rs = append(rs, ingest.Reading{Device: "gone-1", Site: "site", Metric: "noise", Value: 55, Unit: "dB", Quality: ingest.QualityGood, Time: old, ReceiveTime: old})
	s.Write(rs)
	require.NoError(t, s.Flush(ctx))
	s.Close()

	// Reopened with one day's retention, which Initialize applies at once.
	s = &ingest.SQLiteTelemetry{Path: path, Logger: quietLogger(), FlushInterval: 20 * time.Millisecond, Retention: 24*time.Hour + 30*time.Minute}
	require.NoError(t, s.Initialize())
	defer s.Close()
	require.Eventually(t, func() bool {
		n, err := s.Count(ctx, "gone-1")
		return err == nil && n == 0
	}, 30*time.Second, 20*time.Millisecond)
	n, err := s.Count(ctx, "dust-1")
	require.NoError(t, err)
	require.EqualValues(t, 25, n, "hours 0..24 are kept")
	latest, err := s.Latest(ctx, "gone-1")
	require.NoError(t, err)
	require.Empty(t, latest)

	s.Write([]ingest.Reading{{Device: "gone-1", Site: "site", Metric: "noise", Value: 61, Unit: "dB", Quality: ingest.QualityGood, Time: now, ReceiveTime: now}})
	require.NoError(t, s.Flush(ctx))
	latest, err = s.Latest(ctx, "gone-1")
	require.NoError(t, err)
	require.Len(t, latest, 1)
	require.Equal(t, 61.0, latest[0].Value)
}
