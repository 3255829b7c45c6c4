#!/usr/bin/env bash
# Fails when the committed stubs in src/runcore/_proto differ from what
# scripts/gen_proto.sh generates from proto/ now (CI runs this).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pkg="$(cd "$here/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$here/gen_proto.sh" "$tmp/_proto" >/dev/null
if ! diff -ru "$pkg/src/runcore/_proto" "$tmp/_proto" -x __pycache__; then
  echo "check_proto.sh: src/runcore/_proto is stale; run clients/python/scripts/gen_proto.sh and commit the result" >&2
  exit 1
fi
echo "check_proto.sh: generated stubs are up to date"
