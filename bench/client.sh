#!/usr/bin/env bash
# Issue 20's client figures: what logging costs a CPU-bound training loop (10 and 100
# keys per step), the caller's CPU per log(), peak RSS and import + init(), for runcore's
# client on its native core, runcore's previous pure-Python client (commit e6f4cf7) and
# wandb (offline), side by side in one run (bench/client_overhead.py).
#
#   bench/client.sh [--reps 5] [--pairs 10] [--work-ms 2] [--variants ...] [--modes ...]
#   bench/client.sh --reps 15 --modes startup --variants runcore,wandb   # import + init() only
#   (arguments go to the driver, bench/client_overhead.py drive --help)
#
# Sets up bench/.cache (git-ignored): a venv with bench/requirements.txt (wandb, grpcio,
# protobuf pinned), a release sidecar, a copy of clients/python/src with the release
# native module, and the pure-Python client extracted from git, both byte-compiled as
# pip would install them. Writes the raw results
# to bench/.cache/client-<time>.json. Not a test; figures are never assertions.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
cache="$repo/bench/.cache"
mkdir -p "$cache"
target="${CARGO_TARGET_DIR:-$repo/target}"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null || python=python3

venv="$cache/client-venv"
key="$(sha256sum bench/requirements.txt | cut -c1-16)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.pins" 2>/dev/null)" != "$key" ]; then
  echo "client.sh: building $venv (wandb, grpcio, protobuf)" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
  echo "$key" >"$venv/.pins"
fi

echo "client.sh: cargo build --release (sidecar, native module)" >&2
cargo build --release --quiet -p runcore --bin runcore && cargo build --release --quiet -p runcore-native
mkdir -p "$cache/bin"
cp "$target/release/runcore" "$cache/bin/runcore.new" && mv "$cache/bin/runcore.new" "$cache/bin/runcore"
rm -rf "$cache/client-src" && cp -r clients/python/src "$cache/client-src"
find "$cache/client-src" -name '_native*.so' -delete
cp "$target/release/lib_native.so" "$cache/client-src/runcore/_native.abi3.so"
old="$cache/client-py-e6f4cf7"
if [ ! -d "$old" ]; then
  mkdir -p "$old.tmp" && git archive e6f4cf7 clients/python/src | tar -x -C "$old.tmp"
  mv "$old.tmp/clients/python/src" "$old" && rm -rf "$old.tmp"
fi
# Byte-compiled, as pip installs a package (wandb's is): otherwise, under
# PYTHONDONTWRITEBYTECODE or a read-only tree, every start would compile runcore's
# sources again and the startup figures would measure the compiler.
"$venv/bin/python" -m compileall -q "$cache/client-src" "$old" >/dev/null

export RUNCORE_BIN="$cache/bin/runcore"
exec "$venv/bin/python" bench/client_overhead.py drive --python "$venv/bin/python" \
  --wandb-python "$venv/bin/python" --client-src "$cache/client-src" --py-client-src "$old" \
  --out "$cache/client-$(date -u +%Y%m%dT%H%M%S).json" "$@"
