#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test, Rust first.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
echo "==> cargo test"
cargo test --quiet 2>&1
