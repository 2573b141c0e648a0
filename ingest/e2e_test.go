package ingest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/ingest"
)

// backend is a telemetry store under test plus a way to count what it holds.
type backend struct {
	name  string
	open  func(t *testing.T) ingest.Telemetry
	count func(t *testing.T, tel ingest.Telemetry, device string) int64
}

func backends() []backend {
	return []backend{
		{name: "influx", open: func(t *testing.T) ingest.Telemetry { return startInflux(t).store(t) },
			count: func(t *testing.T, tel ingest.Telemetry, device string) int64 {
				n, err := tel.(*ingest.InfluxStore).Count(context.Background(), device, time.Now().Add(-24*time.Hour), time.Now().Add(time.Hour))
				require.NoError(t, err)
				return n
			}},
		{name: "sqlite", open: openSQLiteTelemetry,
			count: func(t *testing.T, tel ingest.Telemetry, device string) int64 {
				n, err := tel.(*ingest.SQLiteTelemetry).Count(context.Background(), device)
				require.NoError(t, err)
				return n
			}},
	}
}

func openSQLiteTelemetry(t *testing.T) ingest.Telemetry {
	s := &ingest.SQLiteTelemetry{Path: t.TempDir() + "/telemetry.db", Logger: quietLogger(), FlushInterval: 20 * time.Millisecond}
	require.NoError(t, s.Initialize())
	t.Cleanup(s.Close)
	return s
}

// transport connects a stack to a broker and returns the URL devices publish to.
type transport struct {
	name  string
	start func(t *testing.T, s *stack) (url string, restart func())
}

// transports returns the embedded broker and Mosquitto; with Mosquitto the subscriber uses
// the shared subscription group shared ("" for none).
func transports(shared string) []transport {
	return []transport{
		{name: "embedded", start: func(t *testing.T, s *stack) (string, func()) {
			b := startBroker(t, s, "127.0.0.1:0")
			addr := b.Addr()
			restart := func() {
				b.Close()
				time.Sleep(300 * time.Millisecond)
				b = startBroker(t, s, addr)
			}
			return "tcp://" + addr, restart
		}},
		{name: "mosquitto", start: func(t *testing.T, s *stack) (string, func()) {
			m := startMosquitto(t, s.devs)
			sub := &ingest.Subscriber{URL: m.url(), ClientID: "offsite-test-" + t.Name(), Username: gatewayUser, Password: gatewayPass,
				SharedGroup: shared, Directory: s.dir, Pipeline: s.pipe, Profiles: s.reg, Logger: quietLogger()}
			require.NoError(t, sub.Initialize())
			t.Cleanup(sub.Close)
			require.Eventually(t, sub.Subscribed, 10*time.Second, 20*time.Millisecond)
			restart := func() {
				m.stop()
				time.Sleep(300 * time.Millisecond)
				m.start()
				require.Eventually(t, sub.Subscribed, 20*time.Second, 20*time.Millisecond)
			}
			return m.url(), restart
		}},
	}
}

func startBroker(t *testing.T, s *stack, listen string) *ingest.Broker {
	b := &ingest.Broker{Listen: listen, Auth: s.devs, Directory: s.dir, Pipeline: s.pipe, Logger: quietLogger(), ConnectRate: 1000, ConnectBurst: 1000}
	require.NoError(t, b.Initialize())
	t.Cleanup(b.Close)
	return b
}

func sensorFleet() *fakeDevices {
	devs := &fakeDevices{}
	devs.add("site-1", "dust-1", "dust-noise-monitor")
	devs.add("site-1", "gen-1", "generic-json")
	devs.add("site-1", "elev-1", "elevator-monitor")
	devs.add("site-2", "cold-1", "coldchain-logger")
	return devs
}

