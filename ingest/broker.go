package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/internal/connguard"
)

// Authenticator checks a device's broker login; devices.Store satisfies it.
type Authenticator interface {
	CheckMQTT(ctx context.Context, username, secret string) (devices.Device, error)
}

// Refusal reasons counted by offsite_mqtt_refused_total{reason}.
const (
	RefusedCredentials  = "bad_credentials"
	RefusedNotSensor    = "not_a_sensor"     // login fine, but no sensor profile with topics
	RefusedPublishACL   = "publish_denied"   // topic is not the device's own
	RefusedSubscribeACL = "subscribe_denied" //
	RefusedTooLarge     = "too_large"        // packet over MaxPacketSize: client disconnected
	RefusedInflight     = "inflight"         // more unacknowledged messages than MaxInflight
	RefusedRate         = "connect_rate"     // connection rate limit
	RefusedQueue        = "queue_full"       // ingest queue stayed full
	RefusedWill         = "will_denied"      // CONNECT with a will on a topic that is not the device's own status topic
	RefusedConnLimit    = "conn_limit"       // more open connections from one address than MaxConnsPerAddr
	RefusedIdle         = "handshake_idle"   // no CONNECT within HandshakeTimeout
	RefusedDeviceRate   = "rate_limited"     // a device publishing faster than RateMultiple × its normal rate
)

// Broker is the embedded MQTT broker (mochi-mqtt v2). Each device logs in with its own MQTT
// username and secret from the device store and may publish only on its own topics (those its
// profile's templates give for its site and id) — everything else is refused, counted by
// reason and logged with the username and address. Messages published by devices go to
// Pipeline before the broker acknowledges them (QoS 1), without any subscription in between.
// The gateway itself publishes through Publish with full rights.
type Broker struct {
	// Listen is the TCP address (default ":1883"; "-" disables plain TCP).
	Listen string
	// TLSListen and TLS enable MQTT over TLS (e.g. ":8883").
	TLSListen string
	TLS       *tls.Config

	Auth      Authenticator
	Directory *Directory
	// Pipeline receives every message a device publishes (normally a *Pipeline).
	Pipeline Submitter

	// MaxPacketSize bounds one MQTT packet (default 256 KiB + 1 KiB for the header): bigger
	// ones disconnect the client.
	MaxPacketSize uint32
	// MaxInflight bounds unacknowledged QoS 1/2 messages per client (receive maximum,
	// default 128).
	MaxInflight uint16
	// MaxClients bounds connected clients (default 10000).
	MaxClients int64
	// ConnectRate and ConnectBurst bound new connections per second, per remote IP
	// (default 5/s, burst 20) and overall (50× that).
	ConnectRate  float64
	ConnectBurst int
	// ServiceAccounts are non-device logins (a city platform reading events, a monitoring
	// tool), each limited to its own topic filters.
	ServiceAccounts []ServiceAccount
	// AuthCacheTTL is how long a successful login is remembered (default 5m): the secret hash
	// is deliberately slow, reconnect storms must not pay it each time.
	AuthCacheTTL time.Duration
	// HandshakeTimeout closes a connection that has not sent its CONNECT within it (default
	// 10s; <0: never).
	HandshakeTimeout time.Duration
	// MaxConnsPerAddr bounds open connections per remote IP, counted at accept (default 256;
	// <0: no bound). Many devices behind one NAT share an address: keep it well above a
	// site's device count.
	MaxConnsPerAddr int
	// RateMultiple bounds each device's messages to RateMultiple × its normal rate (one
	// message per its profile's interval, or DefaultInterval), with bursts of RateBurst
	// (default 200: a logger sending what it buffered offline). Messages beyond it are
	// acknowledged and dropped, counted per device (offsite_mqtt_rate_limited_total{device})
	// and reported through OnRateLimited. 0: no limit.
	RateMultiple    float64
	RateBurst       int
	DefaultInterval time.Duration // default 10s
	// OnRateLimited is told when a device's messages start being dropped, then at most every
	// RateReportEvery (default 10m) while it goes on, with the number dropped since.
	OnRateLimited   func(RateLimitReport)
	RateReportEvery time.Duration

	Registerer prometheus.Registerer
	Logger     *slog.Logger

	server   *mqtt.Server
	refused  *prometheus.CounterVec
	mu       sync.Mutex
	cache    map[string]authEntry
	perIP    map[string]*rate.Limiter
	global   *rate.Limiter
	lastLoad time.Time
	lastLog  map[string]time.Time
	closeOne sync.Once

	guards      []*connguard.Listener
	rateMu      sync.RWMutex
	rates       map[string]*deviceRate
	rateDropped *prometheus.CounterVec
	// closing is set before the server drops its clients: the wills it then sends are our
	// own stop, not the devices going away.
	closing atomic.Bool
}

