#!/usr/bin/env bash
# Fails when the committed stubs in gen/runcorev1 differ from what scripts/gen.sh
# generates from proto/ now (CI runs this through scripts/test.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod="$(cd "$here/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$here/gen.sh" "$tmp" >/dev/null
if ! diff -ru "$mod/gen/runcorev1" "$tmp/gen/runcorev1"; then
  echo "check-gen.sh: clients/go/gen/runcorev1 is stale; run clients/go/scripts/gen.sh and commit the result" >&2
  exit 1
fi
echo "check-gen.sh: generated Go stubs are up to date"