// TestReadingsArriveDecoded publishes every payload kind through each broker and checks the
// readings are decoded into each telemetry store, that Latest and Series agree with what was
// sent, and that published = stored + quarantined.
func TestReadingsArriveDecoded(t *testing.T) {
	for _, tr := range transports("offsite") {
		for _, be := range backends() {
			t.Run(tr.name+"/"+be.name, func(t *testing.T) {
				tel := be.open(t)
				devs := sensorFleet()
				s := newStack(t, devs, tel)
				if is, ok := tel.(*ingest.InfluxStore); ok {
					is.Describe = s.dir.Describe
				}
				url, _ := tr.start(t, s)
				base := time.Now().Truncate(10 * time.Second).Add(-time.Minute)

				dust, err := deviceClient(t, url, "dust-1", "secret-dust-1")
				require.NoError(t, err)
				for i := range 20 {
					require.NoError(t, publish(t, dust, "offsite/site-1/dust-1/up", dustPayload(base.Add(time.Duration(i)*time.Second), float64(50+i))))
				}
				gen, err := deviceClient(t, url, "gen-1", "secret-gen-1")
				require.NoError(t, err)
				for i := range 5 {
					require.NoError(t, publish(t, gen, "offsite/site-1/gen-1/up",
						fmt.Appendf(nil, `{"ts": %q, "values": {"temperature": 21.5, "co2": %d}}`, base.Add(time.Duration(i)*time.Second).Format(time.RFC3339Nano), 600+i)))
				}
				elev, err := deviceClient(t, url, "elev-1", "secret-elev-1")
				require.NoError(t, err)
				for i := range 5 {
					require.NoError(t, publish(t, elev, "offsite/site-1/elev-1/up", elevatorFrame(int8(i), 150)))
					time.Sleep(3 * time.Millisecond) // no device time: receive times must differ
				}
				cold, err := deviceClient(t, url, "cold-1", "secret-cold-1")
				require.NoError(t, err)
				for i := range 5 {
					require.NoError(t, publish(t, cold, "offsite/site-2/cold-1/up",
						fmt.Appendf(nil, `{"time": %q, "temp": -18.5, "rh": 80, "bat": 3.6}`, base.Add(time.Duration(i)*time.Minute/2).Format(time.RFC3339))))
				}

				require.Eventually(t, func() bool { return s.pipe.Stats().Submitted >= 35 }, 20*time.Second, 10*time.Millisecond)
				s.flush(t, tel)
				st := s.pipe.Stats()
				require.EqualValues(t, 35, st.Stored+st.Quarantined, "published = stored + quarantined")
				require.Zero(t, st.Quarantined)
				require.EqualValues(t, 20*8, be.count(t, tel, "dust-1"))
				require.EqualValues(t, 5*2, be.count(t, tel, "gen-1"))
				require.EqualValues(t, 5*13, be.count(t, tel, "elev-1"))
				require.EqualValues(t, 5*3, be.count(t, tel, "cold-1"))

				ctx := context.Background()
				latest, err := tel.Latest(ctx, "dust-1")
				require.NoError(t, err)
				require.Len(t, latest, 8)
				for _, r := range latest {
					if r.Metric == "pm10" {
						require.Equal(t, 69.0, r.Value)
						require.Equal(t, "µg/m³", r.Unit)
						require.Equal(t, "site-1", r.Site)
						require.True(t, r.Time.Equal(base.Add(19*time.Second)), "device time kept: %s", r.Time)
					}
				}
				el, err := tel.Latest(ctx, "elev-1")
				require.NoError(t, err)
				for _, r := range el {
					if r.Metric == "speed" {
						require.InDelta(t, 1.5, r.Value, 1e-9)
					}
				}
				pts, err := tel.Series(ctx, ingest.SeriesQuery{Device: "dust-1", Metric: "pm10", From: base, To: base.Add(20 * time.Second), Step: 10 * time.Second})
				require.NoError(t, err)
				require.Len(t, pts, 2)
				require.True(t, pts[0].Time.Equal(base), "window labelled by its start: %s vs %s", pts[0].Time, base)
				require.InDelta(t, 54.5, pts[0].Mean, 1e-9)
				require.Equal(t, 50.0, pts[0].Min)
				require.Equal(t, 59.0, pts[0].Max)
				require.EqualValues(t, 10, pts[0].Count)
				require.InDelta(t, 64.5, pts[1].Mean, 1e-9)
			})
		}
	}
}
