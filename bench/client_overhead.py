"""What logging costs a training loop, per Python client (issue 20's figures).

    python bench/client_overhead.py drive --reps 5 [--pairs 10] [--block-steps 100] [--work-ms 2] [--out FILE.json]
    python bench/client_overhead.py worker loop|calls|startup --variant V ...   # one repetition

A "training step" here is a fixed amount of pure-Python work (a loop calibrated to
--work-ms on this machine, which never releases the GIL, like a CPU-bound step); each
step then logs 10 or 100 floats. Variants, each in a fresh process:

- ``none``: the same loop, the same dicts built, nothing logged (the baseline);
- ``runcore``: runcore's client with its native core (clients/python/src);
- ``runcore-py``: runcore's previous, pure-Python client (grpcio + protobuf), from a
  git checkout given by --py-client-src (bench/client.sh extracts commit e6f4cf7);
- ``wandb``: wandb in offline mode.

Each process times blocks of --block-steps steps without and with logging, alternated
(ABBA), after a warm-up block; a pair's overhead is its logging block's time over its
plain block's, minus one, and the report gives the median of every pair of every
process (and the interquartile range). Pairing within one process cancels the drift of
a shared machine's speed, which swamps a whole-process comparison; background work a
logging block leaves behind (wandb's Python threads, runcore's sender) may spill into
the next plain block, which can only make an overhead look smaller. The ``none``
variant times two plain blocks per pair: its spread is the harness's own noise.
Processes alternate the variants' order. ``calls`` measures the caller's own CPU
(the calling thread's CPU time, ``time.thread_time``) per ``log()`` of 10 floats, and the
process's peak RSS (VmHWM); ``startup`` times ``import`` + ``init()`` in a fresh process
and notes whether grpc or protobuf got imported. bench/client.sh sets up the interpreters and the sidecar.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

VARIANTS = ("none", "runcore", "runcore-py", "wandb")


def work(n: int) -> int:
    """The stand-in training step: n iterations of pure-Python arithmetic."""
    acc = 0
    for i in range(n):
        acc = (acc + i * 7) % 1000003
    return acc


def calibrate(work_ms: float) -> int:
    """Iterations of work() that take work_ms on this machine (median of 15)."""
    n = 20000
    for _ in range(3):
        samples = []
        for _ in range(15):
            t = time.perf_counter()
            work(n)
            samples.append(time.perf_counter() - t)
        n = max(1, int(n * (work_ms / 1000) / statistics.median(samples)))
    return n


def vm_hwm_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def open_run(variant: str, tmp: str) -> Any:
    if variant in ("runcore", "runcore-py"):
        import runcore

        settings = runcore.Settings(data_dir=os.path.join(tmp, "runcore-data"), quiet=True)
        return runcore, runcore.init(project="bench", settings=settings)
    import wandb

    settings = wandb.Settings(silent=True, console="off")
    return wandb, wandb.init(project="bench", mode="offline", dir=tmp, settings=settings)


def startup(a: argparse.Namespace) -> Dict[str, Any]:
    """import + init() + finish() of an empty run, as a user's script starts."""
    t0 = time.perf_counter()
    sdk, run = open_run(a.variant, a.dir)
    t1 = time.perf_counter()
    run.finish()
    t2 = time.perf_counter()
    imported = sorted(m for m in ("grpc", "google.protobuf") if m in sys.modules)
    if hasattr(sdk, "teardown"):
        sdk.teardown()
    return {"variant": a.variant, "import_init_s": t1 - t0, "finish_s": t2 - t1, "imported": imported}


def block(a: argparse.Namespace, keys: List[str], log: Any, first: int) -> float:
    """Seconds for a.block_steps steps: the work, a fresh dict of floats per step,
    and log(dict) when ``log`` is given."""
    t = time.perf_counter()
    for step in range(first, first + a.block_steps):
        work(a.work_iters)
        x = step * 1e-3
        row = {k: x + i for i, k in enumerate(keys)}
        if log is not None:
            log(row)
    return time.perf_counter() - t


def paired_blocks(a: argparse.Namespace, keys: List[str], log: Any) -> List[float]:
    """Blocks of steps without and with logging, alternated in one process (ABBA...),
    so that drift in the machine's speed hits both; one ratio - 1 per pair. With
    ``log`` None (the baseline variant) both blocks of a pair are the same: the
    spread is the harness's own noise."""
    step = 0
    block(a, keys, None, step)  # warm-up
    out = []
    for pair in range(a.pairs):
        order = (None, log) if pair % 2 == 0 else (log, None)
        times = {}
        for which, fn in zip("ab" if pair % 2 == 0 else "ba", order):
            step += a.block_steps
            times[which] = block(a, keys, fn, step)
        out.append(times["b"] / times["a"] - 1)
    return out


