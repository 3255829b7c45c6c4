#!/usr/bin/env bash
# Runs the Python client's checks: builds/reuses the venv, checks the generated stubs
# are current, type-checks the package, and runs pytest against the real sidecar
# binary ($RUNCORE_BIN, default <repo>/target/debug/runcore; build it with
# `cargo build`). Extra arguments go to pytest. Exits non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pkg="$(cd "$here/.." && pwd)"
repo="$(cd "$pkg/../.." && pwd)"
venv="$("$here/venv.sh" | tail -n 1)"
export RUNCORE_BIN="${RUNCORE_BIN:-$repo/target/debug/runcore}"
if [ ! -x "$RUNCORE_BIN" ]; then
  echo "test.sh: no sidecar binary at $RUNCORE_BIN; run 'cargo build' in $repo or set RUNCORE_BIN" >&2
  exit 1
fi

echo "== python client: generated stubs"
PYTHON="$venv/bin/python" "$here/check_proto.sh"
echo "== python client: mypy --strict"
(cd "$pkg" && "$venv/bin/python" -m mypy --no-error-summary)
echo "mypy: no issues"
echo "== python client: pytest (sidecar $RUNCORE_BIN)"
cd "$pkg"
exec "$venv/bin/python" -m pytest -ra "$@"
