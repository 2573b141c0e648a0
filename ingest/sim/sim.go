// Package sim simulates the sensors of the demo: one publisher per device, for any sensor
// profile, with values that look like the real thing — daily patterns (dust and noise follow
// the working day, kitchens their meal times, cold stores stay cold), noise, occasional
// excursions across the profile's default rule thresholds long enough to fire duration rules,
// and a sensor that goes silent now and then so presence has something to notice. Each sensor
// logs in to the broker with its own credentials and publishes only on its own topics.
package sim

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	profiles "github.com/offsite-gw/offsite/firmware-profiles"
)

// Sensor is one simulated device.
type Sensor struct {
	Device   string
	Site     string
	Profile  profiles.Profile
	Username string
	Password string
	// Silent makes this sensor stop publishing for SilentFor every SilentEvery.
	Silent bool
}

// Fleet publishes for every Sensor until Close.
type Fleet struct {
	BrokerURL string
	Sensors   []Sensor
	// Interval between two messages of one sensor (default: the profile heartbeat / 5,
	// at least 1s).
	Interval time.Duration
	// ExcursionChance is the chance per message that a sensor starts an excursion (default
	// 0.01); an excursion lasts ExcursionFor (default 12m, longer than the 10m duration rules).
	ExcursionChance float64
	ExcursionFor    time.Duration
	// SilentEvery and SilentFor shape the silences of Silent sensors (default 30m and 3 ×
	// heartbeat).
	SilentEvery time.Duration
	SilentFor   time.Duration
	// FirstExcursionAfter: the first sensor with a threshold rule (one that fires on the
	// first reading over its limit) starts an excursion this long after the start, so a demo
	// shows a reading over a limit within minutes (default 60s; negative: off).
	FirstExcursionAfter time.Duration
	Seed                uint64
	Logger              *slog.Logger

	stop chan struct{}
	wg   sync.WaitGroup
}

// Initialize connects every sensor and starts publishing.
func (f *Fleet) Initialize() error {
	if f.BrokerURL == "" {
		return errors.New("sim: BrokerURL is required")
	}
	if f.ExcursionChance == 0 {
		f.ExcursionChance = 0.01
	}
	if f.ExcursionFor == 0 {
		f.ExcursionFor = 12 * time.Minute
	}
	if f.SilentEvery == 0 {
		f.SilentEvery = 30 * time.Minute
	}
	if f.Logger == nil {
		f.Logger = slog.Default()
	}
	if f.FirstExcursionAfter == 0 {
		f.FirstExcursionAfter = time.Minute
	}
	f.stop = make(chan struct{})
	early := f.FirstExcursionAfter > 0
	for i, s := range f.Sensors {
		if s.Profile.MQTT == nil || s.Profile.Decoder == nil {
			continue
		}
		g := NewGenerator(s.Profile, f.Seed+uint64(i))
		if early && !s.Silent && g.hasKind("threshold") {
			g.earlyAt, early = time.Now().Add(f.FirstExcursionAfter), false
		}
		f.wg.Add(1)
		go f.run(s, g)
	}
	return nil
}

// Close disconnects every sensor.
func (f *Fleet) Close() {
	if f.stop != nil {
		close(f.stop)
		f.wg.Wait()
		f.stop = nil
	}
}

func expand(t, site, dev string) string {
	return strings.NewReplacer("{site}", site, "{device}", dev).Replace(t)
}

