package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// connect logs a device in to the gateway's embedded broker with its own credentials.
func connect(broker string, s sensor) (paho.Client, error) {
	opts := paho.NewClientOptions().AddBroker(broker).SetClientID(s.ID).SetUsername(s.Username).SetPassword(s.Secret).
		SetCleanSession(true).SetProtocolVersion(4).SetAutoReconnect(true).SetConnectRetry(false).
		SetWriteTimeout(10 * time.Second).SetOrderMatters(false)
	cl := paho.NewClient(opts)
	if t := cl.Connect(); !t.WaitTimeout(30*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("mqtt connect %s: %v", s.ID, t.Error())
	}
	return cl, nil
}

// connectAll connects every sensor, a few at a time (each login is an argon2id check).
func connectAll(broker string, ss []sensor) ([]paho.Client, error) {
	out := make([]paho.Client, len(ss))
	errs := make([]error, len(ss))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, s := range ss {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i], errs[i] = connect(broker, s)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			disconnectAll(out)
			return nil, err
		}
	}
	return out, nil
}

func disconnectAll(cs []paho.Client) {
	for _, c := range cs {
		if c != nil {
			c.Disconnect(100)
		}
	}
}

// gasPayload is a gas-detector reading (firmware-profiles/builtin/gas-detector.yml).
func gasPayload(ts time.Time, lel float64) []byte {
	return fmt.Appendf(nil, `{"ts": %d, "gas": {"lel": %.1f, "fault": 0}, "signal": -71}`, ts.UnixMilli(), lel)
}

// dustPayload is a dust-noise-monitor reading below every threshold of its profile (PM10
// 150 µg/m³, night noise 55 dB(A), wind 10.8 m/s): four values.
func dustPayload(ts time.Time, i int64) []byte {
	return fmt.Appendf(nil, `{"ts": %d, "sn": "B1", "data": {"pm25": %d.5, "pm10": %d, "noise": 48.5, "ws": 2.1}}`,
		ts.UnixMilli(), 20+i%30, 60+i%50)
}

// dustValues is the number of readings (metric values) in one dustPayload.
const dustValues = 4

// background publishes rate messages per second in total, spread evenly over the clients, at
// QoS 1 with up to window unacknowledged publishes per client, until ctx ends. It counts the
// acknowledged messages in acked and returns the first publish error.
func background(ctx context.Context, clients []paho.Client, ss []sensor, rate float64, window int, acked *atomic.Int64) error {
	if rate <= 0 || len(clients) == 0 {
		return nil
	}
	every := time.Duration(float64(time.Second) * float64(len(clients)) / rate)
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	fail := func(err error) {
		errMu.Lock()
		if first == nil {
			first = err
		}
		errMu.Unlock()
	}
	for i, cl := range clients {
		wg.Go(func() {
			// Stagger the clients so the load is smooth, not a burst every tick.
			select {
			case <-ctx.Done():
				return
			case <-time.After(every * time.Duration(i) / time.Duration(len(clients))):
			}
			t := time.NewTicker(every)
			defer t.Stop()
			var pending []paho.Token
			var n int64
			for {
				select {
				case <-ctx.Done():
					for _, tok := range pending {
						if tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
							acked.Add(1)
						}
					}
					return
				case now := <-t.C:
					n++
					pending = append(pending, cl.Publish(ss[i].Topic, 1, false, dustPayload(now, n)))
					for len(pending) > 0 && (len(pending) >= window || isDone(pending[0])) {
						tok := pending[0]
						pending = pending[1:]
						if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
							fail(fmt.Errorf("background publish %s: %v", ss[i].ID, tok.Error()))
							return
						}
						acked.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	return first
}

func isDone(t paho.Token) bool {
	select {
	case <-t.Done():
		return true
	default:
		return false
	}
}
