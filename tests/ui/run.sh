#!/usr/bin/env bash
# The web UI's browser tests: a real sidecar makes a store (three ended runs and a
# live one, logged by the Python client), `runcore ui` serves it, and headless
# Chromium (Debian's package) driven by playwright-core checks the runs table,
# the run page's charts, compare, live updates and bad input (tests/ui/browser.mjs).
# Builds nothing: RUNCORE_BIN is the binary (default target/debug/runcore).
# Prints `N passed, M failed` last; exits non-zero on a failure.
#
#   RUNCORE_BIN=target/debug/runcore bash tests/ui/run.sh [--screenshots docs]
#   bash tests/ui/run.sh --setup-only   # only install chromium and playwright-core
#
# Installs on first use: Chromium with apt-get (when run as root; otherwise install
# the `chromium` package yourself), playwright-core (pinned in package-lock.json)
# into the git-ignored tests/ui/node_modules, the Python client's venv.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="${RUNCORE_BIN:-${CARGO_TARGET_DIR:-$repo/target}/debug/runcore}"
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
shots_args=()
setup_only=0
if [ "${1:-}" = "--setup-only" ]; then
  setup_only=1
elif [ "${1:-}" = "--screenshots" ]; then
  shots="$2"
  case "$shots" in /*) ;; *) shots="$PWD/$shots" ;; esac
  shots_args=(--screenshots "$shots")
fi
if [ "$setup_only" = 0 ] && [ ! -x "$bin" ]; then
  echo "tests/ui: no runcore binary at $bin: build it (cargo build --bin runcore) or set RUNCORE_BIN" >&2
  exit 2
fi

chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "tests/ui: installing Debian's chromium" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "tests/ui: needs Chromium at $chromium: sudo apt-get install -y chromium (or set CHROMIUM)" >&2
    exit 2
  fi
fi

stamp="$here/node_modules/.runcore-lock"
key="$(sha256sum "$here/package-lock.json" | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$key" ]; then
  echo "tests/ui: installing playwright-core (package-lock.json)" >&2
  (cd "$here" && npm_config_cache="$repo/.cache/npm" PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
    npm ci --silent --no-audit --no-fund >/dev/null)
  echo "$key" >"$stamp"
fi
[ "$setup_only" = 1 ] && exit 0
venv="$(bash "$repo/clients/python/scripts/venv.sh" | tail -n 1)"

work="$(mktemp -d /tmp/runcore-ui-test.XXXXXX)"
pids=()
cleanup() {
  touch "$work/stop"
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# wait_file FILE WHAT: waits up to 30 s for FILE to be written.
wait_file() {
  for _ in $(seq 1 300); do
    [ -s "$1" ] && return 0
    sleep 0.1
  done
  echo "tests/ui: $2 did not start (see $work/*.log)" >&2
  tail -n 20 "$work"/*.log >&2 || true
  exit 1
}

sidecar_ui_port="$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$bin" serve --listen "unix://$work/runcore.sock" --port-file "$work/address" \
  --data-dir "$work/data" --flush-interval 0.1 \
  --ui-listen "http://127.0.0.1:$sidecar_ui_port" >"$work/sidecar.log" 2>&1 &
pids+=($!)
wait_file "$work/address" "the sidecar"
export RUNCORE_ADDRESS
RUNCORE_ADDRESS="$(cat "$work/address")"

"$venv/bin/python" "$here/make_store.py" finished >"$work/store.log" 2>&1 || {
  cat "$work/store.log" >&2
  exit 1
}
"$venv/bin/python" "$here/make_store.py" big "$work/data" bigcopy >>"$work/store.log" 2>&1 || {
  cat "$work/store.log" >&2
  exit 1
}
"$venv/bin/python" "$here/make_store.py" live "$work/live.ready" "$work/stop" >"$work/live.log" 2>&1 &
pids+=($!)
wait_file "$work/live.ready" "the live run"

"$bin" ui --data-dir "$work/data" --listen http://127.0.0.1:0 --port-file "$work/ui.url" >"$work/ui.log" 2>&1 &
pids+=($!)
wait_file "$work/ui.url" "runcore ui"

cd "$here"
node browser.mjs "$(cat "$work/ui.url")" "http://127.0.0.1:$sidecar_ui_port/" "$work/live.ready" "${shots_args[@]}"