func (f *Fleet) run(s Sensor, g *Generator) {
	defer f.wg.Done()
	up := expand(s.Profile.MQTT.Up, s.Site, s.Device)
	status := ""
	// A clean session, as most field sensors use: paho v1.5.1, resuming a persistent session,
	// marks the stored publishes as duplicates while its sender may be writing them (a data
	// race under -race when the on-connect handler has just published the status).
	opts := paho.NewClientOptions().AddBroker(f.BrokerURL).SetClientID("sim-" + s.Device).
		SetUsername(s.Username).SetPassword(s.Password).SetCleanSession(true).SetProtocolVersion(4).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(2 * time.Second).SetMaxReconnectInterval(30 * time.Second)
	if s.Profile.MQTT.Status != "" {
		status = expand(s.Profile.MQTT.Status, s.Site, s.Device)
		opts.SetWill(status, "offline", 1, true)
		opts.SetOnConnectHandler(func(c paho.Client) { c.Publish(status, 1, true, "online") })
	}
	c := paho.NewClient(opts)
	c.Connect()
	defer c.Disconnect(250)
	hb := time.Duration(s.Profile.Heartbeat)
	if hb <= 0 {
		hb = 5 * time.Minute
	}
	interval := f.Interval
	if interval <= 0 {
		interval = max(time.Second, hb/5)
	}
	silentFor := f.SilentFor
	if silentFor <= 0 {
		silentFor = 3 * hb
	}
	start := time.Now()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case now := <-t.C:
			if s.Silent && (now.Sub(start)%f.SilentEvery) > f.SilentEvery-silentFor {
				continue // silent: no message, no will — only the heartbeat can tell
			}
			if !g.earlyAt.IsZero() && !now.Before(g.earlyAt) {
				g.earlyAt = time.Time{}
				g.StartExcursionOf(now, f.ExcursionFor, "threshold")
				f.Logger.Info("sim: reading over a limit", "device", s.Device)
			} else if g.rnd.Float64() < f.ExcursionChance {
				g.StartExcursion(now, f.ExcursionFor)
			}
			payload, err := g.Payload(now)
			if err != nil {
				f.Logger.Warn("sim: payload", "device", s.Device, "err", err)
				continue
			}
			if !c.IsConnectionOpen() {
				continue
			}
			c.Publish(up, 1, false, payload)
		}
	}
}

// Generator makes the payloads of one simulated device.
type Generator struct {
	p       profiles.Profile
	rnd     *rand.Rand
	walk    map[string]float64 // slow random walk per metric
	exc     *excursion
	floor   float64
	running bool
	earlyAt time.Time // Fleet: start a threshold excursion then
}

type excursion struct {
	metric string
	value  float64
	until  time.Time
}

// NewGenerator returns a generator for profile p; seed makes it repeatable.
func NewGenerator(p profiles.Profile, seed uint64) *Generator {
	return &Generator{p: p, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), walk: map[string]float64{}}
}

// StartExcursion pushes one metric that has a default threshold rule across it until now+d.
func (g *Generator) StartExcursion(now time.Time, d time.Duration) {
	g.StartExcursionOf(now, d, "threshold", "duration")
}

// hasKind reports whether the profile has a rule of kind on a metric.
func (g *Generator) hasKind(kind string) bool {
	for _, r := range g.p.Rules {
		if r.Metric != "" && r.Kind == kind {
			return true
		}
	}
	return false
}

// StartExcursionOf is StartExcursion limited to rules of the given kinds.
func (g *Generator) StartExcursionOf(now time.Time, d time.Duration, kinds ...string) {
	var cands []profiles.Rule
	for _, r := range g.p.Rules {
		if r.Metric != "" && slices.Contains(kinds, r.Kind) {
			cands = append(cands, r)
		}
	}
	if len(cands) == 0 {
		return
	}
	r := cands[g.rnd.IntN(len(cands))]
	v := r.Value
	switch r.Op {
	case ">", ">=":
		v = r.Value*1.2 + math.Max(1, math.Abs(r.Value)*0.05)
		if r.Value < 0 {
			v = r.Value + math.Abs(r.Value)*0.3 + 1
		}
	case "<", "<=":
		v = r.Value - math.Max(0.1, math.Abs(r.Value)*0.1)
	}
	g.exc = &excursion{metric: r.Metric, value: g.clamp(r.Metric, v), until: now.Add(d)}
}

