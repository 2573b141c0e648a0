package rules_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/analytics/rules"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events/event"
	profiles "github.com/offsite-gw/offsite/firmware-profiles"
	"github.com/offsite-gw/offsite/ingest/decode"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

var shanghai = func() *time.Location {
	l, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		return time.FixedZone("CST", 8*3600)
	}
	return l
}()

// day0 is Friday 2026-11-27 10:00 in Shanghai, a working day.
var day0 = time.Date(2026, 11, 27, 10, 0, 0, 0, shanghai)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// sink is Emit: it keeps what it accepted, keyed by id so a re-emission with the same id
// (allowed, the log is idempotent) does not count twice.
type sink struct {
	mu    sync.Mutex
	fail  bool
	calls int
	byID  map[string]event.Event
	order []string
}

func (s *sink) Emit(_ context.Context, evs []event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.fail {
		return errors.New("event log down")
	}
	if s.byID == nil {
		s.byID = map[string]event.Event{}
	}
	for _, e := range evs {
		if _, ok := s.byID[e.ID]; !ok {
			s.order = append(s.order, e.ID)
		}
		s.byID[e.ID] = e
	}
	return nil
}

func (s *sink) setFail(f bool) { s.mu.Lock(); s.fail = f; s.mu.Unlock() }

func (s *sink) events() []event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]event.Event, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.byID[id])
	}
	return out
}

// states lists the states of the events in order, e.g. [active cleared].
func (s *sink) states() []string {
	var out []string
	for _, e := range s.events() {
		out = append(out, e.State)
	}
	return out
}

type profileMap map[string]profiles.Profile

func (m profileMap) Get(id string) (profiles.Profile, bool) { p, ok := m[id]; return p, ok }

type deviceMap struct {
	devs  map[string]devices.Device
	sites map[string]devices.Site
}

func (d deviceMap) GetDevice(_ context.Context, id string) (devices.Device, error) {
	if v, ok := d.devs[id]; ok {
		return v, nil
	}
	return devices.Device{}, errors.New("no such device")
}

func (d deviceMap) GetSite(_ context.Context, id string) (devices.Site, error) {
	if v, ok := d.sites[id]; ok {
		return v, nil
	}
	return devices.Site{}, errors.New("no such site")
}

func pf(v float64) *float64 { return &v }

func dur(s string) profiles.Duration {
	d, err := profiles.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return d
}

// testProfile is a dust monitor with the given rules, a 1-minute heartbeat.
func testProfile(rs ...profiles.Rule) profiles.Profile {
	return profiles.Profile{
		ID: "test-dust", Kind: "sensor", Heartbeat: dur("1m"),
		Metrics: []profiles.Metric{
			{Name: "pm10", Label: "PM10", Unit: "µg/m³"},
			{Name: "temperature", Label: "温度", Unit: "°C"},
			{Name: "noise", Label: "噪声", Unit: "dB(A)"},
		},
		Rules: rs,
	}
}

func testDevices(n int) deviceMap {
	d := deviceMap{devs: map[string]devices.Device{}, sites: map[string]devices.Site{
		"site-7": {ID: "site-7", Name: "7 号地块", RegionCode: "410702", Department: "市住房和城乡建设局"},
		"site-9": {ID: "site-9", Name: "9 号地块", RegionCode: "410702"},
	}}
	d.devs["dev-1"] = devices.Device{ID: "dev-1", SiteID: "site-7", Name: "东侧", Kind: devices.KindSensor, Profile: "test-dust"}
	d.devs["dev-2"] = devices.Device{ID: "dev-2", SiteID: "site-9", Name: "西侧", Kind: devices.KindSensor, Profile: "test-dust"}
	for i := 0; i < n; i++ {
		id := devID(i)
		d.devs[id] = devices.Device{ID: id, SiteID: "site-7", Kind: devices.KindSensor, Profile: "test-dust"}
	}
	return d
}

func devID(i int) string { return "bench-" + string(rune('a'+i%26)) + "-" + itoa(i) }

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for i > 0 {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
	}
	return string(b)
}

type harness struct {
	t   testing.TB
	db  *store.DB
	e   *rules.Engine
	clk *clock
	out *sink
}

type option func(*rules.Engine)

func newHarness(t testing.TB, db *store.DB, p profiles.Profile, opts ...option) *harness {
	t.Helper()
	if db == nil {
		db = storetest.SQLite(t, testSchema...)
	}
	h := &harness{t: t, db: db, clk: &clock{t: day0}, out: &sink{}}
	h.start(p, opts...)
	return h
}

// start makes a new engine on the harness's database, clock and sink (a restart).
func (h *harness) start(p profiles.Profile, opts ...option) {
	h.e = &rules.Engine{
		DB: h.db, Profiles: profileMap{p.ID: p}, Devices: testDevices(0),
		Emit: h.out.Emit, Now: h.clk.Now, Location: shanghai,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, o := range opts {
		o(h.e)
	}
	require.NoError(h.t, h.e.Initialize())
}

// at sets the clock to day0+d.
func (h *harness) at(d time.Duration) time.Time {
	t := day0.Add(d)
	h.clk.Set(t)
	return t
}

// observe sends one reading of dev-1 at day0+d and ticks (as Run would within a second).
func (h *harness) observe(d time.Duration, metric string, v float64) {
	h.observeNoTick(d, metric, v)
	require.NoError(h.t, h.e.Tick(context.Background()))
}

func (h *harness) observeNoTick(d time.Duration, metric string, v float64) {
	t := h.at(d)
	h.e.Observe(context.Background(), "dev-1", []decode.Reading{{Metric: metric, Value: v}}, t)
}

func (h *harness) tick(d time.Duration) {
	h.at(d)
	require.NoError(h.t, h.e.Tick(context.Background()))
}

// series observes v(i) every step from from to to (inclusive).
func (h *harness) series(from, to, step time.Duration, metric string, v func(time.Duration) float64) {
	for d := from; d <= to; d += step {
		h.observe(d, metric, v(d))
	}
}

func constant(v float64) func(time.Duration) float64 { return func(time.Duration) float64 { return v } }

type decodeReading = decode.Reading
type rulesEngine = rules.Engine

func profileRule(id, metric string, limit float64) profiles.Rule {
	return profiles.Rule{ID: id, Kind: "duration", Metric: metric, Op: ">", Value: limit, For: dur("10m"), Severity: "major", During: "06:00-22:00"}
}
