"""The sidecar's CPU per point through the W&B service protocol against runcore's
own LogStream path (issue 17's 2x target), both SDKs alternating in one run:

    bench/.cache/venv/bin/python bench/wandb_ratio.py --reps 3

Each repetition runs `bench/sdk_worker.py log` once with `--sdk runcore` and once
with `--sdk wandb-runcore` (the unchanged wandb SDK, WANDB_MODE=offline, into a
`runcore serve --wandb-listen` sidecar), for each shape (100,000 x 10 and
1,000 x 1,000 by default), in fresh temporary directories. Prints each result and
then the medians, ranges and ratios, with the load average before and after.
With `--before OTHER_BINARY` each repetition also runs the W&B side on that
binary (an earlier build), for a before/after under the same load.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
SDKS = ("runcore", "wandb-runcore")


def one(sdk: str, rows: int, keys: int, binary: str) -> Dict[str, float]:
    env = dict(os.environ, RUNCORE_BIN=binary, WANDB_MODE="offline")
    with tempfile.TemporaryDirectory(prefix="wandb-ratio-") as tmp:
        cmd = [sys.executable, os.path.join(HERE, "sdk_worker.py"), "log", "--sdk", sdk,
               "--rows", str(rows), "--keys", str(keys), "--dir", tmp]
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def fmt(xs: List[float]) -> str:
    return f"{statistics.median(xs):.3f} us ({min(xs):.3f}-{max(xs):.3f})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--shapes", default="100000x10,1000x1000", help="ROWSxKEYS,...")
    p.add_argument("--bin", default=os.path.join(HERE, ".cache", "bin", "runcore"))
    p.add_argument("--before", help="another runcore binary to run the W&B side on too")
    a = p.parse_args()
    shapes: List[Tuple[int, int]] = [tuple(map(int, s.split("x"))) for s in a.shapes.split(",")]  # type: ignore
    load0 = os.getloadavg()
    got: Dict[Tuple[int, int, str], List[float]] = {}
    for rep in range(a.reps):
        for rows, keys in shapes:
            runs = [(sdk, sdk, a.bin) for sdk in SDKS]
            if a.before:
                runs.append(("before", "wandb-runcore", a.before))
            for name, sdk, binary in runs:
                r = one(sdk, rows, keys, binary)
                got.setdefault((rows, keys, name), []).append(r["server_cpu_us_per_point"])
                print(f"rep {rep + 1} {rows}x{keys} {name}: {r['server_cpu_us_per_point']:.3f} us/point "
                      f"(sidecar {r['server_cpu_s']:.2f} s, loop {r['loop_s']:.2f} s)", flush=True)
    load1 = os.getloadavg()
    print(f"load average (1, 5, 15 min) before {load0}, after {load1}")
    for rows, keys in shapes:
        own, wb = got[(rows, keys, "runcore")], got[(rows, keys, "wandb-runcore")]
        ratio = statistics.median(wb) / statistics.median(own)
        print(f"{rows}x{keys}: LogStream {fmt(own)}, W&B {fmt(wb)}, ratio {ratio:.2f}x")
        if a.before:
            old = got[(rows, keys, "before")]
            print(f"{rows}x{keys}: W&B on --before {fmt(old)}, ratio {statistics.median(old) / statistics.median(own):.2f}x")


if __name__ == "__main__":
    main()
