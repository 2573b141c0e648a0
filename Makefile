# Offsite — the two commands are `make demo` and `make test`.
GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: all build build-analytics build-arm64 demo test lint vet fmt clean bench bench-ingest bench-relay bench-events bench-analytics bench-centre bench-import bench-hj212 bench-cascade bench-clips

all: build

## build: the gateway binary (pure Go) into bin/offsite
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/offsite ./gateway

## build-analytics: the video analytics worker (cgo + OpenCV) into bin/offsite-analytics
build-analytics:
	CGO_ENABLED=1 $(GO) build -trimpath -o $(BIN)/offsite-analytics ./analytics/cmd/offsite-analytics

## build-arm64: the gateway for Kunpeng (linux/arm64) into bin/offsite-linux-arm64
build-arm64:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/offsite-linux-arm64 ./gateway

## demo: install what is missing, build, run the whole gateway in demo mode until Ctrl-C
demo:
	scripts/deps.sh demo
	$(MAKE) build build-analytics
	$(BIN)/offsite demo --data ./demo-data

## test: every check and test with real PostgreSQL (and the other services) on loopback
test:
	scripts/test.sh

## bench-*: benchmarks on loopback; each ends with BENCH lines (compare as ratios in one run)
bench: bench-ingest bench-relay bench-events bench-analytics bench-centre bench-import bench-hj212 bench-cascade bench-clips

bench-ingest:
	scripts/bench-ingest.sh

bench-hj212:
	scripts/bench-hj212.sh

bench-relay:
	scripts/bench-relay.sh

bench-cascade:
	scripts/bench-cascade.sh

bench-clips:
	scripts/bench-clips.sh

bench-events:
	scripts/bench-events.sh

bench-analytics:
	scripts/bench-analytics.sh

bench-centre:
	scripts/bench-centre.sh
bench-import:
	scripts/bench-import.sh

vet:
	$(GO) vet ./...

lint:
	scripts/deps.sh test
	$(BIN)/staticcheck ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN) artifacts
