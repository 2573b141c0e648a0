package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/offsite-gw/offsite/analytics/rules"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/ingest"
	"github.com/offsite-gw/offsite/ingest/decode"
)

// telemetryStore is what the gateway needs of a telemetry backend: a sink for the pipeline and
// the reads behind the API.
type telemetryStore interface {
	ingest.Sink
	ingest.Telemetry
	Initialize() error
	Close()
}

// sensors is the gateway's side of ingest/ and analytics/rules: MQTT in, decoding, telemetry,
// presence and rules, and the events they raise.
type sensors struct {
	g          *gateway
	dir        *ingest.Directory
	quarantine *ingest.Quarantine
	telemetry  telemetryStore
	presence   *ingest.Presence
	pipeline   *ingest.Pipeline
	broker     *ingest.Broker
	subscriber *ingest.Subscriber
	hj212      *hj212Input
	rules      *rules.Engine
}

func (g *gateway) openSensors(ctx context.Context) error {
	ic := g.cfg.Ingest
	s := &sensors{g: g}
	g.sensors = s
	lg := g.log.With("component", "ingest")

	s.rules = &rules.Engine{DB: g.db, Profiles: g.profiles, Devices: g.devices,
		Emit: func(ctx context.Context, evs []event.Event) error {
			for i := range evs {
				g.enrich(ctx, &evs[i])
			}
			_, err := g.events.Append(ctx, evs...)
			return err
		},
		Schedules: g.cfg.Rules.Schedules, Holidays: g.cfg.Rules.Holidays, Overrides: g.cfg.Rules.Overrides,
		Cooldown: g.cfg.Rules.Cooldown.Std(), Logger: g.log.With("component", "rules"), Registerer: g.reg}
	if err := s.rules.Initialize(); err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	g.goBackground(s.rules.Run)
	g.onStop("rules", func(context.Context) error { return s.rules.Close() })

	s.dir = &ingest.Directory{Devices: g.devices, Profiles: g.profiles, RefreshInterval: 10 * time.Second, MaxPayload: int(ic.Broker.MaxPacketBytes), Logger: lg}
	if err := s.dir.Initialize(); err != nil {
		return err
	}
	g.onStop("ingest directory", func(context.Context) error { s.dir.Close(); return nil })
	s.quarantine = &ingest.Quarantine{DB: g.db, MaxPayload: ic.Quarantine.MaxPayloadBytes, MaxRows: ic.Quarantine.MaxRows, Registerer: g.reg, Logger: lg}
	if err := s.quarantine.Initialize(); err != nil {
		return err
	}
	g.onStop("quarantine", func(context.Context) error { s.quarantine.Close(); return nil })

	onDrop := func(n, total int64, reason string) {
		g.raise(event.Event{Type: "telemetry.dropped", Severity: "major", OccurredAt: time.Now(),
			Message: fmt.Sprintf("遥测数据存储积压超出上限，已丢弃 %d 条读数（累计 %d 条）：%s。请检查 InfluxDB 与磁盘空间。", n, total, reason)})
	}
	switch ic.Telemetry.Backend {
	case "influx":
		ix := ic.Telemetry.Influx
		spool := ix.SpoolDir
		if spool == "" {
			spool = filepath.Join(g.cfg.DataDir, "influx-spool")
		}
		s.telemetry = &ingest.InfluxStore{URL: ix.URL, Org: ix.Org, Bucket: ix.Bucket, Token: ix.Token, BatchSize: ix.BatchSize,
			FlushInterval: ix.FlushInterval, MaxPending: ix.MaxPending, SpoolDir: spool, SpoolMaxBytes: ix.SpoolMaxBytes,
			RetryInterval: ix.RetryInterval, Describe: s.dir.Describe, OnDrop: onDrop, Registerer: g.reg, Logger: lg}
	default:
		path := ic.Telemetry.SQLite.Path
		if path == "" {
			path = filepath.Join(g.cfg.DataDir, "telemetry.db")
		}
		s.telemetry = &ingest.SQLiteTelemetry{Path: path, Retention: ic.Telemetry.SQLite.Retention, CacheMiB: ic.Telemetry.SQLite.CacheMB, OnDrop: onDrop, Registerer: g.reg, Logger: lg}
	}
	if err := s.telemetry.Initialize(); err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	g.onStop("telemetry", func(context.Context) error { s.telemetry.Close(); return nil })

	s.presence = &ingest.Presence{Directory: s.dir, DB: g.db, Factor: ic.Presence.Factor, DefaultHeartbeat: ic.Presence.DefaultHeartbeat,
		OnChange: s.onPresence, Logger: lg}
	if err := s.presence.Initialize(); err != nil {
		return err
	}
	g.onStop("presence", func(context.Context) error { s.presence.Close(); return nil })

	s.pipeline = &ingest.Pipeline{Directory: s.dir, Sink: s.telemetry, Quarantine: s.quarantine, Presence: s.presence,
		OnReadings: s.onReadings, QueueSize: ic.QueueSize, Workers: ic.Workers, EnqueueTimeout: ic.EnqueueTimeout,
		MaxFutureSkew: ic.MaxFutureSkew, MaxAge: ic.MaxAge, Registerer: g.reg, Logger: lg,
		// Acknowledged messages survive kill -9: journaled before the PUBACK, replayed on start.
		Journal: &ingest.Journal{Dir: filepath.Join(g.cfg.DataDir, "ingest-journal")}}
	if err := s.pipeline.Initialize(); err != nil {
		return err
	}
	// Closing the pipeline drains its queue into the telemetry store, which closes after it.
	g.onStop("ingest pipeline", func(context.Context) error { s.pipeline.Close(); return nil })
	return nil
}

