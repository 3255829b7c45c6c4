#!/usr/bin/env bash
# The whole test suite: formatting, lints, the Rust tests, the cross-language
# conformance suite (tests/), the W&B SDK matrix (tests/wandb), the Python and Go
# clients' tests, the web UI in a browser (tests/ui; installs Debian's chromium when
# missing and run as root).
# Installs what the tests need on first use (MLflow and the Python client's
# packages, each in a cached, git-ignored venv).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"

# Installing what the later suites need (MLflow, the wandb releases, the conformance
# programs' packages, chromium and playwright-core) waits mostly on the network: on a
# fresh machine it runs in the background while cargo compiles, and each suite waits
# for its own part just before it starts.
setup_logs="$(mktemp -d /tmp/runcore-test-setup.XXXXXX)"
declare -A setup_pid
setup() {
  local name="$1"
  shift
  "$@" >"$setup_logs/$name.log" 2>&1 &
  setup_pid[$name]=$!
}
ready() {
  if ! wait "${setup_pid[$1]}"; then
    echo "setup of $1 failed; the end of $setup_logs/$1.log:" >&2
    tail -n 40 "$setup_logs/$1.log" >&2
    exit 1
  fi
}
# A failing stage ends the script: do not leave installs running behind it.
trap 'kill "${setup_pid[@]}" 2>/dev/null || true' EXIT
echo "==> installing test dependencies in the background (logs in $setup_logs)"
setup mlflow bash scripts/mlflow-env.sh
setup conformance bash tests/run.sh --setup-only
setup wandb bash tests/wandb/run.sh --setup-only
setup ui bash tests/ui/run.sh --setup-only

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
echo "==> MLflow for the backend tests"
ready mlflow
RUNCORE_MLFLOW="$(tail -n 1 "$setup_logs/mlflow.log")"
export RUNCORE_MLFLOW
echo "==> cargo test"
cargo test --quiet 2>&1
echo "==> Conformance: plain stubs in Python, Go, Node and Java over TCP and unix sockets"
ready conformance
RUNCORE_BIN="$target/debug/runcore" bash tests/run.sh
cargo build --quiet --bin runcore
echo "==> The unchanged wandb SDK (0.21, 0.25, 0.31 from PyPI) on the sidecar's W&B listener"
ready wandb
RUNCORE_BIN="$target/debug/runcore" bash tests/wandb/run.sh
echo "==> Python client"
RUNCORE_BIN="$target/debug/runcore" bash clients/python/scripts/test.sh -q
echo "==> Web UI in headless Chromium"
ready ui
RUNCORE_BIN="$target/debug/runcore" bash tests/ui/run.sh
echo "==> Kubernetes manifests against the binary"
RUNCORE_BIN="$target/debug/runcore" "$(bash clients/python/scripts/venv.sh | tail -n 1)/bin/python" -m pytest -q deploy/tests
echo "==> Go client"
RUNCORE_BIN="$target/debug/runcore" bash clients/go/scripts/test.sh