def worker(a: argparse.Namespace) -> Dict[str, Any]:
    if a.mode == "startup":
        return startup(a)
    keys = [f"metric_{k}" for k in range(a.keys)]
    sdk: Any = None
    run: Any = None
    t0 = time.perf_counter()
    if a.variant != "none":
        sdk, run = open_run(a.variant, a.dir)
    t1 = time.perf_counter()
    out: Dict[str, Any] = {"variant": a.variant, "keys": a.keys, "init_s": t1 - t0}
    if a.mode == "loop":
        out["pairs"] = paired_blocks(a, keys, run.log if run is not None else None)
    else:
        rows = [{k: (step + i) * 1e-3 for i, k in enumerate(keys)} for step in range(1000)]
        log = run.log if run is not None else (lambda row: None)
        t = time.perf_counter()
        cpu = time.thread_time()
        for step in range(a.steps):
            log(rows[step % 1000])
        out["caller_cpu_per_log_us"] = (time.thread_time() - cpu) / a.steps * 1e6
        out["wall_per_log_us"] = (time.perf_counter() - t) / a.steps * 1e6
    t = time.perf_counter()
    if run is not None:
        run.finish()
    out["finish_s"] = time.perf_counter() - t
    out["rss_peak_mib"] = vm_hwm_kib() / 1024
    if sdk is not None and hasattr(sdk, "teardown"):
        sdk.teardown()
    return out


def run_worker(a: argparse.Namespace, variant: str, mode: str, keys: int, steps: int) -> Dict[str, Any]:
    env = dict(os.environ)
    python = a.python
    if variant == "wandb":
        python = a.wandb_python
        env["WANDB_MODE"] = "offline"
    if variant == "runcore-py":
        env["PYTHONPATH"] = a.py_client_src
    elif variant == "runcore":
        env["PYTHONPATH"] = a.client_src
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        env["WANDB_DIR"] = env["WANDB_CACHE_DIR"] = env["WANDB_CONFIG_DIR"] = tmp
        cmd = [python, os.path.abspath(__file__), "worker", mode, "--variant", variant, "--keys", str(keys),
               "--steps", str(steps), "--work-iters", str(a.work_iters), "--dir", tmp,
               "--pairs", str(a.pairs), "--block-steps", str(a.block_steps)]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if p.returncode != 0:
            raise RuntimeError(f"{variant} {mode} failed:\n{p.stderr[-3000:]}")
        return json.loads(p.stdout.strip().splitlines()[-1])


def med(xs: List[float]) -> str:
    return f"{statistics.median(xs):.4g} ({min(xs):.4g}–{max(xs):.4g})"


def drive(a: argparse.Namespace) -> None:
    a.work_iters = calibrate(a.work_ms)
    variants = [v for v in VARIANTS if v in a.variants.split(",")]
    loops: Dict[tuple, List[Dict[str, Any]]] = {}
    calls: Dict[str, List[Dict[str, Any]]] = {}
    starts: Dict[str, List[Dict[str, Any]]] = {}
    load = []
    modes = a.modes.split(",")
    for rep in range(a.reps):
        order = variants[rep % len(variants):] + variants[: rep % len(variants)]
        load.append(os.getloadavg()[0])
        if "loop" in modes:
            for keys in (10, 100):
                for v in order:
                    loops.setdefault((v, keys), []).append(run_worker(a, v, "loop", keys, 0))
        for v in order:
            if v == "none":
                continue
            if "calls" in modes:
                calls.setdefault(v, []).append(run_worker(a, v, "calls", 10, a.calls))
            if "startup" in modes:
                starts.setdefault(v, []).append(run_worker(a, v, "startup", 0, 0))
        print(f"rep {rep + 1}/{a.reps} done (load {load[-1]:.2f})", file=sys.stderr)
    report = {"work_iters": a.work_iters, "work_ms": a.work_ms, "pairs": a.pairs, "block_steps": a.block_steps,
              "reps": a.reps,
              "load": load, "loops": {f"{v}/{k}": r for (v, k), r in loops.items()}, "calls": calls,
              "startup": starts}
    if a.out:
        with open(a.out, "w") as f:
            json.dump(report, f, indent=1)
    print(render(report, variants))


