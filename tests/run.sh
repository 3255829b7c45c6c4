#!/usr/bin/env bash
# The conformance suite (tests/conformance/README.md): one real sidecar per transport,
# driven by plain generated stubs in Python, Go, Node and Java, each over TCP and over
# a unix socket, with no channel option beyond the address; then the run directories
# they left are compared. Prints a language x transport table and, last, the line
# `N passed, M failed` (cells); exits non-zero when any cell fails.
#
#   RUNCORE_BIN=target/release/runcore bash tests/run.sh   # default: target/debug/runcore
#   bash tests/run.sh --setup-only   # only install and build the four programs (no sidecar)
#
# Needs python3, go, node/npm, java 17+ and mvn; installs everything else on first use
# into git-ignored caches (.cache/conformance, .cache/m2, .cache/npm, .cache/pip; Go's
# module cache), each reused while its pins are unchanged. CONFORMANCE_LANGS picks a
# subset ("python go"). The last run's logs, data dirs and work dirs stay in
# .cache/conformance/run/.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
conf="$repo/tests/conformance"
cache="$repo/.cache/conformance"
bin="${RUNCORE_BIN:-$repo/target/debug/runcore}"
langs="${CONFORMANCE_LANGS:-python go node java}"
transports="tcp unix"
cell_timeout=120
setup_only=0
[ "${1:-}" = "--setup-only" ] && setup_only=1

for lang in $langs; do
  case "$lang" in python | go | node | java) ;; *) echo "run.sh: unknown language $lang" >&2; exit 2 ;; esac
done
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
if [ "$setup_only" = 0 ] && [ ! -x "$bin" ]; then
  echo "run.sh: no sidecar binary at $bin: build it (cargo build --bin runcore) or set RUNCORE_BIN" >&2
  exit 2
fi

run="$cache/run"
rm -rf "$run"
mkdir -p "$run/logs" "$run/work"
logs="$run/logs"
# A unix socket path must stay short (108 bytes), wherever the repository is.
sockdir="$(mktemp -d /tmp/runcore-conformance.XXXXXX)"
pids=()
stop_sidecars() {
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
trap 'stop_sidecars; rm -rf "$sockdir"' EXIT

# hash FILE...: a short digest of the files' contents (stamps of the caches).
hash() { cat "$@" | sha256sum | cut -c1-16; }

# --- Setup: one function per language, run in parallel, each skipping what is current.

setup_python() {
  local venv="$cache/venv" stubs="$cache/python-stubs" key
  key="$(hash "$conf/python/requirements.txt")"
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$key" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    PIP_CACHE_DIR="$repo/.cache/pip" "$venv/bin/pip" install --quiet --disable-pip-version-check \
      -r "$conf/python/requirements.txt"
    echo "$key" >"$venv/.stamp"
  fi
  key="$key-$(hash "$repo/proto/runcore/v1/runcore.proto")"
  if [ "$(cat "$stubs/.stamp" 2>/dev/null)" != "$key" ]; then
    rm -rf "$stubs"
    mkdir -p "$stubs"
    "$venv/bin/python" -m grpc_tools.protoc -I "$repo/proto" --python_out="$stubs" \
      --grpc_python_out="$stubs" runcore/v1/runcore.proto
    echo "$key" >"$stubs/.stamp"
  fi
}

setup_go() {
  mkdir -p "$cache/go"
  (cd "$conf/go" && go build -o "$cache/go/conformance" .)
}

setup_node() {
  local key
  key="$(hash "$conf/node/package-lock.json")"
  if [ "$(cat "$conf/node/node_modules/.stamp" 2>/dev/null)" != "$key" ]; then
    (cd "$conf/node" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error \
      --cache "$repo/.cache/npm")
    echo "$key" >"$conf/node/node_modules/.stamp"
  fi
}

setup_java() {
  local build="$cache/java" key
  key="$(cd "$conf/java" && find pom.xml src -type f | sort | xargs cat "$repo/proto/runcore/v1/runcore.proto" | sha256sum | cut -c1-16)"
  if [ ! -f "$build/classpath.txt" ] || [ "$(cat "$build/.stamp" 2>/dev/null)" != "$key" ]; then
    rm -rf "$build"
    (cd "$conf/java" && mvn -q -B -Dmaven.repo.local="$repo/.cache/m2" -Dconformance.build="$build" \
      compile dependency:build-classpath -Dmdep.outputFile="$build/classpath.txt")
    echo "$key" >"$build/.stamp"
  fi
}

# cell_command LANG: sets cmd to the language's program; it takes ADDRESS RUN_ID WORKDIR.
cell_command() {
  case "$1" in
    python) cmd=("$cache/venv/bin/python" "$conf/python/conformance.py" "$cache/python-stubs") ;;
    go) cmd=("$cache/go/conformance") ;;
    node) cmd=(node "$conf/node/conformance.js") ;;
    java) cmd=(java -cp "$cache/java/classes:$(cat "$cache/java/classpath.txt")" conformance.Conformance) ;;
  esac
}

