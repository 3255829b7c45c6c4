"""Idle cost of open runs, side by side: CPU time, and counts (wake-ups, context
switches, system calls) that a busy machine sways less than it sways CPU time.

Starts each given `runcore serve` binary with `ingest --idle --runs N` holding N open
runs (a Heartbeat RPC per run every 15 s; system metrics at the default 15 s), and
optionally one idle wandb-core run (`sdk_worker.py idle --sdk wandb --runs 1`), all at
once. After a settling pause, for each window: the server's CPU (its threads'
schedstat time, so waiting for a core does not count), the times its threads were
put on a core (schedstat's run count: wake-ups), and context switches. Then, one
server at a time, `strace -c -f` for a window: system calls per minute, by name.

    python3 bench/idle_counts.py --ingest bench/.cache/bin/ingest \\
        --sidecar head=bench/.cache/bin/runcore --sidecar base=/tmp/base/runcore \\
        [--wandb-python bench/.cache/venv/bin/python] [--runs 100 --windows 3 --window-s 60]

Prints one line per window and setup, then the strace tables, then a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

from driver import Sidecar, proc_status_kib

BENCH = Path(__file__).resolve().parent


class TaskCounters:
    """Sums over a process's threads, each thread's last reading kept, so a thread
    that exits between two readings loses only what it did since the last one."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.last: Dict[str, List[int]] = {}

    def read(self) -> Dict[str, int]:
        """CPU ns, times put on a core, voluntary and involuntary context switches."""
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            tids = []
        for tid in tids:
            try:
                with open(f"/proc/{self.pid}/task/{tid}/schedstat") as f:
                    ns, _, runs = (int(v) for v in f.read().split()[:3])
                switches = {}
                with open(f"/proc/{self.pid}/task/{tid}/status") as f:
                    for line in f:
                        key, _, value = line.partition(":")
                        if key.endswith("ctxt_switches"):
                            switches[key] = int(value)
            except (OSError, ValueError):
                continue
            now = [ns, runs, switches.get("voluntary_ctxt_switches", 0),
                   switches.get("nonvoluntary_ctxt_switches", 0)]
            old = self.last.get(tid, now)
            self.last[tid] = [max(a, b) for a, b in zip(now, old)]
        keys = ("cpu_ns", "oncpu", "vol_cs", "invol_cs")
        return {k: sum(v[i] for v in self.last.values()) for i, k in enumerate(keys)}


def strace_counts(pid: int, seconds: float) -> Dict[str, int]:
    """System calls of every thread of `pid` over `seconds`, by name."""
    out = tempfile.NamedTemporaryFile(prefix="strace-", suffix=".txt", delete=False)
    out.close()
    proc = subprocess.Popen(["strace", "-c", "-f", "-o", out.name, "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    proc.send_signal(signal.SIGINT)  # strace detaches and writes its table
    proc.wait(60)
    counts: Dict[str, int] = {}
    row = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:(\d+)\s+)?(\w+)\s*$")
    with open(out.name) as f:
        for line in f:
            m = row.match(line)
            if m and m.group(3) != "total":
                counts[m.group(3)] = int(m.group(1))
    os.unlink(out.name)
    return counts


def wandb_env(tmp: Path) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNCORE_", "WANDB_"))}
    env.update({
        "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off",
        "WANDB_ERROR_REPORTING": "false", "WANDB_DISABLE_CODE": "true",
        "WANDB_DIR": str(tmp), "WANDB_CACHE_DIR": str(tmp / "cache"),
        "WANDB_CONFIG_DIR": str(tmp / "config"), "WANDB_DATA_DIR": str(tmp / "data"),
        "WANDB_ARTIFACT_DIR": str(tmp / "artifacts"),
    })
    return env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sidecar", action="append", required=True, metavar="NAME=BINARY")
    ap.add_argument("--ingest", required=True, help="the `ingest` bench binary")
    ap.add_argument("--wandb-python", help="a python with wandb installed: adds one idle wandb-core run")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--window-s", type=float, default=60.0)
    ap.add_argument("--settle-s", type=float, default=20.0)
    ap.add_argument("--strace-s", type=float, default=60.0, help="0: no strace")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="idle-counts-"))
    setups: Dict[str, Dict] = {}
    try:
        for spec in args.sidecar:
            name, binary = spec.split("=", 1)
            sc = Sidecar(Path(binary), root / name, runs=args.runs)
            client = subprocess.Popen([args.ingest, "--address", sc.address, "--idle", "--runs", str(args.runs)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            setups[name] = {"sidecar": sc, "client": client, "pid": sc.pid}
        if args.wandb_python:
            tmp = root / "wandb"
            tmp.mkdir()
            client = subprocess.Popen([args.wandb_python, str(BENCH / "sdk_worker.py"), "idle", "--sdk", "wandb",
                                       "--runs", "1", "--dir", str(tmp)], env=wandb_env(tmp),
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            setups["wandb-1"] = {"client": client}
        for name, s in setups.items():
            line = s["client"].stdout.readline()
            if not line.startswith("{"):
                raise SystemExit(f"{name}: the client did not get ready: {line!r}")
            s.setdefault("pid", json.loads(line).get("server_pid"))
            s["counters"] = TaskCounters(s["pid"])
        time.sleep(args.settle_s)
        results: Dict[str, Dict[str, List[float]]] = {k: {} for k in setups}
        last = {k: s["counters"].read() for k, s in setups.items()}
        for w in range(args.windows):
            with open("/proc/loadavg") as f:
                load = f.read().split()[0]
            time.sleep(args.window_s)
            for k, s in setups.items():
                now = s["counters"].read()
                per_min = {c: (now[c] - last[k][c]) * 60 / args.window_s for c in now}
                per_min["cpu_ms"] = per_min.pop("cpu_ns") / 1e6
                per_min["rss_mib"] = (proc_status_kib(s["pid"], "VmRSS") or 0) / 1024
                for c, v in per_min.items():
                    results[k].setdefault(c, []).append(v)
                last[k] = now
                print(f"window {w + 1} (load {load}) {k}: " + ", ".join(f"{c} {v:.1f}" for c, v in per_min.items()),
                      flush=True)
        if args.strace_s > 0:
            for k, s in setups.items():
                counts = strace_counts(s["pid"], args.strace_s)
                total = sum(counts.values()) * 60 / args.strace_s
                results[k]["syscalls_per_min"] = [total]
                top = sorted(counts.items(), key=lambda kv: -kv[1])[:12]
                print(f"strace {k}: {total:.0f} system calls/min; " +
                      ", ".join(f"{n} {c * 60 / args.strace_s:.0f}" for n, c in top), flush=True)
        print(json.dumps({"runs": args.runs, "window_s": args.window_s, "results": results}))
    finally:
        for s in setups.values():
            try:
                s["client"].stdin.close()
                s["client"].wait(120)
            except Exception:
                s["client"].kill()
            if "sidecar" in s:
                s["sidecar"].stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
