#!/usr/bin/env bash
# Generates the Python gRPC stubs of proto/runcore/v1/runcore.proto into
# src/runcore/_proto/ (or into the directory given as $1, for scripts/check_proto.sh).
# Needs grpcio-tools (scripts/venv.sh installs the pinned version); uses $PYTHON,
# else the repo venv's python, else python3.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pkg="$(cd "$here/.." && pwd)"
repo="$(cd "$pkg/../.." && pwd)"
out="${1:-$pkg/src/runcore/_proto}"
venv="${RUNCORE_VENV:-$repo/.venv}"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x "$venv/bin/python" ]; then python="$venv/bin/python"; else python=python3; fi
fi
if ! "$python" -c 'import grpc_tools.protoc' 2>/dev/null; then
  echo "gen_proto.sh: $python has no grpcio-tools; run clients/python/scripts/venv.sh first" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$python" -m grpc_tools.protoc -I "$repo/proto" \
  --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" \
  "$repo/proto/runcore/v1/runcore.proto"

mkdir -p "$out"
rm -f "$out"/runcore_pb2.py "$out"/runcore_pb2.pyi "$out"/runcore_pb2_grpc.py
cp "$tmp/runcore/v1/runcore_pb2.py" "$tmp/runcore/v1/runcore_pb2.pyi" "$out/"
# protoc names the message module by its proto path (runcore.v1.runcore_pb2), which
# inside this package would resolve to runcore/v1: import it relatively instead.
sed -e 's/^from runcore\.v1 import runcore_pb2 as /from . import runcore_pb2 as /' \
  "$tmp/runcore/v1/runcore_pb2_grpc.py" >"$out/runcore_pb2_grpc.py"
if grep -q '^from runcore\.v1' "$out/runcore_pb2_grpc.py"; then
  echo "gen_proto.sh: an import in runcore_pb2_grpc.py was not rewritten" >&2
  exit 1
fi
cat >"$out/__init__.py" <<'PY'
"""Generated gRPC stubs of proto/runcore/v1/runcore.proto.

Do not edit: regenerate with clients/python/scripts/gen_proto.sh.
"""
PY
echo "gen_proto.sh: stubs written to $out ($("$python" -m grpc_tools.protoc --version))"