// ServiceAccount is a broker login that is not a device.
type ServiceAccount struct {
	Username string
	Password string
	// Publish and Subscribe are MQTT filters (+ and # allowed) the account may use; nothing
	// else is allowed.
	Publish   []string
	Subscribe []string
}

type authEntry struct {
	sum     [32]byte
	device  string
	expires time.Time
}

// Initialize starts the listeners.
func (b *Broker) Initialize() error {
	if b.Auth == nil || b.Directory == nil || b.Pipeline == nil {
		return errors.New("ingest: Broker needs Auth, Directory and Pipeline")
	}
	if b.Listen == "" {
		b.Listen = ":1883"
	}
	if b.MaxPacketSize == 0 {
		b.MaxPacketSize = 257 << 10
	}
	if b.MaxInflight == 0 {
		b.MaxInflight = 128
	}
	if b.MaxClients == 0 {
		b.MaxClients = 10000
	}
	if b.ConnectRate <= 0 {
		b.ConnectRate = 5
	}
	if b.ConnectBurst <= 0 {
		b.ConnectBurst = 20
	}
	if b.AuthCacheTTL <= 0 {
		b.AuthCacheTTL = 5 * time.Minute
	}
	if b.Logger == nil {
		b.Logger = slog.Default()
	}
	if b.HandshakeTimeout == 0 {
		b.HandshakeTimeout = 10 * time.Second
	}
	if b.MaxConnsPerAddr == 0 {
		b.MaxConnsPerAddr = 256
	}
	if b.RateBurst <= 0 {
		b.RateBurst = 200
	}
	if b.DefaultInterval <= 0 {
		b.DefaultInterval = 10 * time.Second
	}
	if b.RateReportEvery <= 0 {
		b.RateReportEvery = 10 * time.Minute
	}
	b.rates = map[string]*deviceRate{}
	b.rateDropped = register(b.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "offsite_mqtt_rate_limited_total", Help: "Messages of a device dropped by the embedded broker because it published faster than its profile's normal rate allows.",
	}, []string{"device"}))
	b.refused = register(b.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "offsite_mqtt_refused_total", Help: "MQTT connections, publishes and subscriptions refused by the embedded broker, by reason.",
	}, []string{"reason"}))
	b.cache = map[string]authEntry{}
	b.perIP = map[string]*rate.Limiter{}
	b.global = rate.NewLimiter(rate.Limit(b.ConnectRate*50), b.ConnectBurst*50)

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = b.MaxPacketSize
	caps.ReceiveMaximum = b.MaxInflight
	caps.MaximumInflight = 1024
	caps.MaximumClients = b.MaxClients
	caps.MaximumClientWritesPending = 1024
	caps.MaximumSessionExpiryInterval = 24 * 3600
	b.server = mqtt.New(&mqtt.Options{
		InlineClient: true,
		Capabilities: caps,
		Logger:       newBrokerLog(b.Logger),
	})
	if err := b.server.AddHook(&brokerHook{b: b}, nil); err != nil {
		return err
	}
	if b.Listen != "-" {
		if err := b.listen("tcp", b.Listen, nil); err != nil {
			return fmt.Errorf("ingest: MQTT listen %s: %w", b.Listen, err)
		}
	}
	if b.TLSListen != "" {
		if b.TLS == nil {
			return errors.New("ingest: Broker.TLSListen needs TLS")
		}
		if err := b.listen("tls", b.TLSListen, b.TLS); err != nil {
			return fmt.Errorf("ingest: MQTT TLS listen %s: %w", b.TLSListen, err)
		}
	}
	if err := b.server.Serve(); err != nil {
		return fmt.Errorf("ingest: MQTT broker: %w", err)
	}
	return nil
}

// listen adds a listener guarded against idle connections and too many from one address.
func (b *Broker) listen(id, addr string, tc *tls.Config) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	g := &connguard.Listener{Listener: ln, PerAddr: max(b.MaxConnsPerAddr, 0), Handshake: max(b.HandshakeTimeout, 0),
		OnRefuse: func(remote, reason string) { b.refuseAddr(reason, remote) }}
	b.guards = append(b.guards, g)
	var l net.Listener = g
	if tc != nil {
		l = tls.NewListener(g, tc)
	}
	if err := b.server.AddListener(listeners.NewNet(id, l)); err != nil {
		_ = ln.Close()
		return err
	}
	return nil
}

// Close disconnects every client and stops the listeners.
func (b *Broker) Close() {
	b.closeOne.Do(func() {
		b.closing.Store(true)
		if b.server != nil {
			// A connection the guard closed may still be leaving the server's accept path;
			// order it before the shutdown that waits for all of them.
			for _, g := range b.guards {
				g.Sync()
			}
			_ = b.server.Close()
		}
	})
}

