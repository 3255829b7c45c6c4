#!/usr/bin/env bash
# The benchmarks: runcore against wandb (offline mode) side by side, and the limits
# of this machine. One command:
#
#   bench/run.sh            # every scenario, >= 5 repetitions each; writes docs/BENCHMARKS.md
#   bench/run.sh --quick    # fewer rows and repetitions, to check the harness
#                           # (writes bench/.cache/BENCHMARKS.quick.md)
#   bench/run.sh --only narrow,ingest   # some scenarios (bench/.cache/BENCHMARKS.partial.md)
#   bench/run.sh --note "text"          # a line for the machine section (e.g. "busy machine")
#   bench/run.sh --render bench/.cache/results/RUN.json   # rewrite the report from a run's raw
#                           # results (after editing bench/notes/); measures nothing
#
# Installs what it needs into bench/.cache (git-ignored): a venv with the pinned
# bench/requirements.txt (wandb from PyPI) plus the runcore Python client from
# clients/python, and copies of the release binaries it measures (the sidecar and
# the bench targets of service/benches), so a rebuild in the middle of a run cannot
# mix builds. wandb runs with WANDB_MODE=offline: nothing leaves the machine.
# Not part of the tests (.ci/run never runs it); benchmarks are not assertions.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
cache="$repo/bench/.cache"
mkdir -p "$cache/bin"

# --- the venv -----------------------------------------------------------------
venv="$cache/venv"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
  done
fi
[ -n "$python" ] || { echo "bench/run.sh: no python3 found; set PYTHON" >&2; exit 1; }
key="$(cat bench/requirements.txt clients/python/pyproject.toml | sha256sum | cut -c1-16)"
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.pins" 2>/dev/null)" = "$key" ]; then
  echo "bench: reusing $venv" >&2
else
  echo "bench: building $venv with $("$python" --version 2>&1) (wandb and the runcore client, about a minute)" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
  "${pip[@]}" --upgrade "pip>=23.1"
  "${pip[@]}" -r bench/requirements.txt
  # The runcore client from the tree (its native core is built below, in release).
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$repo/clients/python/src" >"$site/runcore-src.pth"
  echo "$key" >"$venv/.pins"
fi
bash clients/python/scripts/native.sh --release
"$venv/bin/python" -c 'import runcore._native, wandb, grpc' >&2

# --- the binaries ---------------------------------------------------------------
echo "bench: cargo build --release (sidecar and bench targets)" >&2
cargo build --release --quiet --bin runcore
target="${CARGO_TARGET_DIR:-$repo/target}"
cp "$target/release/runcore" "$cache/bin/runcore.new" && mv "$cache/bin/runcore.new" "$cache/bin/runcore"
cargo bench --quiet --no-run --bench ingest --bench hot_paths --bench monitor_sample \
    --message-format=json-render-diagnostics 2>/dev/null |
  "$venv/bin/python" -c '
import json, shutil, sys
cache = sys.argv[1]
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "bench" in m["target"]["kind"]:
        dest = cache + "/bin/" + m["target"]["name"]
        shutil.copy2(m["executable"], dest + ".new")
        shutil.move(dest + ".new", dest)
' "$cache"
for b in runcore ingest hot_paths monitor_sample; do
  [ -x "$cache/bin/$b" ] || { echo "bench/run.sh: $cache/bin/$b was not built" >&2; exit 1; }
done

exec "$venv/bin/python" bench/driver.py --repo "$repo" --cache "$cache" "$@"
