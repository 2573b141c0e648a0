package sim_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/devices"
	profiles "github.com/offsite-gw/offsite/firmware-profiles"
	"github.com/offsite-gw/offsite/ingest"
	"github.com/offsite-gw/offsite/ingest/decode"
	"github.com/offsite-gw/offsite/ingest/sim"
	"github.com/offsite-gw/offsite/internal/errs"
)

// TestEveryProfileDecodes: for every shipped sensor profile, a day of simulated payloads —
// excursions included — decodes and validates cleanly, and excursions cross a rule threshold.
func TestEveryProfileDecodes(t *testing.T) {
	reg, err := profiles.NewRegistry(true, "")
	require.NoError(t, err)
	n := 0
	for _, p := range reg.List() {
		if p.Kind != "sensor" || p.Decoder == nil || p.MQTT == nil {
			continue // HJ 212 stations have their own simulator (ingest/hj212/sim)
		}
		n++
		t.Run(p.ID, func(t *testing.T) {
			dec, err := decode.New(p)
			require.NoError(t, err)
			g := sim.NewGenerator(p, 1)
			start := time.Date(2026, 11, 27, 0, 0, 0, 0, time.Local)
			crossed := false
			for i := range 300 {
				now := start.Add(time.Duration(i) * 5 * time.Minute)
				if i%50 == 25 {
					g.StartExcursion(now, 20*time.Minute)
				}
				payload, err := g.Payload(now)
				require.NoError(t, err)
				d, err := dec.Decode(payload)
				require.NoError(t, err, "%s", payload)
				require.NotEmpty(t, d.Values)
				require.Empty(t, decode.Validate(p, d), "%s", payload)
				for _, v := range d.Values {
					for _, r := range p.Rules {
						if r.Metric == v.Metric && (r.Op == ">" && v.Value > r.Value || r.Op == ">=" && v.Value >= r.Value) {
							crossed = true
						}
					}
				}
			}
			if len(p.Rules) > 1 {
				require.True(t, crossed, "no excursion crossed a rule threshold")
			}
		})
	}
	require.GreaterOrEqual(t, n, 6)
}

type devStore struct {
	devices.Store
	mu   sync.Mutex
	devs []devices.Device
}

func (s *devStore) ListDevices(context.Context, devices.DeviceFilter) ([]devices.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.devs, nil
}

func (s *devStore) CheckMQTT(_ context.Context, u, p string) (devices.Device, error) {
	for _, d := range s.devs {
		if d.ID == u && p == "pw-"+u {
			return d, nil
		}
	}
	return devices.Device{}, errs.E(errs.KindUnauthorized, "refused", "refused")
}

type sink struct {
	mu  sync.Mutex
	per map[string]int
	max map[string]float64 // highest value per device/metric
}

func (s *sink) Write(rs []ingest.Reading) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rs {
		s.per[r.Device]++
		if s.max != nil {
			k := r.Device + "/" + r.Metric
			if v, ok := s.max[k]; !ok || r.Value > v {
				s.max[k] = r.Value
			}
		}
	}
}

// TestFleetPublishesThroughTheBroker: each simulated sensor logs in with its own credentials
// and its readings come through the embedded broker without being refused.
func TestFleetPublishesThroughTheBroker(t *testing.T) {
	reg, err := profiles.NewRegistry(true, "")
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st := &devStore{}
	var sensors []sim.Sensor
	for i, p := range reg.List() {
		if p.Kind != "sensor" || p.MQTT == nil {
			continue // HJ 212 stations do not speak MQTT (ingest/hj212/sim)
		}
		id := fmt.Sprintf("sim-%d", i)
		st.devs = append(st.devs, devices.Device{ID: id, SiteID: "site-sim", Kind: devices.KindSensor, Profile: p.ID, MQTT: &devices.MQTTCredentials{Username: id}})
		sensors = append(sensors, sim.Sensor{Device: id, Site: "site-sim", Profile: p, Username: id, Password: "pw-" + id})
	}
	dir := &ingest.Directory{Devices: st, Profiles: reg, Logger: log, RefreshInterval: -1}
	require.NoError(t, dir.Initialize())
	defer dir.Close()
	db := &sink{per: map[string]int{}}
	quar := &ingest.Quarantine{DB: mustDB(t), Logger: log}
	require.NoError(t, quar.Initialize())
	defer quar.Close()
	pipe := &ingest.Pipeline{Directory: dir, Sink: db, Quarantine: quar, Logger: log}
	require.NoError(t, pipe.Initialize())
	defer pipe.Close()
	b := &ingest.Broker{Listen: "127.0.0.1:0", Auth: st, Directory: dir, Pipeline: pipe, Logger: log}
	require.NoError(t, b.Initialize())
	defer b.Close()
	fleet := &sim.Fleet{BrokerURL: "tcp://" + b.Addr(), Sensors: sensors, Interval: 100 * time.Millisecond, Logger: log}
	require.NoError(t, fleet.Initialize())
	require.Eventually(t, func() bool {
		db.mu.Lock()
		defer db.mu.Unlock()
		return len(db.per) == len(sensors)
	}, 10*time.Second, 20*time.Millisecond)
	fleet.Close()
	require.Zero(t, pipe.Stats().Quarantined)
	require.Zero(t, b.Refused(ingest.RefusedPublishACL)+b.Refused(ingest.RefusedCredentials))
}

// TestFleetCrossesALimitEarly (issue 16): a demo shows a reading over a limit within minutes
// of the start, not whenever chance has it: the first sensor with a threshold rule makes an
// excursion after FirstExcursionAfter.
func TestFleetCrossesALimitEarly(t *testing.T) {
	reg, err := profiles.NewRegistry(true, "")
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	gas, ok := reg.Get("gas-detector")
	require.True(t, ok)
	st := &devStore{devs: []devices.Device{{ID: "gas-1", SiteID: "site-sim", Kind: devices.KindSensor, Profile: gas.ID,
		MQTT: &devices.MQTTCredentials{Username: "gas-1"}}}}
	dir := &ingest.Directory{Devices: st, Profiles: reg, Logger: log, RefreshInterval: -1}
	require.NoError(t, dir.Initialize())
	defer dir.Close()
	db := &sink{per: map[string]int{}, max: map[string]float64{}}
	quar := &ingest.Quarantine{DB: mustDB(t), Logger: log}
	require.NoError(t, quar.Initialize())
	defer quar.Close()
	pipe := &ingest.Pipeline{Directory: dir, Sink: db, Quarantine: quar, Logger: log}
	require.NoError(t, pipe.Initialize())
	defer pipe.Close()
	b := &ingest.Broker{Listen: "127.0.0.1:0", Auth: st, Directory: dir, Pipeline: pipe, Logger: log}
	require.NoError(t, b.Initialize())
	defer b.Close()
	fleet := &sim.Fleet{BrokerURL: "tcp://" + b.Addr(), Interval: 100 * time.Millisecond, Logger: log,
		ExcursionChance: 1e-12, FirstExcursionAfter: 500 * time.Millisecond,
		Sensors: []sim.Sensor{{Device: "gas-1", Site: "site-sim", Profile: gas, Username: "gas-1", Password: "pw-gas-1"}}}
	require.NoError(t, fleet.Initialize())
	defer fleet.Close()
	require.Eventually(t, func() bool {
		db.mu.Lock()
		defer db.mu.Unlock()
		return db.max["gas-1/lel"] >= 10 // the low limit at least (the excursion picks a rule)
	}, 20*time.Second, 50*time.Millisecond, "no reading over a limit")
}