// Addr returns the address the plain TCP listener is bound to.
func (b *Broker) Addr() string {
	if l, ok := b.server.Listeners.Get("tcp"); ok {
		return l.Address()
	}
	return ""
}

// Publish sends a message as the gateway (full rights), e.g. events on offsite/events/{type}.
func (b *Broker) Publish(topic string, payload []byte, retain bool, qos byte) error {
	return b.server.Publish(topic, payload, retain, qos)
}

// Server gives access to the mochi server, e.g. for an inline subscription.
func (b *Broker) Server() *mqtt.Server { return b.server }

// Refused returns the refusals counted for reason (for tests).
func (b *Broker) Refused(reason string) float64 {
	return counterValue(b.refused.WithLabelValues(reason))
}

func (b *Broker) refuse(reason string, cl *mqtt.Client, args ...any) {
	b.refused.WithLabelValues(reason).Inc()
	// Every refusal is counted; the log gets at most one line per client and reason a second,
	// so a device stuck in a loop cannot flood it.
	key := reason + "\x00" + cl.ID + "\x00" + cl.Net.Remote
	now := time.Now()
	b.mu.Lock()
	if b.lastLog == nil || len(b.lastLog) > 10000 {
		b.lastLog = map[string]time.Time{}
	}
	last := b.lastLog[key]
	if now.Sub(last) < time.Second {
		b.mu.Unlock()
		return
	}
	b.lastLog[key] = now
	b.mu.Unlock()
	attrs := []any{"reason", reason, "username", string(cl.Properties.Username), "client_id", cl.ID, "remote", cl.Net.Remote}
	if s, ok := b.Directory.ByUsername(string(cl.Properties.Username)); ok {
		attrs = append(attrs, "device", s.ID, "site", s.Site)
	}
	b.Logger.Warn("ingest: MQTT refused", append(attrs, args...)...)
}

// refuseAddr counts and logs a connection the guard closed (no client yet).
func (b *Broker) refuseAddr(reason, remote string) {
	b.refused.WithLabelValues(reason).Inc()
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	key := reason + "\x00" + host
	now := time.Now()
	b.mu.Lock()
	if b.lastLog == nil || len(b.lastLog) > 10000 {
		b.lastLog = map[string]time.Time{}
	}
	if now.Sub(b.lastLog[key]) < time.Second {
		b.mu.Unlock()
		return
	}
	b.lastLog[key] = now
	b.mu.Unlock()
	b.Logger.Warn("ingest: MQTT connection closed", "reason", reason, "remote", remote,
		"handshake_timeout", b.HandshakeTimeout, "max_conns_per_addr", b.MaxConnsPerAddr)
}

func (b *Broker) allowConnect(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.perIP[host]
	if !ok {
		if len(b.perIP) > 100000 {
			clear(b.perIP)
		}
		l = rate.NewLimiter(rate.Limit(b.ConnectRate), b.ConnectBurst)
		b.perIP[host] = l
	}
	return l.Allow() && b.global.Allow()
}

func (b *Broker) authenticate(username string, secret []byte) (string, bool) {
	sum := sha256.Sum256(append([]byte(username+"\x00"), secret...))
	now := time.Now()
	b.mu.Lock()
	e, ok := b.cache[username]
	b.mu.Unlock()
	if ok && e.sum == sum && now.Before(e.expires) {
		return e.device, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := b.Auth.CheckMQTT(ctx, username, string(secret))
	if err != nil {
		return "", false
	}
	b.mu.Lock()
	if len(b.cache) > 100000 {
		clear(b.cache)
	}
	b.cache[username] = authEntry{sum: sum, device: d.ID, expires: now.Add(b.AuthCacheTTL)}
	b.mu.Unlock()
	return d.ID, true
}

// sensorOf returns the sensor a logged-in client is; a device created after the last reload
// triggers one reload (at most every 2 s).
func (b *Broker) sensorOf(username string) (*Sensor, bool) {
	if s, ok := b.Directory.ByUsername(username); ok {
		return s, true
	}
	b.mu.Lock()
	stale := time.Since(b.lastLoad) > 2*time.Second
	if stale {
		b.lastLoad = time.Now()
	}
	b.mu.Unlock()
	if stale {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Directory.Refresh(ctx); err != nil {
			b.Logger.Warn("ingest: reload devices", "err", err)
		}
	}
	return b.Directory.ByUsername(username)
}

type brokerHook struct {
	mqtt.HookBase
	b *Broker
}

func (h *brokerHook) ID() string { return "offsite-devices" }

func (h *brokerHook) Provides(x byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck,
		mqtt.OnPublish, mqtt.OnDisconnect, mqtt.OnWillSent}, []byte{x})
}

