#!/usr/bin/env bash
# The main job: build the sidecar, start it on the embedded local store (./runcore-data
# unless RUNCORE_DATA_DIR says otherwise), run the Python example training loop
# (clients/python/examples/train.py, W&B-style) against it, print the run directory
# and final summary, and stop the sidecar. `--rust` runs the Rust example instead.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"

lang="python"
[ "${1:-}" = "--rust" ] && lang="rust"
echo "==> building runcore (debug)"
cargo build --quiet --bin runcore
if [ "$lang" = "rust" ]; then
    cargo build --quiet --example train
else
    echo "==> preparing the Python client (a cached venv in .venv)"
    venv="$(bash clients/python/scripts/venv.sh | tail -n 1)"
fi

data_dir="${RUNCORE_DATA_DIR:-$PWD/runcore-data}"
sock_dir="$(mktemp -d)"
sidecar_pid=""
cleanup() {
    if [ -n "$sidecar_pid" ] && kill -0 "$sidecar_pid" 2>/dev/null; then
        kill -TERM "$sidecar_pid" 2>/dev/null || true
        wait "$sidecar_pid" 2>/dev/null || true
    fi
    rm -rf "$sock_dir"
}
trap cleanup EXIT

echo "==> starting the sidecar (data dir: $data_dir)"
"$target/debug/runcore" serve \
    --listen "unix://$sock_dir/runcore.sock" \
    --port-file "$sock_dir/address" \
    --data-dir "$data_dir" &
sidecar_pid=$!
for _ in $(seq 1 200); do
    [ -s "$sock_dir/address" ] && break
    kill -0 "$sidecar_pid" 2>/dev/null || { echo "runcore exited before listening" >&2; exit 1; }
    sleep 0.05
done
[ -s "$sock_dir/address" ] || { echo "runcore did not start listening in 10 s" >&2; exit 1; }
address="$(cat "$sock_dir/address")"
echo "==> sidecar listening on $address"

echo "==> running the example training loop ($lang)"
if [ "$lang" = "rust" ]; then
    "$target/debug/examples/train" "$address"
else
    RUNCORE_ADDRESS="$address" "$venv/bin/python" clients/python/examples/train.py
fi

echo "==> runs in the local store"
"$target/debug/runcore" runs ls --data-dir "$data_dir"
