#!/usr/bin/env bash
# The linux/arm64 gateway, run, not only built: under qemu user-mode emulation (Debian's
# qemu-user-static, installed by scripts/deps.sh test) on two CPU models,
#   neoverse-n1  ARMv8.2 like the Kunpeng 920, without the SM3/SM4 instructions;
#   max          everything qemu emulates, SM3/SM4 included (gmsm's path for them used to
#                crash the gateway at start with SIGILL, see docs/arm64.md).
# For each: the SM4 sealer's tests (devices, cross-compiled), then `offsite demo` started by
# gateway/arm64smoke: admin login, the 20 devices, an MQTT reading stored and served, an event
# delivered to a province receiver on the host with an HMAC-SM3 signature checked there, every
# camera opening its SM4-sealed RTSP password, a clean stop on SIGTERM. Loopback only; it starts
# and stops its own processes. Exits non-zero on any failure.
#   scripts/arm64-smoke.sh [path/to/offsite-linux-arm64]   (built here when not given)
#   OFFSITE_ARM64_CPUS="neoverse-n1 max cortex-a72" scripts/arm64-smoke.sh
#   OFFSITE_QEMU=none scripts/arm64-smoke.sh     (on an arm64 machine: natively, no emulation)
set -euo pipefail
cd "$(dirname "$0")/.."
cpus=${OFFSITE_ARM64_CPUS:-neoverse-n1 max}
qemu=${OFFSITE_QEMU:-qemu-aarch64-static}
goarch=arm64
if [ "$qemu" = none ]; then
  # On an arm64 machine (a Kunpeng): no emulation, the binary for this machine.
  cpus=native
  goarch=$(go env GOARCH)
else
  if ! command -v "$qemu" >/dev/null 2>&1; then
    echo "arm64-smoke: $qemu not found (Debian: apt-get install qemu-user-static; scripts/deps.sh test does it)" >&2
    exit 1
  fi
  "$qemu" --version | head -1
fi

work=$(mktemp -d /tmp/offsite-arm64.XXXXXX)
trap 'rm -rf "$work"' EXIT
bin=${1:-}
if [ -z "$bin" ]; then
  bin="$work/offsite-linux-$goarch"
  CGO_ENABLED=0 GOOS=linux GOARCH=$goarch go build -trimpath -o "$bin" ./gateway
fi
bin=$(realpath "$bin")

CGO_ENABLED=0 GOOS=linux GOARCH=$goarch go test -c -o "$work/devices.test" ./devices
for cpu in $cpus; do
  echo "--- devices (SM4 sealer) on $cpu"
  cmd=("$work/devices.test")
  [ "$qemu" = none ] || cmd=("$qemu" -cpu "$cpu" "${cmd[@]}")
  if ! timeout 120 "${cmd[@]}" -test.run 'Seal' -test.count=1 -test.v >"$work/devices-$cpu.log" 2>&1; then
    tail -40 "$work/devices-$cpu.log"
    echo "arm64-smoke: the devices tests failed on $cpu" >&2
    exit 1
  fi
  grep -E '^(--- |ok|PASS)' "$work/devices-$cpu.log"
done

echo "--- offsite demo on: $cpus"
OFFSITE_ARM64_BINARY="$bin" OFFSITE_QEMU="$qemu" OFFSITE_ARM64_CPUS="$cpus" \
  go test -count=1 -timeout 6m -run 'TestDemoUnderEmulation' -v ./gateway/arm64smoke/