func (h *brokerHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	for _, g := range h.b.guards {
		g.Started(cl.Net.Remote)
	}
	if !h.b.allowConnect(cl.Net.Remote) {
		h.b.refuse(RefusedRate, cl)
		return packets.ErrConnectionRateExceeded
	}
	if pk.Connect.WillFlag && !h.b.willAllowed(string(pk.Connect.Username), pk.Connect.WillTopic) {
		// mochi publishes a will without asking OnACLCheck: a will on another device's status
		// topic, retained, would speak for that device once this connection drops.
		h.b.refuse(RefusedWill, cl, "topic", pk.Connect.WillTopic)
		_ = h.b.server.SendConnack(cl, packets.ErrNotAuthorized, false, nil)
		return packets.ErrNotAuthorized
	}
	return nil
}

// willAllowed says whether username may leave a will on topic: a device only on its own
// status topic, a service account within its publish filters. The login itself is checked
// after this; an unknown username's will is left to that check.
func (b *Broker) willAllowed(username, topic string) bool {
	if sa, ok := b.service(username); ok {
		for _, f := range sa.Publish {
			if FilterCovers(f, topic) {
				return true
			}
		}
		return false
	}
	s, ok := b.sensorOf(username)
	if !ok {
		return true
	}
	return s.Status != "" && topic == s.Status
}

func (b *Broker) service(username string) (*ServiceAccount, bool) {
	for i := range b.ServiceAccounts {
		if b.ServiceAccounts[i].Username == username {
			return &b.ServiceAccounts[i], true
		}
	}
	return nil, false
}

func (h *brokerHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	if sa, ok := h.b.service(user); ok {
		if subtle.ConstantTimeCompare([]byte(sa.Password), pk.Connect.Password) == 1 && sa.Password != "" {
			return true
		}
		h.b.refuse(RefusedCredentials, cl)
		return false
	}
	if _, ok := h.b.authenticate(user, pk.Connect.Password); !ok {
		h.b.refuse(RefusedCredentials, cl)
		return false
	}
	if _, ok := h.b.sensorOf(user); !ok {
		h.b.refuse(RefusedNotSensor, cl, "detail", "the device has no sensor profile with MQTT topics")
		return false
	}
	return true
}

func (h *brokerHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	user := string(cl.Properties.Username)
	if sa, ok := h.b.service(user); ok {
		allowed := sa.Subscribe
		if write {
			allowed = sa.Publish
		}
		for _, f := range allowed {
			if FilterCovers(f, topic) {
				return true
			}
		}
	} else if s, ok := h.b.Directory.ByUsername(user); ok && (topic == s.Up || topic == s.Status) {
		return true
	}
	if write {
		h.b.refuse(RefusedPublishACL, cl, "topic", topic)
	} else {
		h.b.refuse(RefusedSubscribeACL, cl, "topic", topic)
	}
	return false
}

func (h *brokerHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	if s, ok := h.b.Directory.ByUsername(string(cl.Properties.Username)); ok && !h.b.allowMessage(s) {
		h.b.refuse(RefusedDeviceRate, cl, "topic", pk.TopicName)
		// Acknowledged and dropped: the device does not resend it, subscribers never see it.
		return pk, packets.CodeSuccessIgnore
	}
	m := Message{Topic: pk.TopicName, Payload: append([]byte(nil), pk.Payload...), Received: time.Now(),
		Client: string(cl.Properties.Username), Remote: cl.Net.Remote}
	// Called on the client's own read loop before the PUBACK: waiting here slows only this
	// device, and the acknowledgement means the message is queued.
	if !h.b.Pipeline.Submit(m) {
		h.b.refuse(RefusedQueue, cl, "topic", pk.TopicName)
	}
	return pk, nil
}

// OnWillSent hands a device's will (its status topic saying "offline") to ingest: mochi sends
// wills without the OnPublish hook.
func (h *brokerHook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	if h.b.closing.Load() {
		return // the gateway is stopping and dropped the connection, the device did not vanish
	}
	h.b.Pipeline.Submit(Message{Topic: pk.TopicName, Payload: append([]byte(nil), pk.Payload...), Received: time.Now(),
		Client: string(cl.Properties.Username), Remote: cl.Net.Remote})
}

func (h *brokerHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	switch {
	case errors.Is(err, packets.ErrPacketTooLarge):
		h.b.refuse(RefusedTooLarge, cl, "limit", h.b.MaxPacketSize)
	case errors.Is(err, packets.ErrReceiveMaximum):
		h.b.refuse(RefusedInflight, cl, "limit", h.b.MaxInflight)
	}
}
