#!/usr/bin/env bash
# The W&B SDK matrix: the real `wandb` from PyPI, one cached venv per release
# (.cache/wandb/venv-VERSION, made by tests/wandb/venv.sh), each running
# tests/wandb/test_wandb_sdk.py against the real sidecar (its W&B listener):
#
#   RUNCORE_BIN=target/debug/runcore bash tests/wandb/run.sh
#   WANDB_VERSIONS="0.31.0" bash tests/wandb/run.sh      # a subset
#   bash tests/wandb/run.sh --setup-only                 # only make the venvs (scripts/test.sh
#                                                        # does it in the background, early)
#
# runcore's own Python client (for the same-results comparison) comes from
# clients/python/scripts/venv.sh (RUNCORE_VENV moves it). wandb-core's own offline
# log is read with the 0.21 release's reader. Nothing reaches the network: the SDK
# runs offline, or online pointed at a closed local port.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
versions="${WANDB_VERSIONS:-0.21.4 0.25.1 0.31.0}"
reader_version=0.21.4
if [ "${1:-}" = "--setup-only" ]; then
  for v in $reader_version $versions; do bash "$repo/tests/wandb/venv.sh" "$v" >/dev/null; done
  exit 0
fi
bin="${RUNCORE_BIN:-${CARGO_TARGET_DIR:-$repo/target}/debug/runcore}"
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
[ -x "$bin" ] || { echo "tests/wandb/run.sh: no sidecar binary at $bin (cargo build --bin runcore, or set RUNCORE_BIN)" >&2; exit 2; }

rc_venv="$(bash "$repo/clients/python/scripts/venv.sh" | tail -n 1)"
reader="$(bash "$repo/tests/wandb/venv.sh" "$reader_version" | tail -n 1)/bin/python"
failed=()
for v in $versions; do
  venv="$(bash "$repo/tests/wandb/venv.sh" "$v" | tail -n 1)"
  echo "==> wandb $v"
  # The suite's own waits have deadlines; this one bounds the whole release.
  if ! (cd "$repo/tests/wandb" && WANDB_VERSION="$v" RUNCORE_BIN="$bin" RUNCORE_PYTHON="$rc_venv/bin/python" \
      WANDB_READER_PYTHON="$reader" timeout 900 "$venv/bin/python" -m pytest -q -p no:cacheprovider \
      test_wandb_sdk.py); then
    failed+=("$v")
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "tests/wandb: FAILED for wandb ${failed[*]}" >&2
  exit 1
fi
echo "tests/wandb: every release passed ($versions)"
