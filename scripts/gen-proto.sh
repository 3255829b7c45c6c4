#!/usr/bin/env bash
# Regenerates the committed client stubs from proto/ (Rust code is generated at build
# time by service/build.rs): Python (clients/python/src/runcore/_proto) and Go
# (clients/go/gen/runcorev1). The clients' test scripts check they are current.
set -euo pipefail
cd "$(dirname "$0")/.."
bash clients/python/scripts/gen_proto.sh
bash clients/go/scripts/gen.sh
