package ingest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	profiles "github.com/offsite-gw/offsite/firmware-profiles"
)

// Subscriber reads sensor topics from an external broker (Mosquitto, EMQX) with
// paho.mqtt.golang and hands each message to Pipeline. It keeps a persistent session
// (CleanSession false, fixed ClientID) at QoS 1, so messages published while the gateway is
// away wait in the broker, and it subscribes again on every reconnect. Handlers run without
// ordering, one goroutine per message, and only enqueue: the network loop never waits on
// decoding or storage. With SharedGroup set the filters become $share/GROUP/…, so several
// gateways split one broker's load.
type Subscriber struct {
	// URL of the broker: tcp://host:1883, ssl://host:8883 (or mqtts://, tls://), ws://, wss://.
	URL      string
	ClientID string // required and stable: it names the persistent session
	Username string
	Password string
	// TLS settings (for ssl:// URLs): CA file to trust, optional client certificate.
	CAFile             string
	CertFile           string
	KeyFile            string
	InsecureSkipVerify bool
	TLS                *tls.Config // overrides the files when set
	// SharedGroup, when set, subscribes through $share/SharedGroup/.
	SharedGroup string
	// Topics are the filters to subscribe to (default: one per topic template of the
	// profiles, placeholders as +).
	Topics []string
	QoS    byte // default 1

	Directory *Directory
	Pipeline  Submitter // normally a *Pipeline
	// Profiles, when it can List, supplies the default Topics for every sensor profile.
	Profiles interface{ List() []profiles.Profile }

	Registerer prometheus.Registerer
	Logger     *slog.Logger

	client      paho.Client
	mConnected  prometheus.Gauge
	mReconnects prometheus.Counter
	filters     []string
	subscribed  atomic.Bool
}

// Initialize connects (retrying in the background if the broker is not up yet) and subscribes.
func (s *Subscriber) Initialize() error {
	if s.URL == "" || s.ClientID == "" || s.Pipeline == nil {
		return errors.New("ingest: Subscriber needs URL, ClientID and Pipeline")
	}
	if s.QoS == 0 {
		s.QoS = 1
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	s.filters = s.topics()
	if len(s.filters) == 0 {
		return errors.New("ingest: Subscriber has no topics to subscribe to")
	}
	s.mConnected = register(s.Registerer, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "offsite_mqtt_subscriber_connected", Help: "1 while the subscriber is connected to the external broker."}))
	s.mReconnects = register(s.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "offsite_mqtt_subscriber_connects_total", Help: "Connections (first and re-) of the subscriber to the external broker."}))

	opts := paho.NewClientOptions().AddBroker(s.URL).SetClientID(s.ClientID).
		SetUsername(s.Username).SetPassword(s.Password).
		SetCleanSession(false).SetResumeSubs(true).SetOrderMatters(false).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(10 * time.Second).SetKeepAlive(30 * time.Second).
		SetConnectTimeout(10 * time.Second).SetWriteTimeout(10 * time.Second)
	if strings.HasPrefix(s.URL, "ssl://") || strings.HasPrefix(s.URL, "mqtts://") || strings.HasPrefix(s.URL, "tls://") ||
		strings.HasPrefix(s.URL, "wss://") || s.TLS != nil {
		tc, err := s.tlsConfig()
		if err != nil {
			return err
		}
		opts.SetTLSConfig(tc)
	}
	opts.SetOnConnectHandler(func(c paho.Client) {
		s.mConnected.Set(1)
		s.mReconnects.Inc()
		s.subscribe(c)
	})
	opts.SetConnectionLostHandler(func(_ paho.Client, err error) {
		s.mConnected.Set(0)
		s.subscribed.Store(false)
		s.Logger.Warn("ingest: lost the MQTT broker; reconnecting", "url", s.URL, "err", err)
	})
	opts.SetDefaultPublishHandler(s.handle)
	s.client = paho.NewClient(opts)
	s.client.Connect() // with ConnectRetry it keeps trying in the background
	return nil
}

// Subscribed reports whether the subscriber is connected and its subscriptions acknowledged.
func (s *Subscriber) Subscribed() bool { return s.subscribed.Load() && s.client.IsConnectionOpen() }

// Close disconnects; the broker keeps the session.
func (s *Subscriber) Close() {
	if s.client != nil {
		s.client.Disconnect(1000)
	}
}

func (s *Subscriber) topics() []string {
	if len(s.Topics) > 0 {
		return s.shared(s.Topics)
	}
	seen := map[string]bool{}
	var out []string
	if s.Profiles != nil {
		for _, p := range s.Profiles.List() {
			if p.MQTT == nil {
				continue
			}
			for _, t := range []string{p.MQTT.Up, p.MQTT.Status} {
				if t != "" && !seen[TopicFilter(t)] {
					seen[TopicFilter(t)] = true
					out = append(out, TopicFilter(t))
				}
			}
		}
	}
	if s.Directory != nil {
		for _, f := range s.Directory.Filters() {
			if !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	sort.Strings(out)
	return s.shared(out)
}

func (s *Subscriber) shared(fs []string) []string {
	if s.SharedGroup == "" {
		return fs
	}
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = "$share/" + s.SharedGroup + "/" + f
	}
	return out
}

func (s *Subscriber) subscribe(c paho.Client) {
	m := make(map[string]byte, len(s.filters))
	for _, f := range s.filters {
		m[f] = s.QoS
	}
	// Never wait on the token here: this runs on the client's connect path.
	go func() {
		t := c.SubscribeMultiple(m, nil)
		if !t.WaitTimeout(30*time.Second) || t.Error() != nil {
			s.Logger.Error("ingest: MQTT subscribe failed", "url", s.URL, "filters", s.filters, "err", t.Error())
			return
		}
		s.subscribed.Store(true)
		s.Logger.Info("ingest: subscribed to the MQTT broker", "url", s.URL, "filters", s.filters)
	}()
}

func (s *Subscriber) handle(_ paho.Client, msg paho.Message) {
	s.Pipeline.Submit(Message{Topic: msg.Topic(), Payload: msg.Payload(), Received: time.Now()})
}

func (s *Subscriber) tlsConfig() (*tls.Config, error) {
	if s.TLS != nil {
		return s.TLS, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: s.InsecureSkipVerify} //nolint:gosec // opt-in for test brokers
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ingest: MQTT CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ingest: MQTT CA file %s holds no certificate", s.CAFile)
		}
		tc.RootCAs = pool
	}
	if s.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("ingest: MQTT client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
