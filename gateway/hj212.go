package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/ingest"
)

// hj212Input is the gateway's side of HJ 212 (docs/contracts.md §8): the listener, and the
// device-health alarm a station's own fault flags raise.
type hj212Input struct {
	listener *ingest.HJ212Listener

	mu      sync.Mutex
	faulted map[string]bool // device → a D/B alarm is active
}

// startHJ212 opens the HJ 212 listener when ingest.hj212.listen is set. Uploads go into the
// same pipeline as MQTT.
func (s *sensors) startHJ212() error {
	s.hj212 = &hj212Input{faulted: map[string]bool{}}
	h := s.g.cfg.Ingest.HJ212
	if h.Listen == "" {
		return nil
	}
	s.hj212.listener = &ingest.HJ212Listener{Listen: h.Listen, Auth: s.g.devices, Directory: s.dir, Pipeline: s.pipeline,
		MaxConnections: h.MaxConnections, IdleTimeout: h.IdleTimeout, MaxFailures: h.MaxFailures, MaxDataLen: h.MaxDataBytes,
		MaxClockDrift: h.MaxClockDrift, CalibrateEvery: h.CalibrateEvery, ReadBuffer: h.ReadBufferKB << 10, Registerer: s.g.reg, Logger: s.g.log}
	if err := s.hj212.listener.Initialize(); err != nil {
		return fmt.Errorf("hj212: %w", err)
	}
	s.g.onStop("hj212 listener", func(context.Context) error { s.hj212.listener.Close(); return nil })
	return nil
}

// hj212Addr is the listener's address, "" when it is off.
func (s *sensors) hj212Addr() string {
	if s.hj212 == nil || s.hj212.listener == nil {
		return ""
	}
	return s.hj212.listener.Addr()
}

// flagNames are the HJ 212-2017 data flags in Chinese, for messages.
var flagNames = map[string]string{"F": "停运", "M": "维护", "S": "手工输入", "D": "仪器故障", "C": "校准", "T": "超测上限", "B": "通讯异常"}

// dataFlags raises device.fault (a maintainer's alarm) when a station flags values D or B, and
// clears it when an upload of that station carries neither. MQTT readings carry no flag and
// are skipped at once.
func (s *sensors) dataFlags(sensor *ingest.Sensor, rs []ingest.Reading) {
	if sensor.MN == "" || s.hj212 == nil {
		return
	}
	var faults []ingest.Reading
	for _, r := range rs {
		if r.Fault() {
			faults = append(faults, r)
		}
	}
	h := s.hj212
	h.mu.Lock()
	was := h.faulted[sensor.ID]
	h.faulted[sensor.ID] = len(faults) > 0
	h.mu.Unlock()
	e := event.Event{Type: event.TypeDeviceFault, Device: &event.Device{ID: sensor.ID}, AlarmKey: sensor.ID + "/hj212-fault",
		Rule: "hj212-fault", OccurredAt: rs[0].Time}
	switch {
	case len(faults) > 0 && !was:
		var parts []string
		for _, r := range faults {
			label := r.Metric
			if m, ok := sensor.Profile.Metric(r.Metric); ok && m.Label != "" {
				label = m.Label
			}
			parts = append(parts, fmt.Sprintf("%s %g %s（%s %s）", label, r.Value, r.Unit, r.Flag, flagNames[r.Flag]))
		}
		f := faults[0]
		e.Severity, e.State = "major", "active"
		e.Reading = &event.Reading{Metric: f.Metric, Value: f.Value, Unit: f.Unit}
		e.Message = "在线监测站数采仪报告设备故障：" + strings.Join(parts, "、") + "。该数据不参与超标判定，请运维人员尽快检修仪器或通讯链路。"
	case len(faults) == 0 && was:
		e.Severity, e.State = "info", "cleared"
		e.Message = "在线监测站恢复正常数据（无 D/B 标记），设备故障告警解除"
	default:
		return
	}
	if e.OccurredAt.IsZero() {
		e.OccurredAt = time.Now()
	}
	s.g.raise(e)
}
