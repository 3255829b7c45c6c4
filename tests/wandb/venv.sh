#!/usr/bin/env bash
# Makes (or reuses) the cached venv of one wandb release for the W&B-SDK matrix:
#   bash tests/wandb/venv.sh 0.31.0     # prints the venv's path on its last line
# The venv lives in .cache/wandb/venv-VERSION (git-ignored) and holds the real `wandb`
# from PyPI and pytest; it is rebuilt when this script changes.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
version="${1:?usage: venv.sh WANDB_VERSION}"
venv="$repo/.cache/wandb/venv-$version"
key="$version-$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.stamp" 2>/dev/null)" = "$key" ]; then
  echo "$venv"
  exit 0
fi
python="${PYTHON:-python3}"
echo "tests/wandb: building $venv (wandb==$version from PyPI)" >&2
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv"
PIP_CACHE_DIR="$repo/.cache/pip" "$venv/bin/python" -m pip install --quiet \
  --disable-pip-version-check "wandb==$version" "pytest==8.4.2" >&2
"$venv/bin/python" -c 'import wandb' >&2
echo "$key" >"$venv/.stamp"
echo "$venv"
