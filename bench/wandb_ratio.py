"""The sidecar's CPU per point through the W&B service protocol against runcore's
own LogStream path (issue 17's 2x target), both SDKs alternating in one run:

    bench/.cache/venv/bin/python bench/wandb_ratio.py --reps 3

Each repetition runs `bench/sdk_worker.py log` once with `--sdk runcore` and once
with `--sdk wandb-runcore` (the unchanged wandb SDK, WANDB_MODE=offline, into a
`runcore serve --wandb-listen` sidecar), for each shape (100,000 x 10 and
1,000 x 1,000 by default), in fresh temporary directories. Prints each result and
then the medians, ranges and ratios, with the load average before and after.

runcore's client makes its calls ~80x faster than the wandb SDK (0.3 s against
~20 s for 100,000 calls), and the sidecar's CPU per point depends on that as much
as on the protocol: in a burst the client sends full batches of 512 rows, at a
script's pace one batch per 20 ms, each a wake-up, a message and a log record of
its own. So each repetition also runs runcore's client at the wandb SDK's pace
(`paced`: `--pace-us` set to the W&B run's time per call, just measured): the two
protocols side by side with the calls made alike. Both ratios are printed.
With `--before OTHER_BINARY` each repetition also runs the W&B side on that
binary (an earlier build), for a before/after under the same load.

Each result line also gives the transaction log's bytes per point (about 10 when
every row was recorded): a run whose rows the sidecar refused (its memory budget
refuses runcore's client's large batches of wide rows, RESOURCE_EXHAUSTED) costs
the sidecar less and is flagged, with the warning the SDK printed.
`--memory-budget BYTES` passes RUNCORE_MEMORY_BUDGET to every sidecar.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
SDKS = ("runcore", "wandb-runcore")


#: Fewer log bytes per point than this: rows were not recorded.
MIN_LOG_BYTES_PER_POINT = 5.0


def one(sdk: str, rows: int, keys: int, binary: str, budget: str, pace_us: float = 0.0) -> Dict[str, Any]:
    env = dict(os.environ, RUNCORE_BIN=binary, WANDB_MODE="offline")
    if budget:
        env["RUNCORE_MEMORY_BUDGET"] = budget
    with tempfile.TemporaryDirectory(prefix="wandb-ratio-") as tmp:
        cmd = [sys.executable, os.path.join(HERE, "sdk_worker.py"), "log", "--sdk", sdk,
               "--rows", str(rows), "--keys", str(keys), "--dir", tmp, "--pace-us", str(pace_us)]
        done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    r = json.loads(done.stdout.strip().splitlines()[-1])
    r["refused"] = [line for line in done.stderr.splitlines() if "refused" in line][:1]
    return r


def fmt(xs: List[float]) -> str:
    return f"{statistics.median(xs):.3f} us ({min(xs):.3f}-{max(xs):.3f})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--shapes", default="100000x10,1000x1000", help="ROWSxKEYS,...")
    p.add_argument("--bin", default=os.path.join(HERE, ".cache", "bin", "runcore"))
    p.add_argument("--before", help="another runcore binary to run the W&B side on too")
    p.add_argument("--memory-budget", default="", help="RUNCORE_MEMORY_BUDGET (bytes) for every sidecar")
    a = p.parse_args()
    shapes: List[Tuple[int, int]] = [tuple(map(int, s.split("x"))) for s in a.shapes.split(",")]  # type: ignore
    load0 = os.getloadavg()
    got: Dict[Tuple[int, int, str], List[float]] = {}
    for rep in range(a.reps):
        for rows, keys in shapes:
            runs = [(sdk, sdk, a.bin) for sdk in SDKS] + [("paced", "runcore", a.bin)]
            if a.before:
                runs.append(("before", "wandb-runcore", a.before))
            pace_us = 0.0
            for name, sdk, binary in runs:
                r = one(sdk, rows, keys, binary, a.memory_budget, pace_us if name == "paced" else 0.0)
                if name == "wandb-runcore":
                    pace_us = r["loop_s"] * 1e6 / rows
                got.setdefault((rows, keys, name), []).append(r["server_cpu_us_per_point"])
                missing = r["log_bytes_per_point"] < MIN_LOG_BYTES_PER_POINT
                print(f"rep {rep + 1} {rows}x{keys} {name}: {r['server_cpu_us_per_point']:.3f} us/point "
                      f"(sidecar {r['server_cpu_s']:.2f} s, loop {r['loop_s']:.2f} s, "
                      f"log {r['log_bytes_per_point']:.1f} B/point)"
                      + (" ROWS NOT RECORDED: " + " ".join(r["refused"])[:200] if missing else ""),
                      flush=True)
    load1 = os.getloadavg()
    print(f"load average (1, 5, 15 min) before {load0}, after {load1}")
    for rows, keys in shapes:
        own, wb = got[(rows, keys, "runcore")], got[(rows, keys, "wandb-runcore")]
        ratio = statistics.median(wb) / statistics.median(own)
        paced = got[(rows, keys, "paced")]
        print(f"{rows}x{keys}: LogStream {fmt(own)}, W&B {fmt(wb)}, ratio {ratio:.2f}x")
        print(f"{rows}x{keys}: LogStream at the W&B SDK's pace {fmt(paced)}, "
              f"ratio {statistics.median(wb) / statistics.median(paced):.2f}x")
        if a.before:
            old = got[(rows, keys, "before")]
            print(f"{rows}x{keys}: W&B on --before {fmt(old)}, ratio {statistics.median(old) / statistics.median(own):.2f}x")


if __name__ == "__main__":
    main()