start=$SECONDS
echo "==> setup: $langs (logs in $logs)"
declare -A setup_pid setup_ok
for lang in $langs; do
  "setup_$lang" >"$logs/setup-$lang.log" 2>&1 &
  setup_pid[$lang]=$!
done
for lang in $langs; do
  if wait "${setup_pid[$lang]}"; then
    setup_ok[$lang]=1
    echo "    $lang ready"
  else
    setup_ok[$lang]=0
    echo "    $lang SETUP FAILED; its cells fail. Last lines of $logs/setup-$lang.log:"
    tail -n 20 "$logs/setup-$lang.log" | sed 's/^/      /'
  fi
done
echo "    setup took $((SECONDS - start)) s"
if [ "$setup_only" = 1 ]; then
  for lang in $langs; do [ "${setup_ok[$lang]}" = 1 ] || exit 1; done
  exit 0
fi

# --- The sidecars: one per transport, each with its own data dir. Over TCP, SaveFiles
# may read only under --files-root: the cells' work dirs.
sidecar_env=()
for v in $(compgen -e | grep '^RUNCORE_' || true); do sidecar_env+=(-u "$v"); done
declare -A address
for transport in $transports; do
  dir="$run/$transport"
  mkdir -p "$dir"
  case "$transport" in
    tcp) listen="tcp://127.0.0.1:0" ;;
    unix) listen="unix://$sockdir/runcore.sock" ;;
  esac
  env "${sidecar_env[@]}" "$bin" serve --listen "$listen" --port-file "$dir/address" \
    --data-dir "$dir/data" --files-root "$run/work" --backend local --shutdown-grace 5 \
    >"$dir/sidecar.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    [ -s "$dir/address" ] && break
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if [ ! -s "$dir/address" ]; then
    echo "run.sh: the $transport sidecar did not start; $dir/sidecar.log:" >&2
    cat "$dir/sidecar.log" >&2
    exit 2
  fi
  address[$transport]="$(tr -d '\n' <"$dir/address")"
  echo "==> $transport sidecar at ${address[$transport]} ($("$bin" --version 2>/dev/null || echo runcore))"
done

# --- The cells.
results="$run/results.tsv"
: >"$results"
for transport in $transports; do
  for lang in $langs; do
    id="conf-$lang-$transport"
    work="$run/work/$lang-$transport"
    mkdir -p "$work"
    t0=$SECONDS
    if [ "${setup_ok[$lang]}" = 1 ]; then
      rc=0
      cell_command "$lang"
      timeout "$cell_timeout" "${cmd[@]}" "${address[$transport]}" "$id" "$work" \
        >"$logs/$lang-$transport.log" 2>&1 || rc=$?
    else
      rc=125
      echo "setup failed: see $logs/setup-$lang.log" >"$logs/$lang-$transport.log"
    fi
    printf '%s\t%s\t%s\t%s\n' "$lang" "$transport" "$rc" "$run/$transport/data/conformance/$id" >>"$results"
    if [ "$rc" = 0 ]; then
      echo "--- $lang over $transport: program passed ($((SECONDS - t0)) s)"
    else
      echo "--- $lang over $transport: program FAILED, exit $rc ($((SECONDS - t0)) s); $logs/$lang-$transport.log:"
      grep -E 'MISMATCH|RPC FAILED|FAIL|rror' "$logs/$lang-$transport.log" | head -n 20 | sed 's/^/      /' || true
    fi
  done
done

# Stopped before comparing, so every store file is flushed and closed.
stop_sidecars
echo "==> comparing the run directories ($((SECONDS - start)) s so far)"
python3 "$conf/compare.py" "$results"
