#!/usr/bin/env bash
# Builds the native core (the runcore-native crate, clients/python/native) with
# cargo and copies it to src/runcore/_native.abi3.so (git-ignored), where the
# package imports it from. Debug by default; --release for an optimised build.
# Uses $CARGO_TARGET_DIR (default <repo>/target). Cheap when nothing changed: cargo
# rebuilds nothing and the copy is skipped when the files are the same.
# Output goes to stderr; prints nothing on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pkg="$(cd "$here/.." && pwd)"
repo="$(cd "$pkg/../.." && pwd)"
profile=debug
cargo_flags=()
case "${1:-}" in
  "") ;;
  --release) profile=release; cargo_flags+=(--release) ;;
  *) echo "native.sh: unknown argument $1 (only --release)" >&2; exit 2 ;;
esac
if ! command -v cargo >/dev/null 2>&1; then
  echo "native.sh: cargo not found; install Rust (https://rustup.rs) to build runcore's native core" >&2
  exit 1
fi
target="${CARGO_TARGET_DIR:-$repo/target}"
(cd "$repo" && cargo build --quiet -p runcore-native "${cargo_flags[@]}") >&2
built="$target/$profile/lib_native.so"
dest="$pkg/src/runcore/_native.abi3.so"
if [ ! -f "$built" ]; then
  echo "native.sh: cargo built no $built" >&2
  exit 1
fi
if ! cmp -s "$built" "$dest"; then
  # Copy then rename: a Python process that has the old module mapped keeps it intact.
  cp "$built" "$dest.tmp"
  mv -f "$dest.tmp" "$dest"
  echo "native.sh: $dest updated from $built" >&2
fi
