#!/usr/bin/env bash
# make bench-ingest: sensor ingest end to end on loopback — K simulated devices publish QoS 1
# through the embedded broker and through Mosquitto into a real InfluxDB 1.8, with the ingest
# journal on as in the gateway; prints one BENCH line per broker (readings/s, p50/p99
# publish→stored, CPU, RSS, loss, ratio to a do-nothing consumer on the same broker: a counting
# subscriber on Mosquitto, a counting publish hook on the embedded broker — see
# gateway/cmd/bench-ingest). Bounded: about 2–3 minutes.
#
# Environment: DEVICES (default 40), DURATION of publishing per phase (default 10s: the drain
# after it counts against the pipeline, so short phases overweight it), ROUNDS (default 3),
# WINDOW unacknowledged publishes per device (default 64), BROKERS (default embedded,mosquitto),
# OFFSITE_TEST_INFLUXD (default bin/influxd, installed there if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

INFLUXD=${OFFSITE_TEST_INFLUXD:-bin/influxd}
if [ ! -x "$INFLUXD" ]; then
	echo "bench-ingest: installing influxd 1.8.10 into bin/ (about 2 minutes)" >&2
	GOBIN="$PWD/bin" go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10
	INFLUXD=bin/influxd
fi
if ! command -v mosquitto >/dev/null && [ -z "${BROKERS:-}" ]; then
	echo "bench-ingest: mosquitto not installed (apt-get install mosquitto); embedded broker only" >&2
	BROKERS=embedded
fi

go build -o bin/bench-ingest ./gateway/cmd/bench-ingest
timeout 600 bin/bench-ingest -influxd "$INFLUXD" \
	-devices "${DEVICES:-40}" -duration "${DURATION:-10s}" -rounds "${ROUNDS:-3}" -window "${WINDOW:-64}" \
	-brokers "${BROKERS:-embedded,mosquitto}"
