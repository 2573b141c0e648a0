package ingest

import (
	"context"
	"time"
)

// Quality says how far a reading's timestamp can be trusted.
type Quality string

const (
	// QualityGood: the device sent its own time and it is close to the receive time.
	QualityGood Quality = "good"
	// QualityLate: the device time is older than MaxSkew but within MaxAge — a logger that
	// buffered readings while out of coverage and sent them later.
	QualityLate Quality = "late"
	// QualityReceiveTime: the payload carried no device time; Time is the receive time.
	QualityReceiveTime Quality = "receive_time"
)

// Reading is one decoded, validated value of one device.
type Reading struct {
	Device  string  `json:"device"`
	Site    string  `json:"site"`
	Metric  string  `json:"metric"`
	Value   float64 `json:"value"`
	Unit    string  `json:"unit"`
	Quality Quality `json:"quality"`
	// Flag is the data flag an HJ 212 station sent with the value (N normal; F stopped,
	// M maintenance, S manual, D fault, C calibration, T over range, B communication fault),
	// "" for MQTT readings. Only "" and N are normal readings that rules see.
	Flag string `json:"flag,omitempty"`
	// Time is the device time when the payload had a usable one, else ReceiveTime. It is the
	// timestamp the telemetry store keeps.
	Time        time.Time `json:"time"`
	DeviceTime  time.Time `json:"device_time,omitzero"`
	ReceiveTime time.Time `json:"receive_time"`
}

// Normal reports whether r is a normal reading, one rules check against limits: MQTT readings
// and HJ 212 values flagged N. Values flagged F M S D C T B are stored but not judged.
func (r Reading) Normal() bool { return r.Flag == "" || r.Flag == "N" }

// Fault reports whether the station flagged r as a fault of its own (D instrument fault,
// B communication fault): a maintainer's matter.
func (r Reading) Fault() bool { return r.Flag == "D" || r.Flag == "B" }

// Message is one MQTT publish as it arrived, before decoding.
type Message struct {
	Topic    string
	Payload  []byte
	Received time.Time
	// Client is the authenticated MQTT username when the embedded broker received the message,
	// "" for an external broker (whose own ACL vouches for the topic).
	Client string
	Remote string

	seg *segment // the journal segment holding it, if journaled
}

// Submitter takes raw MQTT messages; *Pipeline is the one that matters. Submit may wait for
// room but must not wait on a database.
type Submitter interface {
	Submit(m Message) bool
}

// Sink takes decoded readings. Write must not block on a slow database: implementations
// buffer, spool or count, never stall the caller. rs is only lent for the call (the pipeline
// reuses it for the next message): keep copies, not the slice.
type Sink interface {
	Write(rs []Reading)
}

// SeriesQuery asks for one metric of one device, aggregated in steps.
type SeriesQuery struct {
	Device string
	Metric string
	From   time.Time
	To     time.Time
	Step   time.Duration
}

// Point is one step of a series: the aggregate of the readings in [Time, Time+Step).
type Point struct {
	Time  time.Time `json:"time"`
	Mean  float64   `json:"mean"`
	Min   float64   `json:"min"`
	Max   float64   `json:"max"`
	Count int64     `json:"count"`
	// Flags are the HJ 212 data flags other than N among the step's readings, e.g. "M" for a
	// step in a maintenance period or "CM" (SQLite telemetry only; "" otherwise).
	Flags string `json:"flags,omitempty"`
}

// Telemetry is a store of readings: InfluxStore or SQLiteTelemetry.
type Telemetry interface {
	Sink
	// Latest returns the newest reading of each metric of device.
	Latest(ctx context.Context, device string) ([]Reading, error)
	// Series returns the steps of q that have readings, oldest first.
	Series(ctx context.Context, q SeriesQuery) ([]Point, error)
	// Flush waits until what Write accepted before the call is stored or spooled.
	Flush(ctx context.Context) error
	Close()
}
