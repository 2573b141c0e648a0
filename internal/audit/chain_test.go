package audit_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

func record(t *testing.T, l *audit.Log, at time.Time, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		require.NoError(t, l.Record(context.Background(), audit.Entry{At: at.Add(time.Duration(i) * time.Minute),
			Actor: "admin", Role: "admin", Action: "device.update", Target: fmt.Sprintf("dev-%d", i), IP: "10.0.0.1"}))
	}
}

func verify(t *testing.T, l *audit.Log) audit.Report {
	t.Helper()
	r, err := l.Verify(context.Background())
	require.NoError(t, err)
	return r
}

func TestChainNamesTheFirstTamperedRecord(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l := &audit.Log{DB: db}
		record(t, l, time.Now().Add(-time.Hour), 6)
		r := verify(t, l)
		require.True(t, r.OK(), "%v", r.Broken)
		require.EqualValues(t, 6, r.Records)
		all, err := l.List(ctx, audit.Filter{})
		require.NoError(t, err)
		ids := make([]int64, len(all)) // oldest first
		for i, e := range all {
			ids[len(all)-1-i] = e.ID
			require.Len(t, e.Hash, 64)
		}

		// A changed detail breaks the chain at that record, not before.
		_, err = db.Exec(ctx, `UPDATE audit SET detail = 'nothing happened' WHERE id = ?`, ids[2])
		require.NoError(t, err)
		r = verify(t, l)
		require.False(t, r.OK())
		require.Equal(t, ids[2], r.Broken.ID)
		require.Contains(t, r.Broken.Reason, "content does not match")
		_, err = db.Exec(ctx, `UPDATE audit SET detail = '' WHERE id = ?`, ids[2])
		require.NoError(t, err)
		require.True(t, verify(t, l).OK())

		// A removed record shows at the one after it.
		_, err = db.Exec(ctx, `DELETE FROM audit WHERE id = ?`, ids[3])
		require.NoError(t, err)
		r = verify(t, l)
		require.False(t, r.OK())
		require.Equal(t, ids[4], r.Broken.ID)
		require.Contains(t, r.Broken.Reason, "does not point at record")
	})
}

func TestChainNoticesRemovedNewestRecord(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		l := &audit.Log{DB: db}
		record(t, l, time.Now(), 3)
		_, err := db.Exec(context.Background(), `DELETE FROM audit WHERE id = (SELECT MAX(id) FROM audit)`)
		require.NoError(t, err)
		r := verify(t, l)
		require.False(t, r.OK())
		require.Contains(t, r.Broken.Reason, "records at the end were removed")
	})
}

// Retention removes the oldest records and keeps the hash of the last one removed, so the
// chain still verifies; removing more than retention did is still noticed.
func TestRetentionKeepsTheChainVerifiable(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l := &audit.Log{DB: db}
		t0 := time.Now().Add(-200 * 24 * time.Hour)
		record(t, l, t0, 10) // t0, t0+1m … t0+9m
		n, err := l.Prune(ctx, t0.Add(5*time.Minute))
		require.NoError(t, err)
		require.EqualValues(t, 5, n)
		r := verify(t, l)
		require.True(t, r.OK(), "%v", r.Broken)
		require.EqualValues(t, 5, r.Records)
		require.NotZero(t, r.AnchorID)
		require.Len(t, r.AnchorHash, 64)

		// New records chain on after pruning.
		record(t, l, time.Now(), 2)
		require.True(t, verify(t, l).OK())

		// Everything old: the newest record stays as the head.
		n, err = l.Prune(ctx, time.Now().Add(time.Hour))
		require.NoError(t, err)
		require.EqualValues(t, 6, n)
		r = verify(t, l)
		require.True(t, r.OK(), "%v", r.Broken)
		require.EqualValues(t, 1, r.Records)

		// Deleting the oldest kept record behind retention's back breaks at the anchor.
		record(t, l, time.Now(), 2)
		_, err = db.Exec(ctx, `DELETE FROM audit WHERE id = (SELECT MIN(id) FROM audit)`)
		require.NoError(t, err)
		r = verify(t, l)
		require.False(t, r.OK())
		require.Contains(t, r.Broken.Reason, "retention anchor")
	})
}

// Appends from several handles on one database (as two gateway processes on one PostgreSQL)
// interleave without forking the chain.
func TestChainHoldsUnderConcurrentWriters(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		other := reopen(t, db)
		logs := []*audit.Log{{DB: db}, {DB: db}, {DB: other}, {DB: other}}
		var wg sync.WaitGroup
		for w, l := range logs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 25; i++ {
					require.NoError(t, l.Record(context.Background(), audit.Entry{Actor: fmt.Sprintf("w%d", w), Action: "camera.view.start", Target: fmt.Sprint(i)}))
				}
			}()
		}
		wg.Wait()
		r := verify(t, logs[0])
		require.True(t, r.OK(), "%v", r.Broken)
		require.EqualValues(t, 100, r.Records)
	})
}

// Records written before the chain existed are chained by the first append after the upgrade.
func TestRecordsBeforeTheChainAreChained(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		for i := 0; i < 3; i++ {
			_, err := db.Exec(ctx, `INSERT INTO audit(at, actor, action, result) VALUES (?, 'old', 'auth.login', 'ok')`, time.Now().UnixMilli())
			require.NoError(t, err)
		}
		_, err := db.Exec(ctx, `UPDATE audit_chain SET legacy_through = (SELECT MAX(id) FROM audit) WHERE id = 1`)
		require.NoError(t, err)
		l := &audit.Log{DB: db}
		r := verify(t, l)
		require.True(t, r.OK())
		require.EqualValues(t, 3, r.Unchained)
		record(t, l, time.Now(), 1)
		r = verify(t, l)
		require.True(t, r.OK(), "%v", r.Broken)
		require.EqualValues(t, 4, r.Records)
		require.Zero(t, r.Unchained)
	})
}

// reopen opens a second handle on db's database.
func reopen(t *testing.T, db *store.DB) *store.DB {
	t.Helper()
	dsn := "sqlite:" + db.Location
	if db.Dialect == store.Postgres {
		var name string
		require.NoError(t, db.QueryRow(context.Background(), `SELECT current_database()`).Scan(&name))
		u, err := url.Parse(os.Getenv(storetest.EnvPG))
		require.NoError(t, err)
		u.Path = "/" + name
		dsn = u.String()
	}
	o, err := store.OpenNoMigrate(dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = o.Close() })
	return o
}
