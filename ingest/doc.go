// Package ingest owns sensor data coming in: the MQTT subscriber (embedded broker or an
// external one), decoding payloads by firmware profile, validating readings against the
// profile, the quarantine for what fails, and the telemetry store (InfluxDB or SQLite).
// It does not evaluate rules (analytics/) or decide who must know (gateway/).
package ingest
