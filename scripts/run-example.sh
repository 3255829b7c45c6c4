#!/usr/bin/env bash
# The main job: build the sidecar, start it on the embedded local store (./runcore-data
# unless RUNCORE_DATA_DIR says otherwise), run the Python example training loop
# (clients/python/examples/train.py, W&B-style) against it, print the run directory
# and final summary, and stop the sidecar; then start the web UI (`runcore ui`) on the
# store in the background and print its URL (RUNCORE_UI_PORT, default 6007;
# RUNCORE_UI=0 skips it). `--rust` runs the Rust example instead.
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

# See your runs: the web UI over the store, left running after this script.
[ "${RUNCORE_UI:-1}" = 0 ] && exit 0
ui_url="http://127.0.0.1:${RUNCORE_UI_PORT:-6007}/"
abs_data_dir="$(cd "$data_dir" && pwd -P)"
if command -v curl >/dev/null && curl -fsS --max-time 2 "${ui_url}api/info" 2>/dev/null | grep -qF "\"data_dir\":\"$abs_data_dir\""; then
    echo "==> see your runs: $ui_url (the runcore ui started earlier serves this store)"
    exit 0
fi
ui_log="${TMPDIR:-/tmp}/runcore-ui.$$.log"
nohup "$target/debug/runcore" ui --data-dir "$data_dir" --listen "$ui_url" --port-file "$sock_dir/ui.url" \
    >"$ui_log" 2>&1 </dev/null &
ui_pid=$!
for _ in $(seq 1 100); do
    [ -s "$sock_dir/ui.url" ] && break
    kill -0 "$ui_pid" 2>/dev/null || break
    sleep 0.05
done
if [ -s "$sock_dir/ui.url" ]; then
    echo "==> see your runs: $ui_url"
    echo "    (runcore ui, pid $ui_pid, keeps serving in the background; stop it with: kill $ui_pid)"
else
    echo "==> the web UI did not start (is port ${RUNCORE_UI_PORT:-6007} taken? set RUNCORE_UI_PORT):" >&2
    tail -n 5 "$ui_log" >&2 || true
    echo "    start it yourself: $target/debug/runcore ui --data-dir $data_dir" >&2
fi
