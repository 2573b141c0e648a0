package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/api"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// sensorSheet is a valid device sheet of n sensors on sites of 100 sensors each; secret(i)
// gives each sensor's MQTT secret.
func sensorSheet(n int, secret func(i int) string) string {
	var b strings.Builder
	b.WriteString("site_id,site_name,uscc,region_code,department,device_id,kind,name,profile,firmware,mqtt_username,mqtt_secret\n")
	code := uscc("91410702MA44A1B2C")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "site-%d,站点%d,%s,410702,%s,sen-%d,sensor,传感器%d,test-sensor,1.0,mq-%d,%s\n",
			i/100, i/100, code, deptEnv, i, i, i, secret(i))
	}
	return b.String()
}

func generated(int) string { return devices.GenerateSecret() }

// A sheet over the row limit is refused at once with 413 and a message saying what to do;
// nothing of it is imported and the refusal is audited.
func TestImportRowLimit(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, nil)
		h.srv.ImportMaxRows = 10
		r := h.do("POST", "/api/v1/devices/import", h.admin, sensorSheet(11, generated))
		require.Equal(t, 413, r.status, string(r.body))
		var eb api.ErrorBody
		r.json(t, &eb)
		require.Equal(t, "too_many_rows", eb.Error.Code)
		require.Contains(t, eb.Error.Message, "more than 10 rows")
		require.Contains(t, eb.Error.Message, "split it")
		var dl deviceList
		h.do("GET", "/api/v1/devices", h.admin, nil).json(t, &dl)
		require.Empty(t, dl.Devices)
		imports := h.auditEntries(audit.Filter{Action: "device.import"})
		require.Len(t, imports, 1)
		require.Equal(t, "failed", imports[0].Result)
		require.Contains(t, imports[0].Detail, "too_many_rows")

		// Blank lines do not count; exactly the limit imports.
		sheet := sensorSheet(10, generated) + "\n,,,\n\n"
		r = h.do("POST", "/api/v1/devices/import", h.admin, sheet)
		require.Equal(t, 200, r.status, string(r.body))
	})
}

// Secrets the import is given that look generated are stored with a fast hash, and the
// sensors can log in with them; a short, human-made secret keeps the slow hash.
func TestImportedGeneratedSecretsLogIn(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, nil)
		secrets := map[int]string{}
		sheet := sensorSheet(3, func(i int) string {
			secrets[i] = devices.GenerateSecret()
			if i == 2 {
				secrets[i] = "Mqtt-Secret-22"
			}
			return secrets[i]
		})
		r := h.do("POST", "/api/v1/devices/import", h.admin, sheet)
		require.Equal(t, 200, r.status, string(r.body))
		st := h.srv.Devices.(*devices.SQLStore)
		for i, sec := range secrets {
			d, err := st.CheckMQTT(context.Background(), fmt.Sprintf("mq-%d", i), sec)
			require.NoError(t, err)
			require.Equal(t, fmt.Sprintf("sen-%d", i), d.ID)
			_, err = st.CheckMQTT(context.Background(), fmt.Sprintf("mq-%d", i), sec+"x")
			require.Error(t, err)
		}
		var fast, slow int
		require.NoError(t, db.QueryRow(context.Background(), `SELECT COUNT(*) FROM devices WHERE mqtt_secret_hash LIKE '$sha256$%'`).Scan(&fast))
		require.NoError(t, db.QueryRow(context.Background(), `SELECT COUNT(*) FROM devices WHERE mqtt_secret_hash LIKE '$argon2id$%'`).Scan(&slow))
		require.Equal(t, 2, fast)
		require.Equal(t, 1, slow)
	})
}

// bodyDone signals when the client has sent the whole body.
type bodyDone struct {
	r    io.Reader
	done chan struct{}
}

func (b *bodyDone) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		select {
		case <-b.done:
		default:
			close(b.done)
		}
	}
	return n, err
}

// Shutdown cancels an import in progress: the server stops promptly instead of waiting for
// it, the caller is told, and nothing of the sheet is stored.
func TestShutdownCancelsImport(t *testing.T) {
	db := storetest.SQLite(t, testSchema...)
	h := newHarness(t, db, nil)
	// Human-made secrets take the slow hash; at full argon2 cost this sheet takes minutes.
	h.srv.Devices = &devices.SQLStore{DB: db, Sealer: h.sealer, Profiles: h.catalog, Argon2: devices.Argon2Params{Time: 2, MemoryKiB: 64 * 1024, Threads: 1}}
	h.srv.Listen = "127.0.0.1:0"
	require.NoError(t, h.srv.Start())
	sheet := sensorSheet(4000, func(i int) string { return fmt.Sprintf("weak-secret-%06d", i) })

	sent := &bodyDone{r: strings.NewReader(sheet), done: make(chan struct{})}
	req, err := http.NewRequest("POST", "http://"+h.srv.Addr()+"/api/v1/devices/import", sent)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "text/csv")
	req.Header.Set("Authorization", "Bearer "+h.admin)
	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- result{err: err}
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		got <- result{status: res.StatusCode, body: string(b)}
	}()
	<-sent.done

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, h.srv.Shutdown(ctx), "shutdown must not wait for the import")
	res := <-got
	require.NoError(t, res.err)
	require.Equal(t, 503, res.status, res.body)
	require.Contains(t, res.body, "import_cancelled")
	var n int
	require.NoError(t, db.QueryRow(context.Background(), `SELECT COUNT(*) FROM devices`).Scan(&n))
	require.Zero(t, n, "nothing half-imported")
}
