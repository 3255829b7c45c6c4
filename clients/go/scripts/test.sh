#!/usr/bin/env bash
# The Go client's checks, the one command CI runs for Go: builds the sidecar when
# needed (cargo build --bin runcore, unless $RUNCORE_BIN names a binary), checks that
# the committed stubs match proto/, then go vet, gofmt, and go test ./... (with the
# race detector; RUNCORE_GO_RACE=0 turns it off) against the real sidecar, runs
# each benchmark briefly to show it still works, and runs the examples. Extra
# arguments go to go test.
# Exits non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod="$(cd "$here/.." && pwd)"
repo="$(cd "$mod/../.." && pwd)"

if [ -n "${RUNCORE_BIN:-}" ]; then
  echo "== go client: sidecar from RUNCORE_BIN=$RUNCORE_BIN"
else
  echo "== go client: cargo build --bin runcore"
  (cd "$repo" && cargo build --quiet --bin runcore)
  export RUNCORE_BIN="$repo/target/debug/runcore"
fi
if [ ! -x "$RUNCORE_BIN" ]; then
  echo "test.sh: no sidecar binary at $RUNCORE_BIN" >&2
  exit 1
fi

echo "== go client: generated stubs"
"$here/check-gen.sh"

cd "$mod"
echo "== go client: go vet"
go vet ./...
echo "go vet: no issues"

echo "== go client: gofmt"
unformatted="$(gofmt -l .)"
if [ -n "$unformatted" ]; then
  echo "gofmt: these files need gofmt -w:" >&2
  echo "$unformatted" >&2
  exit 1
fi
echo "gofmt: all files formatted"

race=(-race)
if [ "${RUNCORE_GO_RACE:-1}" = "0" ]; then race=(); fi
echo "== go client: go test ${race[*]} ./... (sidecar $RUNCORE_BIN)"
go test -count=1 "${race[@]}" "$@" ./...

echo "== go client: benchmarks, 2000 rows each (a smoke run; README.md has real numbers)"
go test -count=1 -run '^$' -bench . -benchtime 2000x .

echo "== go client: the examples, on a sidecar they spawn"
data="$(mktemp -d)"
trap 'rm -rf "$data"' EXIT
for example in quickstart train; do
  echo "-- examples/$example"
  env -u RUNCORE_ADDRESS RUNCORE_DATA_DIR="$data" go run "./examples/$example"
done
