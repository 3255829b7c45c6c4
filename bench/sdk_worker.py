"""One repetition of a Python SDK scenario, for runcore or wandb alike; prints one JSON
object on stdout. bench/driver.py runs it in a fresh process per repetition, with
the environment bench/run.sh sets up (RUNCORE_BIN; WANDB_MODE=offline and the WANDB_*
directories under a temporary dir, so nothing leaves the machine).

    python bench/sdk_worker.py log --sdk runcore|wandb|wandb-runcore --rows 100000 --keys 10 --dir TMP
    python bench/sdk_worker.py log ... --gap-ms 2    # a pause after each call: a slower script
    python bench/sdk_worker.py log ... --pace-us 180  # calls no closer than 180 us apart (busy)
    python bench/sdk_worker.py startup --sdk runcore|wandb|wandb-runcore --dir TMP
    python bench/sdk_worker.py idle --sdk wandb --runs 100 --dir TMP   # until stdin closes

The same code drives both SDKs: `sdk.init(project=...)`, `run.log(dict)`,
`run.finish()`. `wandb-runcore` is the unchanged wandb SDK logging into runcore
through the W&B service protocol: the worker starts `runcore serve --wandb-listen`
itself in init (as runcore's client spawns its sidecar) and sets WANDB_SERVICE, so
no wandb-core runs. The sidecar (runcore) or wandb-core is the child process; its CPU (utime + stime) and peak RSS (VmHWM) are read from /proc while it is
still running, after finish(). Its transaction log is `run.wal` (runcore) or
`run-<id>.wandb` (wandb).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from typing import Any, Dict, List

CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_NAMES = ("runcore", "wandb-core")


def descendants(root: int) -> List[int]:
    """Pids of every live descendant of `root`."""
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out: List[int] = []
    todo = [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def proc_info(pid: int) -> Dict[str, Any]:
    """Name, CPU seconds and RSS of a process (None fields if it is gone)."""
    info: Dict[str, Any] = {"pid": pid, "name": None, "cpu_s": None, "rss_peak_kib": None, "rss_kib": None}
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
    except OSError:
        return info
    info["name"] = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat.rsplit(")", 1)[1].split()
    info["cpu_s"] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            info["rss_peak_kib"] = int(line.split()[1])
        elif line.startswith("VmRSS:"):
            info["rss_kib"] = int(line.split()[1])
    return info


def server() -> Dict[str, Any]:
    """The sidecar / wandb-core process among this process's descendants, plus the
    CPU of every descendant (any helper it started counts too)."""
    procs = [proc_info(p) for p in descendants(os.getpid())]
    procs = [p for p in procs if p["name"] and p["name"] != "ps"]
    main = next((p for p in procs if p["name"] in SERVER_NAMES), None)
    return {
        "pid": main["pid"] if main else None,
        "name": main["name"] if main else None,
        "cpu_s": sum(p["cpu_s"] for p in procs),
        "rss_peak_kib": main["rss_peak_kib"] if main else None,
        "rss_kib": main["rss_kib"] if main else None,
        "procs": len(procs),
    }


def import_sdk(name: str) -> Any:
    if name == "runcore":
        import runcore as sdk
    else:
        import wandb as sdk
    return sdk


#: The sidecar a `wandb-runcore` worker started.
_SIDECAR: List[Any] = []


def start_sidecar(tmp: str) -> str:
    """`runcore serve` with a W&B listener, as this process's child; returns the
    WANDB_SERVICE value for it."""
    import subprocess

    sock, port_file = os.path.join(tmp, "wandb.sock"), os.path.join(tmp, "wandb.addr")
    proc = subprocess.Popen(
        [os.environ["RUNCORE_BIN"], "serve", "--listen", "unix://" + os.path.join(tmp, "grpc.sock"),
         "--wandb-listen", "unix://" + sock, "--wandb-port-file", port_file,
         "--data-dir", os.path.join(tmp, "runcore-data"), "--parent-pid", str(os.getpid())],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _SIDECAR.append(proc)
    deadline = time.monotonic() + 30
    while not os.path.exists(port_file):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the runcore sidecar did not start")
        time.sleep(0.005)
    return f"3-{proc.pid}-unix-{sock}"


def stop_sidecar() -> None:
    import signal

    for proc in _SIDECAR:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def init(sdk: Any, name: str, tmp: str, **kw: Any) -> Any:
    if name == "runcore":
        settings = sdk.Settings(data_dir=os.path.join(tmp, "runcore-data"), quiet=True)
        return sdk.init(project="bench", settings=settings, **kw)
    if name == "wandb-runcore" and not _SIDECAR:
        os.environ["WANDB_SERVICE"] = start_sidecar(tmp)
    settings = sdk.Settings(silent=True, console="off")
    return sdk.init(project="bench", mode="offline", dir=tmp, settings=settings, **kw)


def teardown(sdk: Any) -> None:
    sdk.teardown()
    stop_sidecar()


def log_file_bytes(name: str, tmp: str) -> int:
    pattern = "wandb/**/*.wandb" if name == "wandb" else "runcore-data/**/run.wal"
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(tmp, pattern), recursive=True))


def scenario_log(a: argparse.Namespace) -> Dict[str, Any]:
    keys = [f"metric_{k}" for k in range(a.keys)]
    base = [(k, i * 0.1) for i, k in enumerate(keys)]
    # The loop builds a fresh dict per call, as training code does; its cost alone:
    t = time.perf_counter()
    for step in range(a.rows):
        x = step * 1e-3
        _ = {k: v + x for k, v in base}
    dict_s = time.perf_counter() - t

    t0 = time.perf_counter()
    sdk = import_sdk(a.sdk)
    t1 = time.perf_counter()
    run = init(sdk, a.sdk, a.dir)
    t2 = time.perf_counter()
    srv0 = server()
    cpu0 = time.process_time()
    pace, due = a.pace_us / 1e6, time.perf_counter()
    for step in range(a.rows):
        x = step * 1e-3
        if pace:
            # Busy, as an SDK's own Python work between calls would be.
            due += pace
            while time.perf_counter() < due:
                pass
        run.log({k: v + x for k, v in base})
        if a.gap_ms:
            time.sleep(a.gap_ms / 1e3)
    t3 = time.perf_counter()
    run.finish()
    t4 = time.perf_counter()
    cpu1 = time.process_time()
    srv1 = server()
    log_bytes = log_file_bytes(a.sdk, a.dir)
    points = a.rows * a.keys
    out = {
        "sdk": a.sdk,
        "version": getattr(sdk, "__version__", "?"),
        "rows": a.rows,
        "keys": a.keys,
        "points": points,
        "import_s": t1 - t0,
        "init_s": t2 - t1,
        "loop_s": t3 - t2,
        "calls_per_s": a.rows / (t3 - t2),
        "finish_s": t4 - t3,
        "total_s": t4 - t0,
        "dict_build_s": dict_s,
        "python_cpu_s": cpu1 - cpu0,
        "python_cpu_us_per_call": (cpu1 - cpu0) * 1e6 / a.rows,
        "server": srv1["name"],
        "server_cpu_s": srv1["cpu_s"] - srv0["cpu_s"],
        "server_cpu_total_s": srv1["cpu_s"],
        "server_cpu_us_per_point": (srv1["cpu_s"] - srv0["cpu_s"]) * 1e6 / points,
        "server_cpu_us_per_call": (srv1["cpu_s"] - srv0["cpu_s"]) * 1e6 / a.rows,
        "server_rss_peak_mib": (srv1["rss_peak_kib"] or 0) / 1024,
        "log_bytes": log_bytes,
        "log_bytes_per_point": log_bytes / points,
    }
    if a.sdk == "runcore":
        out["rows_committed"] = run.step
    teardown(sdk)
    return out


def scenario_startup(a: argparse.Namespace) -> Dict[str, Any]:
    t0 = time.perf_counter()
    sdk = import_sdk(a.sdk)
    t1 = time.perf_counter()
    run = init(sdk, a.sdk, a.dir)
    t2 = time.perf_counter()
    srv = server()
    run.finish()
    t3 = time.perf_counter()
    teardown(sdk)
    t4 = time.perf_counter()
    return {
        "sdk": a.sdk,
        "version": getattr(sdk, "__version__", "?"),
        "import_s": t1 - t0,
        "init_s": t2 - t1,
        "import_init_s": t2 - t0,
        "finish_s": t3 - t2,
        "teardown_s": t4 - t3,
        "server": srv["name"],
        "server_rss_after_init_mib": (srv["rss_kib"] or 0) / 1024,
    }


def scenario_idle(a: argparse.Namespace) -> None:
    sdk = import_sdk(a.sdk)
    runs = [init(sdk, a.sdk, a.dir, reinit="create_new") for _ in range(a.runs)]
    srv = server()
    print(json.dumps({"ready": True, "runs": len(runs), "server_pid": srv["pid"], "server": srv["name"]}), flush=True)
    sys.stdin.read()
    for r in runs:
        r.finish()
    teardown(sdk)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=["log", "startup", "idle"])
    p.add_argument("--sdk", choices=["runcore", "wandb", "wandb-runcore"], required=True)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--keys", type=int, default=10)
    p.add_argument("--gap-ms", type=float, default=0.0, help="log: sleep this long after each call")
    p.add_argument("--pace-us", type=float, default=0.0,
                   help="log: start each call this long after the previous one started, busy-waiting")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--dir", required=True, help="temporary directory for the run's files")
    a = p.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    if a.scenario == "idle":
        scenario_idle(a)
        return
    result = scenario_log(a) if a.scenario == "log" else scenario_startup(a)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
