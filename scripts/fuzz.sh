#!/usr/bin/env bash
# Runs every Go fuzz target of the repository (func FuzzXxx in a _test.go file) for a short
# time each, two at a time with one fuzzing worker each, so that `make test` exercises every
# parser of outside input beyond its seed corpus. Fails when any target finds a failure; the
# failing input is written to that package's testdata/fuzz/FuzzXxx/ (commit it as a seed).
#
#   FUZZTIME   time per target (default 5s)
#   FUZZJOBS   targets run at once (default 2)
#   FUZZ_ONLY  a regexp of target names to run (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-5s}
jobs=${FUZZJOBS:-2}
only=${FUZZ_ONLY:-.}
start=$(date +%s)

# Every "dir target" pair, found in the test files of each package directory (not vendored
# or generated code: the repository's own packages only).
list=$(mktemp)
trap 'rm -f "$list"' EXIT
for dir in $(go list -f '{{.Dir}}' ./...); do
  rel=./${dir#"$PWD"/}
  { grep -ho '^func Fuzz[A-Za-z0-9_]*(' "$dir"/*_test.go 2>/dev/null || true; } | sed 's/^func //; s/($//' | sort -u |
    while read -r name; do
      if [[ $name =~ $only ]]; then echo "$rel $name"; fi
    done
done >"$list"
n=$(wc -l <"$list")
echo "fuzz: $n targets, ${fuzztime} each, ${jobs} at a time"

run_one() {
  local pkg=$1 name=$2 out t=$FUZZTIME_ONE
  for try in 1 2; do
    if out=$(go test -run='^$' -fuzz="^${name}\$" -fuzztime="$t" -parallel=1 "$pkg" 2>&1); then
      echo "ok   $pkg $name"
      return 0
    fi
    # On a busy machine the fuzz time can run out while the engine still gathers the seed
    # corpus's coverage; Go then fails with "context deadline exceeded" and no failing input.
    # That is no finding: try once more with twice the time. A real failure names its input.
    if [[ $try == 1 && $out == *"context deadline exceeded"* && $out != *"Failing input written"* ]]; then
      echo "slow $pkg $name: the time ran out before fuzzing began; once more with twice the time"
      if [[ $t =~ ^[0-9]+s$ ]]; then t=$(( ${t%s} * 2 ))s; fi
      continue
    fi
    break
  done
  echo "FAIL $pkg $name"
  echo "$out" | grep -v '^fuzz: elapsed' | sed 's/^/     /'
  return 1
}
export -f run_one
export FUZZTIME_ONE=$fuzztime
status=0
xargs -P "$jobs" -L 1 bash -c 'run_one "$0" "$1"' <"$list" || status=1
echo "fuzz: $n targets in $(( $(date +%s) - start ))s"
exit $status