// startInput opens the MQTT side (an input: opened last, closed first).
func (s *sensors) startInput() error {
	if err := s.startHJ212(); err != nil {
		return err
	}
	ic := s.g.cfg.Ingest
	lg := s.g.log // the broker and the subscriber name their component themselves
	if ic.External.URL != "" {
		ex := ic.External
		s.subscriber = &ingest.Subscriber{URL: ex.URL, ClientID: ex.ClientID, Username: ex.Username, Password: ex.Password,
			CAFile: ex.CAFile, CertFile: ex.CertFile, KeyFile: ex.KeyFile, InsecureSkipVerify: ex.InsecureSkipVerify,
			SharedGroup: ex.SharedGroup, Topics: ex.Topics, QoS: 1, Directory: s.dir, Pipeline: s.pipeline, Profiles: s.g.profiles,
			Registerer: s.g.reg, Logger: lg}
		if err := s.subscriber.Initialize(); err != nil {
			return fmt.Errorf("mqtt: %w", err)
		}
		s.g.onStop("mqtt subscriber", func(context.Context) error { s.subscriber.Close(); return nil })
		return nil
	}
	b := ic.Broker
	var accounts []ingest.ServiceAccount
	for _, a := range b.ServiceAccounts {
		accounts = append(accounts, ingest.ServiceAccount{Username: a.Username, Password: a.Password, Publish: a.Publish, Subscribe: a.Subscribe})
	}
	s.broker = &ingest.Broker{Listen: b.Listen, Auth: s.g.devices, Directory: s.dir, Pipeline: s.pipeline,
		MaxPacketSize: uint32(b.MaxPacketBytes), MaxInflight: uint16(b.MaxInflight), MaxClients: int64(b.MaxClients),
		ConnectRate: b.ConnectRate, ConnectBurst: b.ConnectBurst, AuthCacheTTL: b.AuthCache, ServiceAccounts: accounts,
		HandshakeTimeout: orOff(b.HandshakeTimeout), MaxConnsPerAddr: orOff(b.MaxConnsPerAddr),
		RateMultiple: b.RateLimit.Multiple, RateBurst: b.RateLimit.Burst, DefaultInterval: b.RateLimit.DefaultInterval,
		OnRateLimited: s.onRateLimited, Registerer: s.g.reg, Logger: lg}
	if err := s.broker.Initialize(); err != nil {
		return fmt.Errorf("mqtt broker: %w", err)
	}
	s.g.onStop("mqtt broker", func(context.Context) error { s.broker.Close(); return nil })
	if ic.PublishEvents {
		s.g.goBackground(s.publishEvents)
	}
	return nil
}

