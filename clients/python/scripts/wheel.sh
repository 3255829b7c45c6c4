#!/usr/bin/env bash
# Builds a release wheel (stripped) of the Python client, native core included, with maturin
# (pinned, in a cached venv at <repo>/.cache/maturin). maturin tags it with the
# oldest manylinux policy the built module satisfies (it checks the glibc symbols
# it links), so it installs on any Linux with that glibc or newer, without cargo.
# The wheel goes to <repo>/.cache/wheels; its path is printed as the last line.
# Needs cargo, Python >= 3.9 and PyPI (for maturin, once).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pkg="$(cd "$here/.." && pwd)"
repo="$(cd "$pkg/../.." && pwd)"
maturin_version=1.16.0
tools="$repo/.cache/maturin"
out="$repo/.cache/wheels"
python="${PYTHON:-python3}"

if [ ! -x "$tools/bin/maturin" ] || [ "$("$tools/bin/maturin" --version)" != "maturin $maturin_version" ]; then
  echo "wheel.sh: installing maturin $maturin_version in $tools" >&2
  rm -rf "$tools"
  "$python" -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet --disable-pip-version-check "maturin==$maturin_version"
fi
mkdir -p "$out"
rm -f "$out"/runcore-*.whl
(cd "$pkg" && "$tools/bin/maturin" build --release --strip --interpreter "$python" --out "$out") >&2
wheel="$(ls "$out"/runcore-*.whl)"
case "$wheel" in
  *manylinux*) ;;
  *) echo "wheel.sh: $wheel is not a manylinux wheel" >&2; exit 1 ;;
esac
echo "$wheel"
