#!/usr/bin/env bash
# What the unix socket's HTTP/2 front (service/src/h2front) costs: LogStream ingest
# through a unix socket into a sidecar with the front (BIN_AFTER) and into one
# without it (BIN_BEFORE, a build of a commit before it), alternating, REPS times
# each, with the ingest load generator of service/benches/ingest.rs.
#
#   bash bench/unix_front.sh BIN_BEFORE BIN_AFTER INGEST_BIN [REPS] [POINTS]
#
# BIN_* are release `runcore` binaries; INGEST_BIN is the release build of the
# ingest bench (target/release/deps/ingest-*). Prints one JSON line per run
# (points_per_s, sidecar_cpu_us_per_point, ...) tagged before/after, then medians.
set -euo pipefail
before="$1" after="$2" ingest="$3" reps="${4:-3}" points="${5:-2000000}"
work="$(mktemp -d /tmp/runcore-front.XXXXXX)"
trap 'rm -rf "$work"' EXIT
results="$work/results.jsonl"
run_one() { # TAG BIN
  local tag="$1" bin="$2" dir="$work/$1-$RANDOM"
  mkdir -p "$dir"
  "$bin" serve --listen "unix://$dir/s.sock" --port-file "$dir/port" --data-dir "$dir/data" \
    --log-format json 2>"$dir/log" &
  local pid=$!
  for _ in $(seq 200); do [ -s "$dir/port" ] && break; sleep 0.05; done
  "$ingest" --address "unix://$dir/s.sock" --sidecar-pid "$pid" --points "$points" --json |
    python3 -c "import json,sys; [print(json.dumps(dict(json.loads(l), tag='$tag'))) for l in sys.stdin if l.startswith('{')]" >>"$results"
  kill "$pid"; wait "$pid" || true
}
for _ in $(seq "$reps"); do run_one before "$before"; run_one after "$after"; done
cat "$results"
python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for tag in ("before", "after"):
    r = [x for x in rows if x["tag"] == tag]
    pps = statistics.median(x["points_per_s"] for x in r)
    cpu = statistics.median(x["sidecar_cpu_us_per_point"] for x in r)
    print(f"{tag:>6}: median {pps:,.0f} points/s, sidecar CPU {cpu:.3f} us/point ({len(r)} runs)")
PY
