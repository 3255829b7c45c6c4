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

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
echo "==> MLflow for the backend tests"
RUNCORE_MLFLOW="$(bash scripts/mlflow-env.sh)"
export RUNCORE_MLFLOW
echo "==> cargo test"
cargo test --quiet 2>&1
echo "==> Conformance: plain stubs in Python, Go, Node and Java over TCP and unix sockets"
RUNCORE_BIN="$target/debug/runcore" bash tests/run.sh
cargo build --quiet --bin runcore
echo "==> The unchanged wandb SDK (0.21, 0.25, 0.31 from PyPI) on the sidecar's W&B listener"
RUNCORE_BIN="$target/debug/runcore" bash tests/wandb/run.sh
echo "==> Python client"
RUNCORE_BIN="$target/debug/runcore" bash clients/python/scripts/test.sh -q
echo "==> Web UI in headless Chromium"
RUNCORE_BIN="$target/debug/runcore" bash tests/ui/run.sh
echo "==> Kubernetes manifests against the binary"
RUNCORE_BIN="$target/debug/runcore" "$(bash clients/python/scripts/venv.sh | tail -n 1)/bin/python" -m pytest -q deploy/tests
echo "==> Go client"
RUNCORE_BIN="$target/debug/runcore" bash clients/go/scripts/test.sh