func (g *Generator) clamp(metric string, v float64) float64 {
	if m, ok := g.p.Metric(metric); ok {
		if m.Min != nil && v < *m.Min {
			v = *m.Min
		}
		if m.Max != nil && v > *m.Max {
			v = *m.Max
		}
	}
	return v
}

// daily is a bump that peaks at peakHour local time, from 0 to 1.
func daily(now time.Time, peakHour float64) float64 {
	h := float64(now.Hour()) + float64(now.Minute())/60
	return (1 + math.Cos((h-peakHour)/24*2*math.Pi)) / 2
}

// Value returns the simulated value of metric at now.
func (g *Generator) Value(metric string, now time.Time) float64 {
	if g.exc != nil && now.After(g.exc.until) {
		g.exc = nil
	}
	if g.exc != nil && g.exc.metric == metric {
		if g.exc.value == math.Trunc(g.exc.value) && math.Abs(g.exc.value) <= 1 {
			return g.exc.value // a flag: exactly 0 or 1
		}
		return g.clamp(metric, g.exc.value*(1+g.rnd.NormFloat64()*0.02))
	}
	n := g.rnd.NormFloat64()
	w := g.walk[metric]*0.95 + n*0.05
	g.walk[metric] = w
	hour := float64(now.Hour())
	work := hour >= 7 && hour < 19
	cold := g.p.ID == "coldchain-logger"
	var v float64
	switch metric {
	case "pm25":
		v = 25 + 30*daily(now, 14) + 8*w + 3*n
	case "pm10":
		v = 55 + 60*daily(now, 14) + 15*w + 5*n
	case "tsp":
		v = 110 + 90*daily(now, 14) + 20*w
	case "noise":
		v = 48 + 3*n
		if work {
			v = 62 + 4*w + 2*n
		}
	case "wind_speed":
		v = math.Abs(2.5 + 1.5*daily(now, 15) + w + 0.4*n)
	case "wind_direction":
		v = math.Mod(360+180+90*w+10*n, 360)
	case "temperature", "car_temperature":
		if cold {
			v = -19 + 0.6*w + 0.2*n
		} else {
			v = 14 + 7*daily(now, 15) + w + 0.3*n
		}
	case "humidity":
		if cold {
			v = 85 + 3*w
		} else {
			v = 70 - 20*daily(now, 15) + 3*w
		}
	case "battery":
		v = 3.65 + 0.02*w
	case "lel":
		v = math.Abs(1.5 + 0.8*w + 0.3*n)
	case "signal":
		v = -75 + 4*w
	case "fume":
		v = 0.3 + 0.9*(daily(now, 12)+daily(now, 18.5))/2 + 0.15*w + 0.05*n
	case "pm":
		v = 0.4 + 1.0*(daily(now, 12)+daily(now, 18.5))/2 + 0.2*w
	case "nmhc":
		v = 2.5 + 2*daily(now, 12) + 0.5*w
	case "fan", "purifier":
		if hour >= 10 && hour < 22 {
			v = 1
		}
	case "fault", "alarm_flags", "overspeed", "door_open_moving", "power_failure", "out_of_zone", "trapped":
		v = 0
	case "floor":
		if g.rnd.Float64() < 0.3 {
			g.floor = math.Max(-2, math.Min(30, g.floor+float64(g.rnd.IntN(7)-3)))
			g.running = true
		} else {
			g.running = false
		}
		v = g.floor
	case "running":
		v = b2f(g.running)
	case "direction":
		if g.running {
			v = float64(1 + g.rnd.IntN(2))
		}
	case "door_open":
		v = b2f(!g.running && g.rnd.Float64() < 0.4)
	case "speed":
		if g.running {
			v = 1.5 + 0.05*n
		}
	case "load":
		if work {
			v = math.Abs(35 + 20*w + 10*n)
		} else {
			v = math.Abs(5 + 5*n)
		}
	case "co2":
		v = 450 + 300*daily(now, 15) + 30*w
	case "voltage":
		v = 220 + 3*w
	case "current":
		v = math.Abs(5 + 2*daily(now, 14) + 0.5*w)
	case "water_level":
		v = 1.5 + 0.3*w
	default:
		m, _ := g.p.Metric(metric)
		lo, hi := 0.0, 100.0
		if m.Min != nil {
			lo = *m.Min
		}
		if m.Max != nil {
			hi = *m.Max
		}
		v = lo + (hi-lo)*(0.4+0.1*daily(now, 14)+0.03*w)
	}
	return g.clamp(metric, v)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Payload renders one message of the profile's decoder at now.
func (g *Generator) Payload(now time.Time) ([]byte, error) {
	d := g.p.Decoder
	switch d.Kind {
	case "json":
		return g.jsonPayload(now)
	case "binary":
		return g.binaryPayload(now)
	}
	return nil, fmt.Errorf("sim: decoder kind %q", d.Kind)
}

func setPath(root map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	m := root
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func (g *Generator) jsonPayload(now time.Time) ([]byte, error) {
	d := g.p.Decoder
	root := map[string]any{}
	if d.TimePath != "" {
		setPath(root, d.TimePath, now.UnixMilli())
	}
	if d.OpenMetrics {
		vals := map[string]any{}
		for _, m := range g.p.Metrics {
			switch m.Name {
			case "temperature", "humidity", "pm25", "pm10", "noise":
				vals[m.Name] = round(g.Value(m.Name, now), 1)
			}
		}
		if len(vals) == 0 && len(g.p.Metrics) > 0 {
			vals[g.p.Metrics[0].Name] = round(g.Value(g.p.Metrics[0].Name, now), 2)
		}
		path := d.ValuesPath
		if path == "" {
			path = "values"
		}
		setPath(root, path, vals)
		return json.Marshal(root)
	}
	for _, f := range d.Fields {
		v := g.Value(f.Metric, now)
		scale := f.Scale
		if scale == 0 {
			scale = 1
		}
		setPath(root, f.Path, round((v-f.Add)/scale, 3))
	}
	return json.Marshal(root)
}

func (g *Generator) binaryPayload(now time.Time) ([]byte, error) {
	d := g.p.Decoder
	buf := make([]byte, d.Length)
	var order binary.ByteOrder = binary.BigEndian
	if d.ByteOrder == "little" {
		order = binary.LittleEndian
	}
	if d.Magic != "" {
		magic, err := hex.DecodeString(d.Magic)
		if err != nil {
			return nil, fmt.Errorf("sim: magic %q: %w", d.Magic, err)
		}
		copy(buf, magic)
	}
	bitOffsets := map[int]bool{}
	for _, f := range d.Fields {
		if f.Bit != nil {
			bitOffsets[f.Offset] = true
		}
	}
	for _, f := range d.Fields {
		if f.Bit != nil || bitOffsets[f.Offset] {
			continue
		}
		scale := f.Scale
		if scale == 0 {
			scale = 1
		}
		raw := math.Round((g.Value(f.Metric, now) - f.Add) / scale)
		if n := profiles.TypeSize(f.Type); n == 0 || f.Offset+n > len(buf) {
			return nil, fmt.Errorf("sim: field %s: type %q unknown or beyond the frame", f.Metric, f.Type)
		}
		b := buf[f.Offset:]
		switch f.Type {
		case "u8", "i8":
			b[0] = byte(int64(raw))
		case "u16", "i16":
			order.PutUint16(b, uint16(int64(raw)))
		case "u32", "i32":
			order.PutUint32(b, uint32(int64(raw)))
		case "f32":
			order.PutUint32(b, math.Float32bits(float32((g.Value(f.Metric, now)-f.Add)/scale)))
		case "f64":
			order.PutUint64(b, math.Float64bits((g.Value(f.Metric, now)-f.Add)/scale))
		}
	}
	for _, f := range d.Fields {
		if f.Bit != nil && g.Value(f.Metric, now) >= 0.5 && f.Offset < len(buf) {
			buf[f.Offset] |= 1 << *f.Bit
		}
	}
	return buf, nil
}