// onReadings hands stored readings to the rules engine (in memory, fast, never blocks long).
func (s *sensors) onReadings(sensor *ingest.Sensor, rs []ingest.Reading) {
	if len(rs) == 0 {
		return
	}
	s.dataFlags(sensor, rs)
	batch := make([]decode.Reading, 0, len(rs))
	at := rs[0].Time
	for _, r := range rs {
		if !r.Normal() {
			continue // HJ 212 values flagged F M S D C T B are stored, not judged against limits
		}
		if !r.Time.Equal(at) {
			s.rules.Observe(context.Background(), sensor.ID, batch, at)
			batch, at = batch[:0], r.Time
		}
		batch = append(batch, decode.Reading{Metric: r.Metric, Value: r.Value, Unit: r.Unit})
	}
	s.rules.Observe(context.Background(), sensor.ID, batch, at)
}

// onRateLimited tells maintainers that a device publishes far more than its profile says.
func (s *sensors) onRateLimited(r ingest.RateLimitReport) {
	s.g.raise(event.Event{Type: "device.rate_limited", Severity: "minor", OccurredAt: time.Now(),
		Device: &event.Device{ID: r.Device}, Rule: "rate_limit",
		Message: fmt.Sprintf("设备上报过于频繁，已丢弃 %d 条消息（累计 %d 条）：正常每 %s 一条，允许每分钟 %.0f 条。请检查设备的上报周期配置或固件。",
			r.Dropped, r.Total, r.Interval, r.Limit*60)})
}

// RateLimited lists the devices the embedded broker dropped messages of for their rate (none
// with an external broker).
func (s *sensors) RateLimited() []ingest.RateLimitStat {
	if s.broker == nil {
		return []ingest.RateLimitStat{}
	}
	return s.broker.RateLimited()
}

// orOff maps the configuration's 0 ("no bound") to a component's negative "off" (its 0
// means its default).
func orOff[T int | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

// onPresence turns a sensor going silent or coming back into device.offline / device.online.
// With several centre instances only the holder of the presence lease reports them.
func (s *sensors) onPresence(c ingest.PresenceChange) {
	if !s.g.leases.Held(leasePresence) {
		return
	}
	e := event.Event{Device: &event.Device{ID: c.Device}, AlarmKey: c.Device + "/presence", Rule: "presence", OccurredAt: c.At}
	if c.Online {
		e.Type, e.Severity, e.State, e.Message = "device.online", "info", "cleared", "设备恢复在线"
	} else {
		e.Type, e.Severity, e.State = "device.offline", "minor", "active"
		e.Message, e.Detail = "设备离线："+ingest.ExplainPresence(c.Reason), c.Reason
		if !c.LastSeen.IsZero() {
			e.Message += "，最后上报 " + c.LastSeen.In(time.FixedZone("CST", 8*3600)).Format("2006-01-02 15:04:05")
		}
	}
	s.g.raise(e)
}

// publishEvents publishes every event logged from now on to offsite/events/{type} (QoS 1).
func (s *sensors) publishEvents(ctx context.Context) {
	head, _ := s.g.events.Head()
	for e := range s.g.feed.Subscribe(ctx, head, nil) {
		if err := s.broker.Publish("offsite/events/"+e.Type, e.Raw, false, 1); err != nil && ctx.Err() == nil {
			s.g.log.Warn("event not published over MQTT", "event_id", e.ID, "type", e.Type, "err", err)
		}
	}
}