def render(r: Dict[str, Any], variants: List[str]) -> str:
    lines = [f"Steps of {r['work_ms']} ms of Python work ({r['work_iters']} iterations); per process "
             f"{r['pairs']} pairs of {r['block_steps']}-step blocks without and with logging, alternated; "
             f"{r['reps']} processes per variant (variants alternating); 1-min load "
             f"{min(r['load']):.2f}–{max(r['load']):.2f}", ""]
    if r["loops"]:
        lines += ["| keys per step | variant | overhead of logging: median of all pairs (interquartile range) | finish(), s | peak RSS, MiB |",
                  "|---|---|---|---|---|", *loop_rows(r, variants), ""]
    if r["calls"]:
        lines += ["| variant | caller CPU per log() of 10 floats, µs | wall per log(), µs | peak RSS, MiB |", "|---|---|---|---|"]
        for v, xs in r["calls"].items():
            lines.append(f"| {v} | {med([x['caller_cpu_per_log_us'] for x in xs])} | "
                         f"{med([x['wall_per_log_us'] for x in xs])} | {med([x['rss_peak_mib'] for x in xs])} |")
        lines.append("")
    if r["startup"]:
        lines += ["| variant | import + init(), s | imports grpc / protobuf |", "|---|---|---|"]
        for v, xs in r["startup"].items():
            lines.append(f"| {v} | {med([x['import_init_s'] for x in xs])} | {', '.join(xs[0]['imported']) or 'neither'} |")
        wandb = [x["import_init_s"] for x in r["startup"].get("wandb", [])]
        for v, xs in r["startup"].items():
            if wandb and v != "wandb":
                # Each repetition starts every variant in turn: its own ratio shows
                # how much the machine's drift moves the figure.
                ratios = [w / x["import_init_s"] for w, x in zip(wandb, xs)]
                ratio = statistics.median(wandb) / statistics.median(x["import_init_s"] for x in xs)
                lines.append(f"\nwandb's import + init() / {v}'s: {ratio:.1f}x (medians); per repetition "
                             f"{med(ratios)}")
    return "\n".join(lines)


def loop_rows(r: Dict[str, Any], variants: List[str]) -> List[str]:
    lines = []
    for keys in (10, 100):
        for v in variants:
            xs = r["loops"][f"{v}/{keys}"]
            pairs = sorted(p for x in xs for p in x["pairs"])
            q = statistics.quantiles(pairs, n=4)
            lines.append(f"| {keys} | {v} | {statistics.median(pairs) * 100:+.2f} % ({q[0] * 100:+.2f}…{q[2] * 100:+.2f}) | "
                         f"{med([x['finish_s'] for x in xs])} | {med([x['rss_peak_mib'] for x in xs])} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("drive")
    d.add_argument("--reps", type=int, default=5)
    d.add_argument("--pairs", type=int, default=10, help="pairs of blocks per process")
    d.add_argument("--block-steps", type=int, default=100)
    d.add_argument("--calls", type=int, default=100000)
    d.add_argument("--work-ms", type=float, default=2.0)
    d.add_argument("--variants", default=",".join(VARIANTS))
    d.add_argument("--modes", default="loop,calls,startup",
                   help="what to measure: loop (overhead in a training loop), calls (CPU per log()), "
                        "startup (import + init()); e.g. --modes startup --reps 15")
    d.add_argument("--python", default=sys.executable, help="interpreter for none/runcore/runcore-py")
    d.add_argument("--wandb-python", default=sys.executable)
    d.add_argument("--client-src", required=True, help="clients/python/src (the native client)")
    d.add_argument("--py-client-src", default="", help="src of the pure-Python client")
    d.add_argument("--out", default="")
    w = sub.add_parser("worker")
    w.add_argument("mode", choices=["loop", "calls", "startup"])
    w.add_argument("--variant", choices=VARIANTS, required=True)
    w.add_argument("--keys", type=int, default=10)
    w.add_argument("--steps", type=int, default=0)
    w.add_argument("--pairs", type=int, default=10)
    w.add_argument("--block-steps", type=int, default=100)
    w.add_argument("--work-iters", type=int, default=0)
    w.add_argument("--dir", required=True)
    a = p.parse_args()
    if a.cmd == "drive":
        drive(a)
    else:
        print(json.dumps(worker(a)))


if __name__ == "__main__":
    main()
