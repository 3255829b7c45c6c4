"""Idle cost, side by side in one run: N open runs on runcore (one or more builds)
against one (or N) idle wandb runs, each sidecar's CPU per minute from its threads'
schedstat, the same way `bench/run.sh --only idle` measures it (bench/driver.py's
CpuWatch), but with any number of runcore builds beside each other so a change and
the build before it see the same machine.

    bench/.cache/venv/bin/python bench/idle_side.py --runcore new=PATH --runcore before=PATH \\
        [--runs 100] [--wandb-runs 1] [--windows 4] [--window-s 60] [--settle-s 15]

Each runcore build gets its own `runcore serve` (default flags, --fsync batch) and its
own `ingest --idle --runs N` (bench/.cache/bin/ingest: a Heartbeat RPC per run every
15 s, as the Python client sends); wandb's runs are held by `bench/sdk_worker.py idle`
in offline mode. Prints one line per window and a table of medians (min-max); the raw
windows go to --out. Not a test; figures are never assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from driver import CpuWatch, Sidecar, proc_status_kib, stop_idle_setups  # noqa: E402


def wandb_env(tmp: Path) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNCORE_", "WANDB_"))}
    env.update({
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_CONSOLE": "off",
        "WANDB_ERROR_REPORTING": "false",
        "WANDB_DISABLE_CODE": "true",
        "WANDB_DIR": str(tmp),
        "WANDB_CACHE_DIR": str(tmp / "cache"),
        "WANDB_CONFIG_DIR": str(tmp / "config"),
    })
    return env


def ready_pid(client: subprocess.Popen, name: str, fallback: int = 0) -> int:
    line = client.stdout.readline() if client.stdout else ""
    if not line.startswith("{"):
        raise RuntimeError(f"{name}: the client did not get ready: {line!r}")
    return int(json.loads(line).get("server_pid") or fallback)


def spread(values: List[float]) -> str:
    return f"**{statistics.median(values):.0f}** ms/min ({min(values):.0f}-{max(values):.0f})"


def main() -> None:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runcore", action="append", required=True, metavar="NAME=PATH",
                    help="a runcore binary to measure (repeat for several builds)")
    ap.add_argument("--ingest", default=str(here / ".cache/bin/ingest"))
    ap.add_argument("--transport", choices=["tcp", "unix"], default="tcp",
                    help="how ingest reaches each sidecar (the Python client's own sidecar listens on unix)")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--wandb-runs", type=int, default=1, help="0: no wandb column")
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--window-s", type=float, default=60.0)
    ap.add_argument("--settle-s", type=float, default=15.0)
    ap.add_argument("--out", default="")
    a = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="runcore-idle-"))
    setups: Dict[str, Dict[str, Any]] = {}
    try:
        for spec in a.runcore:
            name, _, path = spec.partition("=")
            tmp = root / name
            sc = Sidecar(Path(path), tmp, transport=a.transport, runs=a.runs)
            client = subprocess.Popen([a.ingest, "--address", sc.address, "--idle", "--runs", str(a.runs)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            setups[f"runcore {name} ({a.runs} runs, {a.transport})"] = {"sidecar": sc, "client": client, "pid": sc.pid}
        if a.wandb_runs:
            tmp = root / "wandb"
            tmp.mkdir()
            client = subprocess.Popen([sys.executable, str(here / "sdk_worker.py"), "idle", "--sdk", "wandb",
                                       "--runs", str(a.wandb_runs), "--dir", str(tmp)],
                                      env=wandb_env(tmp), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            setups[f"wandb ({a.wandb_runs} run{'s' if a.wandb_runs > 1 else ''})"] = {"client": client}
        for name, s in setups.items():
            s["pid"] = ready_pid(s["client"], name, s.get("pid", 0))
            s["watch"] = CpuWatch(s["pid"])
        time.sleep(a.settle_s)
        windows: Dict[str, List[Dict[str, float]]] = {k: [] for k in setups}
        start = {k: s["watch"].total_s() for k, s in setups.items()}
        for w in range(a.windows):
            time.sleep(a.window_s)
            load = os.getloadavg()[0]
            for k, s in setups.items():
                now = s["watch"].total_s()
                windows[k].append({"cpu_ms_per_min": (now - start[k]) * 60e3 / a.window_s,
                                   "rss_mib": (proc_status_kib(s["pid"], "VmRSS") or 0) / 1024, "load": load})
                start[k] = now
            print(f"window {w + 1}/{a.windows} (load {load:.1f}): " + ", ".join(
                f"{k} {windows[k][-1]['cpu_ms_per_min']:.0f} ms/min" for k in setups), flush=True)
        print("\n| setup | CPU per minute | RSS |\n|---|---|---|")
        for k, ws in windows.items():
            rss = statistics.median(x["rss_mib"] for x in ws)
            print(f"| {k} | {spread([x['cpu_ms_per_min'] for x in ws])} | {rss:.1f} MiB |")
        if a.out:
            Path(a.out).write_text(json.dumps({"args": vars(a), "windows": windows}, indent=1))
    finally:
        stop_idle_setups(setups)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
