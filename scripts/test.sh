#!/usr/bin/env bash
# make test: install what is missing, start the services the tests need on loopback, run every
# check and test, stop the services. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { echo; echo "=== $* ($(( $(date +%s) - start ))s)"; }

step "dependencies"
scripts/deps.sh test

testenv=$(mktemp -d /tmp/offsite-test.XXXXXX)
chmod 755 "$testenv"
cleanup() {
  step "stopping services"
  scripts/pg.sh stop "$testenv/pg" || true
  rm -rf "$testenv"
}
trap cleanup EXIT

free_port() { python3 - <<'PY' 2>/dev/null || echo $(( 20000 + RANDOM % 20000 ))
import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])
PY
}

step "starting PostgreSQL"
OFFSITE_TEST_PG_DSN=$(scripts/pg.sh start "$testenv/pg" "$(free_port)")
export OFFSITE_TEST_PG_DSN
export OFFSITE_TEST_DIR="$testenv"
export OFFSITE_TEST_ARTIFACTS="${OFFSITE_TEST_ARTIFACTS:-$PWD/artifacts}"
mkdir -p "$OFFSITE_TEST_ARTIFACTS"

step "gofmt"
bad=$(gofmt -l $(git ls-files '*.go') 2>/dev/null || true)
if [ -n "$bad" ]; then echo "not gofmt-formatted:"; echo "$bad"; exit 1; fi

step "floor plan"
scripts/check-floors.sh

step "go vet"
go vet ./...

step "staticcheck"
bin/staticcheck ./...

step "pure-Go builds of the gateway (linux/amd64, linux/arm64)"
CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -o "$testenv/offsite-amd64" ./gateway
CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -o "$testenv/offsite-arm64" ./gateway
file "$testenv/offsite-arm64" 2>/dev/null || true

step "arm64 gateway under qemu emulation (neoverse-n1, max)"
scripts/arm64-smoke.sh "$testenv/offsite-arm64"

step "go test -race"
go test -race -count=1 -timeout 20m ./...

step "fuzz: every target for ${FUZZTIME:-3s}"
FUZZTIME=${FUZZTIME:-3s} scripts/fuzz.sh

step "done in $(( $(date +%s) - start ))s"
