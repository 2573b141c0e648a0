#!/usr/bin/env bash
# Build the reproducer for linux/arm64 with a gmsm version and run it under qemu user-mode
# emulation on CPU models with and without the SM4 instructions; then show what the four
# bytes gmsm meant as SM4EKEY decode to.
#   scripts/repro/sm4-sigill/run.sh [gmsm-version]    (default v0.15.5, the one that crashed)
# Needs Go and qemu-aarch64-static; fetches the gmsm version from the Go module proxy if it is
# not in the module cache. Exits 0 either way: the output is the finding.
set -uo pipefail
version=${1:-v0.15.5}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/sm4-sigill.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp "$here/main.go" "$here/go.mod" "$here/go.sum" "$work/"
cd "$work"
go get "github.com/emmansun/gmsm@$version" >/dev/null 2>&1 || { echo "cannot fetch gmsm $version" >&2; exit 1; }
CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -o repro . || exit 1
qemu-aarch64-static --version | head -1
echo "gmsm $version"
for cpu in max neoverse-n1 cortex-a72; do
  echo "== qemu-aarch64-static -cpu $cpu"
  qemu-aarch64-static -cpu "$cpu" ./repro 2>&1 | head -8
done
echo "== the same binary on max with the SM4 instructions left unused (GODEBUG=cpu.sm4=off)"
GODEBUG=cpu.sm4=off qemu-aarch64-static -cpu max ./repro 2>&1 | head -3
echo "== sm4.expandKeyAsm, the SM4EKEY lines, as the Go disassembler reads them"
go tool objdump -s 'sm4.expandKeyAsm' repro | grep -iE 'SM4EKEY|\?|LDPW' | head -4
echo "== did qemu execute the word at the first SM4EKEY line? (qemu -d in_asm, -cpu max)"
addr=$(go tool objdump -s 'sm4.expandKeyAsm' repro | awk '$3 == "ce60c928" || $3 == "28c960ce" {print $2; exit}')
addr=$(printf '0x%08x' "$addr")
qemu-aarch64-static -d in_asm -D "$work/in_asm.log" -cpu max ./repro >/dev/null 2>&1
grep -i -m1 "^${addr}:" "$work/in_asm.log" || echo "$addr not translated"
