package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/events/uplink"
)

// department is the supervising department of every simulated site; the officer belongs to
// it, so he sees every event the sites send.
const department = "市应急管理局"

// devicesPerSite is how many sensors each simulated site gateway has.
const devicesPerSite = 10

// site is one simulated site gateway: it makes events the way a site's rules do and posts
// them like its centre uplink (events/uplink, kind centre): sequential signed batches, each
// retried with backoff until the centre answers for every event.
type site struct {
	ID     string
	Secret []byte
	idx    int
	n      int64
	active map[int]string // device index → alarm key currently active
	rng    *rand.Rand

	retries  atomic.Int64
	rejected atomic.Int64
}

func newSite(i int, id, secret string) *site {
	return &site{ID: id, Secret: []byte(secret), idx: i, active: map[int]string{}, rng: rand.New(rand.NewPCG(uint64(i), 42))}
}

// Kinds of event a site sends, for the mix.
const (
	kindReading = iota
	kindActivation
	kindClear
)

// next makes the site's next event at now (occurred_at, and the time of its ULID) and returns
// its kind. The mix: about 4 % alarm activations (sensor.threshold active, critical: each
// opens an alert at the centre), the clears of those alarms a little later, and otherwise
// sensor readings forwarded as events (sensor.reading, info, with the value; no alarm).
func (s *site) next(now time.Time) (event.Event, int) {
	s.n++
	dev := s.rng.IntN(devicesPerSite)
	devID := fmt.Sprintf("%s-gas-%02d", s.ID, dev)
	limit := 20.0
	e := event.Event{
		ID: events.NewID(now), OccurredAt: now.UTC().Truncate(time.Millisecond), GatewayID: s.ID,
		Site:       &event.Site{ID: s.ID + "-site", Name: fmt.Sprintf("基准测试 美食城后厨 %03d", s.idx+1), RegionCode: "410702"},
		Device:     &event.Device{ID: devID, Kind: "sensor", Profile: "gas-detector"},
		Department: department, SupervisionItem: "410702-YJ-RQ-001",
	}
	kind := kindReading
	switch r := s.rng.IntN(100); {
	case r < 4 && s.active[dev] == "":
		kind = kindActivation
		e.Type, e.Severity, e.State, e.Rule = event.TypeSensorThreshold, "critical", event.StateActive, "lel-high"
		e.AlarmKey = fmt.Sprintf("%s/lel-high/%d", devID, s.n)
		e.Reading = &event.Reading{Metric: "lel", Value: 20.5 + float64(s.n%700)/10, Unit: "%LEL", Limit: &limit}
		e.Message = fmt.Sprintf("可燃气体浓度超限：%.1f %%LEL（限值 20）", e.Reading.Value)
		s.active[dev] = e.AlarmKey
	case r < 8 && s.active[dev] != "":
		kind = kindClear
		e.Type, e.Severity, e.State, e.Rule = event.TypeSensorThreshold, "info", event.StateCleared, "lel-high"
		e.AlarmKey = s.active[dev]
		e.Reading = &event.Reading{Metric: "lel", Value: 3, Unit: "%LEL", Limit: &limit}
		e.Message = "可燃气体浓度恢复正常"
		delete(s.active, dev)
	default:
		e.Type, e.Severity = "sensor.reading", "info"
		e.Reading = &event.Reading{Metric: "lel", Value: float64(s.rng.IntN(150)) / 10, Unit: "%LEL"}
	}
	raw, err := json.Marshal(&e)
	if err != nil {
		panic(err) // every field is ours
	}
	e.Raw = raw
	return e, kind
}

// poster sends batches to the centre.
type poster struct {
	Base string
	HTTP *http.Client
}

// post sends evs as one signed batch and retries (new timestamp and nonce each time, capped
// exponential backoff from 200 ms) until the centre answers for every event or ctx ends.
// It returns how many the centre accepted (newly stored) and how many it knew already.
func (p *poster) post(ctx context.Context, s *site, evs []event.Event, backlog int) (accepted, duplicates int, err error) {
	body := uplink.EncodeBatch(s.ID, evs)
	backoff := 200 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			s.retries.Add(1)
			select {
			case <-ctx.Done():
				return 0, 0, ctx.Err()
			case <-time.After(backoff/2 + time.Duration(rand.Int64N(int64(backoff/2)))):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
		ans, err := p.once(ctx, s, body, backlog)
		if err != nil {
			if ctx.Err() != nil {
				return 0, 0, ctx.Err()
			}
			if attempt%20 == 19 {
				fmt.Printf("site %s: batch of %d still refused after %d attempts: %v\n", s.ID, len(evs), attempt+1, err)
			}
			continue
		}
		if n := len(ans.Accepted) + len(ans.Duplicates) + len(ans.Rejected); n != len(evs) {
			return 0, 0, fmt.Errorf("site %s: centre answered for %d of %d events", s.ID, n, len(evs))
		}
		if len(ans.Rejected) > 0 {
			s.rejected.Add(int64(len(ans.Rejected)))
			return 0, 0, fmt.Errorf("site %s: centre rejected %d events, first %s: %s", s.ID, len(ans.Rejected), ans.Rejected[0].ID, ans.Rejected[0].Reason)
		}
		return len(ans.Accepted), len(ans.Duplicates), nil
	}
}

func (p *poster) once(ctx context.Context, s *site, body []byte, backlog int) (uplink.BatchResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.Base+"/offsite/v1/events:batch", bytes.NewReader(body))
	if err != nil {
		return uplink.BatchResponse{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(uplink.HeaderBacklog, strconv.Itoa(backlog))
	req.Header.Set(uplink.HeaderVersion, "bench-centre")
	if err := uplink.SignRequest(req, s.ID, uplink.AlgSM3, s.Secret, time.Now(), body); err != nil {
		return uplink.BatchResponse{}, err
	}
	resp, err := p.HTTP.Do(req)
	if err != nil {
		return uplink.BatchResponse{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return uplink.BatchResponse{}, fmt.Errorf("centre answered %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return uplink.ParseBatchResponse(b)
}
