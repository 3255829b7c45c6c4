#!/usr/bin/env bash
# Creates (or reuses) the development venv: the pinned packages of
# requirements-dev.txt, and this package's src/ on the venv's path (a .pth file:
# no build backend involved). Builds the native core on every run (scripts/native.sh,
# cheap when up to date), so the venv always imports the current sources. The venv
# lives at $RUNCORE_VENV, default <repo>/.venv (git-ignored); it is rebuilt when the
# pins or pyproject.toml change. Needs Python >= 3.9 (3.11 tested), cargo and PyPI.
# Prints the venv's path as its last line.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pkg="$(cd "$here/.." && pwd)"
repo="$(cd "$pkg/../.." && pwd)"
venv="${RUNCORE_VENV:-$repo/.venv}"
case "$venv" in /*) ;; *) venv="$repo/$venv" ;; esac

"$here/native.sh"

python="${PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
  done
fi
if [ -z "$python" ]; then
  echo "venv.sh: no python3 found; install Python 3.11 or set PYTHON" >&2
  exit 1
fi

key="$(cat "$pkg/requirements-dev.txt" "$pkg/pyproject.toml" | sha256sum | cut -c1-16)"
stamp="$venv/.runcore-pins"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
  echo "venv.sh: reusing $venv (pins $key)" >&2
  echo "$venv"
  exit 0
fi

echo "venv.sh: building $venv with $("$python" --version 2>&1) (pins $key)" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "pip>=23.1"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$pkg/requirements-dev.txt"
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$pkg/src" >"$site/runcore-src.pth"
"$venv/bin/python" -c 'import runcore, runcore._native, grpc, google.protobuf; print("venv.sh: runcore", runcore.__version__, "from", runcore.__file__, "grpcio", grpc.__version__, "protobuf", google.protobuf.__version__)' >&2
echo "$key" >"$stamp"
echo "$venv"
