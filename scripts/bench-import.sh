#!/usr/bin/env bash
# make bench-import: one 20,000-row device CSV import through the API (generated MQTT secrets)
# on SQLite, and on PostgreSQL when OFFSITE_TEST_PG_DSN is set. Prints
# BENCH device_import backend=… rows=20000 seconds=… rows_per_s=…; the target is under 30 s.
set -euo pipefail
cd "$(dirname "$0")/.."
timeout 600 go test -run '^$' -bench 'DeviceImport20000' -benchtime 1x ./api/ | grep -E '^BENCH|^ok|FAIL'
