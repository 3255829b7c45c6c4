"""Runs the benchmark scenarios and writes docs/BENCHMARKS.md. Started by bench/run.sh,
which builds the venv and the binaries first; see that file for the options.

Every repetition is a fresh process (a fresh sidecar or wandb-core); runcore and
wandb repetitions alternate (runcore first on even repetitions, wandb first on odd
ones), so drift in the machine's load hits both. Figures are the median and the
min-max over the repetitions; a ratio is the ratio of the two medians of the same
run. Raw results go to bench/.cache/results/.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

SCENARIOS = ["startup", "narrow", "wide", "ingest", "idle", "sampler", "micro", "profile"]
SDKS = ("runcore", "wandb", "wandb-runcore")
#: What each SDK's Python import is (the unchanged wandb SDK on runcore imports wandb).
IMPORTS = {"runcore": "runcore", "wandb": "wandb"}


@dataclasses.dataclass(frozen=True)
class Plan:
    reps: int
    startup_reps: int
    narrow_rows: int
    wide_rows: int
    wide_keys: int
    ingest_points: int
    idle_runs: int
    idle_windows: int
    idle_window_s: float
    idle_settle_s: float
    sampler_reps: int
    profile_points: int
    profile_idle_s: float


FULL = Plan(
    reps=5,
    startup_reps=7,
    narrow_rows=100_000,
    wide_rows=1000,
    wide_keys=1000,
    ingest_points=5_000_000,
    idle_runs=100,
    idle_windows=5,
    idle_window_s=60.0,
    idle_settle_s=10.0,
    sampler_reps=5,
    profile_points=300_000,
    profile_idle_s=30.0,
)
QUICK = Plan(
    reps=2,
    startup_reps=2,
    narrow_rows=10_000,
    wide_rows=100,
    wide_keys=1000,
    ingest_points=500_000,
    idle_runs=100,
    idle_windows=2,
    idle_window_s=5.0,
    idle_settle_s=2.0,
    sampler_reps=1,
    profile_points=50_000,
    profile_idle_s=5.0,
)

# Raw ingest configurations: name -> (runs, transport, fsync, batches in flight,
# shared: the runs are writers of one shared run).
INGEST = {
    "tcp-1": (1, "tcp", "batch", 32, False),
    "tcp-16": (16, "tcp", "batch", 32, False),
    "tcp-1-always": (1, "tcp", "always", 32, False),
    "tcp-16-always": (16, "tcp", "always", 32, False),
    "unix-1": (1, "unix", "batch", 32, False),
    "tcp-1-if4": (1, "tcp", "batch", 4, False),
    "unix-1-if4": (1, "unix", "batch", 4, False),
    "tcp-8": (8, "tcp", "batch", 32, False),
    "tcp-8-shared": (8, "tcp", "batch", 32, True),
}


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------
# Statistics and formatting


def summarize(values: Iterable[Optional[float]]) -> Optional[Dict[str, float]]:
    vs = [float(v) for v in values if v is not None]
    if not vs:
        return None
    return {"median": statistics.median(vs), "min": min(vs), "max": max(vs), "n": len(vs)}


def num(v: Optional[float], digits: int = 3) -> str:
    """A number with `digits` significant digits, thousands separated."""
    if v is None:
        return "n/a"
    if v == 0:
        return "0"
    mag = abs(v)
    if mag >= 10 ** digits:
        return f"{v:,.0f}"
    decimals = max(0, digits - 1 - int(f"{mag:e}".split("e")[1]))
    return f"{v:,.{decimals}f}"


def cell(s: Optional[Dict[str, float]], unit: str = "") -> str:
    if not s:
        return "n/a"
    u = f" {unit}" if unit else ""
    if s["n"] == 1:
        return f"{num(s['median'])}{u}"
    return f"**{num(s['median'])}**{u} ({num(s['min'])}–{num(s['max'])})"


def advantage(rc: Optional[Dict[str, float]], peer: Optional[Dict[str, float]], better: str) -> Optional[float]:
    """How many times better runcore's median is (>1: runcore better)."""
    if not rc or not peer or rc["median"] == 0 or peer["median"] == 0:
        return None
    r = rc["median"] / peer["median"]
    return r if better == "higher" else 1 / r


def adv_cell(a: Optional[float]) -> str:
    if a is None:
        return "—"
    return f"{num(a)}×"


# --------------------------------------------------------------------------------
# Processes


def proc_cpu_s(pid: int) -> Optional[float]:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_user_sys_s(pid: int) -> Tuple[float, float]:
    """User and system CPU seconds of a process (10 ms ticks)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return (0.0, 0.0)
    tck = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) / tck, int(fields[12]) / tck)


def proc_status_kib(pid: int, field: str) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class CpuWatch:
    """CPU time of a process from its threads' /proc/PID/task/TID/schedstat (ns),
    sampled every 0.5 s so a thread that exits loses at most its last half second.
    Finer than utime+stime's 10 ms ticks, which matters for idle processes."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.last: Dict[str, int] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.sample()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def sample(self) -> None:
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return
        for tid in tids:
            try:
                with open(f"/proc/{self.pid}/task/{tid}/schedstat") as f:
                    ns = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            with self.lock:
                self.last[tid] = max(ns, self.last.get(tid, 0))

    def loop(self) -> None:
        while not self.stopped.wait(0.5):
            self.sample()

    def total_s(self) -> float:
        self.sample()
        with self.lock:
            return sum(self.last.values()) / 1e9

    def stop(self) -> None:
        self.stopped.set()


def stop_idle_setups(setups: Dict[str, Dict[str, Any]]) -> None:
    """Ends idle setups: each CPU watch, each client (its stdin closed: it finishes
    its runs; killed if it does not end in 120 s) and each sidecar the driver started."""
    for s in setups.values():
        if "watch" in s:
            s["watch"].stop()
        c = s["client"]
        try:
            c.stdin.close()
            c.wait(120)
        except Exception:
            c.kill()
        if "sidecar" in s:
            s["sidecar"].stop()


class Sidecar:
    """A `runcore serve` the driver starts (raw ingest, idle, profiles)."""

    def __init__(self, binary: Path, tmp: Path, fsync: str = "batch", transport: str = "tcp", wrapper: Sequence[str] = (),
                 runs: int = 1) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        port = tmp / "port"
        listen = f"unix://{tmp}/s.sock" if transport == "unix" else "tcp://127.0.0.1:0"
        self.args = [*wrapper, str(binary), "serve", "--listen", listen, "--port-file", str(port),
                     "--data-dir", str(tmp / "data"), "--fsync", fsync]
        self.log_path = tmp / "sidecar.log"
        # Only the flags above and defaults: none of the caller's RUNCORE_* settings.
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNCORE_")}
        # One benchmark client may hold more runs than the default per-client cap
        # (64); a sidecar without that setting ignores the variable.
        env["RUNCORE_MAX_RUNS_PER_CLIENT"] = str(max(64, runs))
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                         env=env)
        deadline = time.monotonic() + (300 if wrapper else 60)
        while True:
            if port.exists() and port.read_text().strip():
                self.address = port.read_text().strip()
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sidecar did not start: {' '.join(self.args)}\n{self.log_tail()}")
            time.sleep(0.01)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --------------------------------------------------------------------------------
# The run


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.repo = Path(args.repo)
        self.cache = Path(args.cache)
        self.plan = QUICK if args.quick else FULL
        self.quick = args.quick
        self.only = [s for s in (args.only or ",".join(SCENARIOS)).split(",") if s]
        for s in self.only:
            if s not in SCENARIOS:
                raise SystemExit(f"bench: unknown scenario {s!r}; scenarios: {', '.join(SCENARIOS)}")
        self.note = args.note
        self.bin = self.cache / "bin"
        self.py = sys.executable
        self.worker = self.repo / "bench" / "sdk_worker.py"
        self.tmp_root = self.cache / "tmp"
        shutil.rmtree(self.tmp_root, ignore_errors=True)
        self.tmp_root.mkdir(parents=True)
        self.home = self.tmp_root / "wandb-home"
        self.results: Dict[str, Any] = {}
        self.loads: List[Tuple[str, float]] = []
        self.started = time.time()

    # -- helpers ------------------------------------------------------------------

    def rel(self, p: Path) -> str:
        try:
            return str(Path(p).relative_to(self.repo))
        except ValueError:
            return str(p)

    def env(self, tmp: Optional[Path] = None) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNCORE_", "WANDB_"))}
        wandb_dir = str(tmp or self.tmp_root)
        env.update({
            "RUNCORE_BIN": str(self.bin / "runcore"),
            "RUNCORE_SILENT": "1",
            "WANDB_MODE": "offline",
            "WANDB_SILENT": "true",
            "WANDB_CONSOLE": "off",
            "WANDB_ERROR_REPORTING": "false",
            "WANDB_DISABLE_CODE": "true",
            "WANDB_DIR": wandb_dir,
            "WANDB_CACHE_DIR": str(self.home / "cache"),
            "WANDB_CONFIG_DIR": str(self.home / "config"),
            "WANDB_DATA_DIR": str(self.home / "data"),
            "WANDB_ARTIFACT_DIR": str(self.home / "artifacts"),
        })
        return env

    def tmp(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.tmp_root))

    def load(self, label: str) -> None:
        with open("/proc/loadavg") as f:
            self.loads.append((label, float(f.read().split()[0])))

    def run_json(self, cmd: List[str], env: Optional[Dict[str, str]] = None, timeout: float = 900) -> Tuple[Dict[str, Any], float]:
        t = time.perf_counter()
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
        wall = time.perf_counter() - t
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stderr[-3000:]}")
        lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
        if not lines:
            raise RuntimeError(f"{' '.join(cmd)} printed no result:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
        return json.loads(lines[-1]), wall

    def sdk_reps(self, name: str, reps: int, make_cmd: Callable[[str, Path], List[str]]) -> Dict[str, List[Dict[str, Any]]]:
        """`reps` alternating repetitions of a worker command per SDK."""
        out: Dict[str, List[Dict[str, Any]]] = {s: [] for s in SDKS}
        for rep in range(reps):
            order = SDKS if rep % 2 == 0 else SDKS[::-1]
            for sdk in order:
                tmp = self.tmp(f"{name}-{sdk}")
                self.load(f"{name} {sdk} {rep}")
                r, wall = self.run_json(make_cmd(sdk, tmp), env=self.env(tmp))
                r["process_s"] = wall
                out[sdk].append(r)
                log(f"{name} rep {rep + 1}/{reps} {sdk}: " + ", ".join(
                    f"{k}={num(r[k])}" for k in ("calls_per_s", "import_init_s", "finish_s", "server_cpu_s", "server_rss_peak_mib") if k in r))
                shutil.rmtree(tmp, ignore_errors=True)
        return out

    # -- scenarios ----------------------------------------------------------------

    def worker_cmd(self, scenario: str, sdk: str, tmp: Path, *extra: str, rel: bool = False) -> List[str]:
        py = self.rel(Path(self.py)) if rel else self.py
        worker = self.rel(self.worker) if rel else str(self.worker)
        return [py, worker, scenario, "--sdk", sdk, *extra, "--dir", str(tmp)]

    def startup(self) -> None:
        reps = self.plan.startup_reps
        log(f"start-up: init() and finish() of an empty run, {reps} alternating repetitions")
        runs = self.sdk_reps("startup", reps, lambda sdk, tmp: self.worker_cmd("startup", sdk, tmp))
        self.results["startup"] = {"reps": runs, "cmd": self.worker_cmd("startup", "{runcore|wandb|wandb-runcore}", Path("TMPDIR"), rel=True)}

    def sdk_log(self, name: str, rows: int, keys: int) -> None:
        reps = self.plan.reps
        log(f"{name}: {rows:,} run.log calls of {keys} scalars, {reps} alternating repetitions")
        extra = ("--rows", str(rows), "--keys", str(keys))
        runs = self.sdk_reps(name, reps, lambda sdk, tmp: self.worker_cmd("log", sdk, tmp, *extra))
        self.results[name] = {"reps": runs, "rows": rows, "keys": keys,
                              "cmd": self.worker_cmd("log", "{runcore|wandb|wandb-runcore}", Path("TMPDIR"), *extra, rel=True)}

    def ingest_cmd(self, address: str, pid: Any, runs: int, in_flight: int, points: int, rel: bool = False,
                   shared: bool = False) -> List[str]:
        exe = self.rel(self.bin / "ingest") if rel else str(self.bin / "ingest")
        return [exe, "--address", address, "--sidecar-pid", str(pid), "--runs", str(runs),
                "--points", str(points), "--keys", "10", "--rows-per-batch", "1000", "--in-flight", str(in_flight),
                *(["--shared"] if shared else []), "--json"]

    def ingest(self) -> None:
        reps, points = self.plan.reps, self.plan.ingest_points
        log(f"raw ingest: {points:,} points per repetition, {len(INGEST)} configurations x {reps}")
        out: Dict[str, List[Dict[str, Any]]] = {k: [] for k in INGEST}
        names = list(INGEST)
        for rep in range(reps):
            for name in (names if rep % 2 == 0 else names[::-1]):
                runs, transport, fsync, in_flight, shared = INGEST[name]
                tmp = self.tmp(f"ingest-{name}")
                self.load(f"ingest {name} {rep}")
                sc = Sidecar(self.bin / "runcore", tmp, fsync=fsync, transport=transport)
                try:
                    r, _ = self.run_json(self.ingest_cmd(sc.address, sc.pid, runs, in_flight, points, shared=shared))
                finally:
                    sc.stop()
                out[name].append(r)
                log(f"ingest rep {rep + 1}/{reps} {name}: {num(r['points_per_s'])} points/s, "
                    f"sidecar {num(r['sidecar_cpu_us_per_point'])} µs/point, RSS {num(r['sidecar_rss_peak_kib'] / 1024)} MiB")
                shutil.rmtree(tmp, ignore_errors=True)
        self.results["ingest"] = {"configs": out, "points": points}

    def idle(self) -> None:
        p = self.plan
        log(f"idle: 1 and {p.idle_runs} open runs, runcore and wandb side by side, "
            f"{p.idle_windows} windows of {p.idle_window_s:.0f} s")
        setups: Dict[str, Dict[str, Any]] = {}
        try:
            for n in (1, p.idle_runs):
                tmp = self.tmp(f"idle-runcore-{n}")
                sc = Sidecar(self.bin / "runcore", tmp, runs=n)
                client = subprocess.Popen([str(self.bin / "ingest"), "--address", sc.address, "--idle", "--runs", str(n)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                setups[f"runcore-{n}"] = {"sidecar": sc, "client": client, "pid": sc.pid, "tmp": tmp}
                tmp = self.tmp(f"idle-wandb-{n}")
                client = subprocess.Popen(self.worker_cmd("idle", "wandb", tmp, "--runs", str(n)), env=self.env(tmp),
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                setups[f"wandb-{n}"] = {"client": client, "tmp": tmp}
            for name, s in setups.items():
                line = s["client"].stdout.readline()
                if not line.startswith("{"):
                    raise RuntimeError(f"idle {name}: the client did not get ready: {line!r}")
                ready = json.loads(line)
                s.setdefault("pid", ready.get("server_pid"))
                if not s["pid"]:
                    raise RuntimeError(f"idle {name}: no server process found")
                s["watch"] = CpuWatch(s["pid"])
            time.sleep(p.idle_settle_s)
            windows: Dict[str, List[Dict[str, float]]] = {k: [] for k in setups}
            start = {k: s["watch"].total_s() for k, s in setups.items()}
            ticks = {k: proc_user_sys_s(s["pid"]) for k, s in setups.items()}
            for w in range(p.idle_windows):
                self.load(f"idle window {w}")
                time.sleep(p.idle_window_s)
                for k, s in setups.items():
                    now = s["watch"].total_s()
                    user, system = proc_user_sys_s(s["pid"])
                    windows[k].append({
                        "user_s": user - ticks[k][0],
                        "sys_s": system - ticks[k][1],
                        "cpu_s": now - start[k],
                        "cpu_s_per_min": (now - start[k]) * 60 / p.idle_window_s,
                        "rss_mib": (proc_status_kib(s["pid"], "VmRSS") or 0) / 1024,
                        "rss_peak_mib": (proc_status_kib(s["pid"], "VmHWM") or 0) / 1024,
                    })
                    start[k] = now
                    ticks[k] = (user, system)
                log(f"idle window {w + 1}/{p.idle_windows}: " + ", ".join(
                    f"{k} {num(windows[k][-1]['cpu_s_per_min'] * 1000)} ms/min {num(windows[k][-1]['rss_mib'])} MiB" for k in setups))
            self.results["idle"] = {"windows": windows, "runs": p.idle_runs, "window_s": p.idle_window_s}
        finally:
            stop_idle_setups(setups)
            for s in setups.values():
                shutil.rmtree(s["tmp"], ignore_errors=True)

    def sampler(self) -> None:
        reps = self.plan.sampler_reps
        log(f"system sampler: cargo bench --bench monitor_sample, {reps} repetitions")
        pat = re.compile(r"^(.*?)\s+(\d+) metrics\s+cpu\s+([\d.]+) µs/sample")
        out: Dict[str, List[float]] = {}
        metrics: Dict[str, int] = {}
        for rep in range(reps):
            self.load(f"sampler {rep}")
            p = subprocess.run([str(self.bin / "monitor_sample")], capture_output=True, text=True, timeout=600, cwd=self.tmp_root)
            if p.returncode != 0:
                raise RuntimeError(f"monitor_sample exited {p.returncode}: {p.stderr[-2000:]}")
            for line in p.stdout.splitlines():
                m = pat.match(line)
                if m:
                    out.setdefault(m.group(1).strip(), []).append(float(m.group(3)))
                    metrics[m.group(1).strip()] = int(m.group(2))
        self.results["sampler"] = {"configs": out, "metrics": metrics}

    def micro(self) -> None:
        log("micro-benchmarks: cargo bench --bench hot_paths")
        self.load("micro")
        cmd = [str(self.bin / "hot_paths"), "--json"] + (["--quick"] if self.quick else [])
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=self.tmp_root)
        if p.returncode != 0:
            raise RuntimeError(f"hot_paths exited {p.returncode}: {p.stderr[-2000:]}")
        self.results["micro"] = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]

    def profile(self) -> None:
        prof: Dict[str, Any] = {}
        # Python imports: what `import` costs, by module.
        for sdk in IMPORTS:
            p = subprocess.run([self.py, "-X", "importtime", "-c", f"import {sdk}"], capture_output=True, text=True,
                               env=self.env(), timeout=300)
            prof[f"import-{sdk}"] = parse_importtime(p.stderr)
        if not (shutil.which("valgrind") and shutil.which("callgrind_annotate") and shutil.which("callgrind_control")):
            log("profile: valgrind not found; no callgrind profiles")
            self.results["profile"] = prof
            return
        out_dir = self.cache / "profile"
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)
        # The sidecar under callgrind while a client streams into it.
        points = self.plan.profile_points
        log(f"profile: the sidecar under valgrind --tool=callgrind, {points:,} points through LogStream")
        tmp = self.tmp("profile-ingest")
        out = out_dir / "callgrind.out.ingest"
        wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        sc = Sidecar(self.bin / "runcore", tmp, wrapper=wrapper)
        try:
            r, _ = self.run_json(self.ingest_cmd(sc.address, sc.pid, 1, 32, points), timeout=1800)
        finally:
            sc.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        exclusive = annotate(out, inclusive=False)
        prof["callgrind-ingest"] = {
            "points": r["points"],
            "file": self.rel(out),
            "exclusive": [(p, short(n)) for p, n in exclusive[:15]],
            "crates": by_crate(exclusive)[:10],
            "inclusive": [(p, short(n)) for p, n in annotate(out, inclusive=True) if n.lstrip("<").startswith("runcore::")][:12],
        }
        # The sidecar under callgrind with idle open runs: instrumentation only
        # while they idle (not while they open or finish).
        n, secs = self.plan.idle_runs, self.plan.profile_idle_s
        log(f"profile: the sidecar under callgrind with {n} idle runs, {secs:.0f} s")
        tmp = self.tmp("profile-idle")
        out = out_dir / "callgrind.out.idle"
        wrapper = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
        sc = Sidecar(self.bin / "runcore", tmp, wrapper=wrapper, runs=n)
        client = subprocess.Popen([str(self.bin / "ingest"), "--address", sc.address, "--idle", "--runs", str(n)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            client.stdout.readline()
            time.sleep(3)
            subprocess.run(["callgrind_control", "-i", "on", str(sc.pid)], capture_output=True, cwd=tmp, timeout=120)
            time.sleep(secs)
            subprocess.run(["callgrind_control", "-d", str(sc.pid)], capture_output=True, cwd=tmp, timeout=120)
            subprocess.run(["callgrind_control", "-i", "off", str(sc.pid)], capture_output=True, cwd=tmp, timeout=120)
        finally:
            client.stdin.close()
            client.wait(300)
            sc.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        dump = newest_dump(out)
        if dump:
            exclusive = annotate(dump, inclusive=False)
            prof["callgrind-idle"] = {
                "runs": n,
                "seconds": secs,
                "file": self.rel(dump),
                "exclusive": [(p, short(n)) for p, n in exclusive[:12]],
                "crates": by_crate(exclusive)[:8],
                "inclusive": [(p, short(n)) for p, n in annotate(dump, inclusive=True) if n.lstrip("<").startswith("runcore::")][:14],
            }
        self.results["profile"] = prof

    # -- driving ------------------------------------------------------------------

    def run(self) -> None:
        cpu0, other0 = machine_busy_s(), children_cpu_s()
        steps: List[Tuple[str, Callable[[], None]]] = [
            ("startup", self.startup),
            ("narrow", lambda: self.sdk_log("narrow", self.plan.narrow_rows, 10)),
            ("wide", lambda: self.sdk_log("wide", self.plan.wide_rows, self.plan.wide_keys)),
            ("ingest", self.ingest),
            ("idle", self.idle),
            ("sampler", self.sampler),
            ("micro", self.micro),
            ("profile", self.profile),
        ]
        for name, step in steps:
            if name in self.only:
                t = time.perf_counter()
                step()
                log(f"{name} took {time.perf_counter() - t:.0f} s")
        elapsed = time.time() - self.started
        busy = machine_busy_s() - cpu0
        mine = children_cpu_s() - other0 + sum(os.times()[:2])
        self.results["run"] = {
            "started_utc": datetime.datetime.fromtimestamp(self.started, datetime.timezone.utc).isoformat(),
            "quick": self.quick,
            "only": self.only,
            "note": self.note,
            "machine": machine(self),
            "elapsed_s": elapsed,
            "machine_busy_cores": busy / elapsed,
            "bench_busy_cores": mine / elapsed,
            "other_busy_cores": max(0.0, busy - mine) / elapsed,
            "loads": self.loads,
        }


# --------------------------------------------------------------------------------
# Machine facts


def machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    t = os.times()
    return t.children_user + t.children_system


def cmd_out(cmd: List[str], cwd: Optional[Path] = None) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=60).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "n/a"


def machine(b: Bench) -> List[Tuple[str, str]]:
    def first(path: str, key: str) -> str:
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(key):
                        return line.split(":", 1)[1].strip() if ":" in line else line.split("=", 1)[1].strip().strip('"')
        except OSError:
            pass
        return "n/a"

    from importlib import metadata

    mem_kib = int(first("/proc/meminfo", "MemTotal").split()[0])
    rev = cmd_out(["git", "rev-parse", "--short", "HEAD"], b.repo)
    dirty = cmd_out(["git", "status", "--porcelain", "--untracked-files=no"], b.repo)
    changed = [l[3:] for l in dirty.splitlines() if l.strip()]
    df = cmd_out(["df", "-T", str(b.tmp_root)]).splitlines()
    fs = df[-1].split()[1] if len(df) > 1 else "n/a"
    vers = ", ".join(f"{p} {metadata.version(p)}" for p in ("wandb", "grpcio", "protobuf"))
    return [
        ("CPU", f"{first('/proc/cpuinfo', 'model name')}, nproc = {os.cpu_count()}"),
        ("Memory", f"{mem_kib / 1024 / 1024:.1f} GiB"),
        ("Kernel / OS", f"{platform.release()} / {first('/etc/os-release', 'PRETTY_NAME')}"),
        ("Data dirs", f"{fs} file system (bench/.cache/tmp)"),
        ("runcore", f"commit {rev}" + (f" with uncommitted changes to {len(changed)} tracked file(s)" if changed else "")
         + f"; sidecar built by `cargo build --release` ({cmd_out(['rustc', '--version'])})"),
        ("Python", f"{platform.python_version()}; {vers}"),
    ]


# --------------------------------------------------------------------------------
# Profiles


def parse_importtime(stderr: str) -> List[Tuple[str, float, int]]:
    """(module, cumulative ms, depth) of `python -X importtime`, top-level-ish
    entries sorted by cumulative time."""
    out = []
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)", line)
        if m:
            depth = (len(m.group(3)) - 1) // 2
            out.append((m.group(4), int(m.group(2)) / 1000, depth))
    out = [o for o in out if o[2] <= 2]
    out.sort(key=lambda o: -o[1])
    return out[:14]


def annotate(path: Path, inclusive: bool) -> List[Tuple[float, str]]:
    """Every function of a callgrind profile: (percent of instructions, name), the
    copies of one function (inlined into several files) added up (self cost) or
    the largest taken (inclusive cost), largest first."""
    p = subprocess.run(["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}", "--threshold=100", "--auto=no", str(path)],
                       capture_output=True, text=True, timeout=600)
    cost: Dict[str, float] = {}
    for line in p.stdout.splitlines():
        m = re.match(r"\s*[\d,]+ \(\s*([\d.]+)%\)\s+(.*)$", line)
        if not m or "PROGRAM TOTALS" in line or "=>" in line or "events annotated" in line:
            continue
        name = re.sub(r" \[[^\]]*\]$", "", m.group(2))
        name = re.sub(r"^[^:\s]*(\.rs|\.c|\.S|\?\?\?|\.h):", "", name)
        pct = float(m.group(1))
        cost[name] = max(cost.get(name, 0.0), pct) if inclusive else cost.get(name, 0.0) + pct
    return sorted(((pct, name) for name, pct in cost.items()), reverse=True)


def short(name: str, limit: int = 110) -> str:
    return name if len(name) <= limit else name[: limit - 3] + "..."


def by_crate(rows: List[Tuple[float, str]]) -> List[Tuple[float, str]]:
    """Self cost grouped by crate (core/alloc/std by their module)."""
    groups: Dict[str, float] = {}
    for pct, name in rows:
        m = re.match(r"<*&?(?:mut )?([A-Za-z_][A-Za-z0-9_]*)(?:::([A-Za-z_][A-Za-z0-9_]*))?", name)
        if not m or "::" not in name:
            key = "libc / other native code"
        elif m.group(1) in ("core", "alloc", "std") and m.group(2):
            key = f"{m.group(1)}::{m.group(2)}"
        else:
            key = m.group(1)
        groups[key] = groups.get(key, 0.0) + pct
    return sorted(((pct, k) for k, pct in groups.items()), reverse=True)


def newest_dump(out: Path) -> Optional[Path]:
    """The last dump `callgrind_control -d` made (`<out>.N`)."""
    dumps = [p for p in out.parent.glob(out.name + ".*") if p.suffix[1:].isdigit() and p.stat().st_size > 0]
    return max(dumps, key=lambda p: int(p.suffix[1:])) if dumps else None


# --------------------------------------------------------------------------------
# The report

SDK_FIGURES = [
    # key, label, unit, better
    ("calls_per_s", "`run.log` calls/s (the loop)", "calls/s", "higher"),
    ("python_cpu_us_per_call", "Python process CPU per call (loop + finish)", "µs", "lower"),
    ("finish_s", "`finish()`", "s", "lower"),
    ("total_s", "total wall time: import + init + loop + finish", "s", "lower"),
    ("server_cpu_s", "sidecar / wandb-core CPU (loop + finish)", "s", "lower"),
    ("server_cpu_us_per_point", "sidecar / wandb-core CPU per metric point", "µs", "lower"),
    ("server_rss_peak_mib", "sidecar / wandb-core peak RSS", "MiB", "lower"),
    ("log_bytes_per_point", "transaction log per metric point (run.wal / .wandb)", "bytes", "lower"),
]

STARTUP_FIGURES = [
    ("import_s", "`import`", "s", "lower"),
    ("init_s", "`init()` (spawns the sidecar / wandb-core)", "s", "lower"),
    ("import_init_s", "`import` + `init()`", "s", "lower"),
    ("finish_s", "`finish()` of the empty run", "s", "lower"),
    ("teardown_s", "`teardown()` (stops the sidecar / wandb-core)", "s", "lower"),
    ("process_s", "whole process (interpreter start to exit)", "s", "lower"),
    ("server_rss_after_init_mib", "sidecar / wandb-core RSS after init", "MiB", "lower"),
]

MB = 1e6 / 2**20  # one MB in MiB


class Report:
    def __init__(self, b: Bench) -> None:
        self.b = b
        self.r = b.results
        self.lines: List[str] = []
        self.targets: List[Dict[str, Any]] = []

    def w(self, *lines: str) -> None:
        self.lines.extend(lines)

    def stat(self, scenario: str, sdk: str, key: str) -> Optional[Dict[str, float]]:
        if scenario not in self.r:
            return None
        return summarize(r.get(key) for r in self.r[scenario]["reps"].get(sdk, []))

    def sdk_table(self, scenario: str, figures: Sequence[Tuple[str, str, str, str]]) -> None:
        """runcore's client, wandb-core, and (when measured) the unchanged wandb SDK
        on runcore (W&B service protocol), with the ratio of each to runcore's client."""
        third = bool(self.r[scenario]["reps"].get("wandb-runcore"))
        head = "| figure | runcore | wandb 0.31 offline | runcore advantage |"
        rule = "|---|---|---|---|"
        if third:
            head += " wandb 0.31 SDK on runcore | runcore client advantage over it |"
            rule += "---|---|"
        self.w(head, rule)
        for key, label, unit, better in figures:
            rc, wb = self.stat(scenario, "runcore", key), self.stat(scenario, "wandb", key)
            if rc is None and wb is None:
                continue
            line = f"| {label} | {cell(rc, unit)} | {cell(wb, unit)} | {adv_cell(advantage(rc, wb, better))} |"
            if third:
                wr = self.stat(scenario, "wandb-runcore", key)
                line += f" {cell(wr, unit)} | {adv_cell(advantage(rc, wr, better))} |"
            self.w(line)
        self.w("")

    def reproduce(self, only: str, *cmds: str) -> None:
        self.w(f"Reproduce: `bench/run.sh --only {only}` (every repetition); one repetition, once `bench/run.sh` "
               "has built `bench/.cache`:", "", "```sh", *cmds, "```", "")

    def target(self, tid: str, text: str, measured: str, met: Optional[bool], where: str) -> None:
        self.targets.append({"id": tid, "text": text, "measured": measured, "met": met, "where": where})

    # -- sections -----------------------------------------------------------------

    def header(self) -> None:
        b, run = self.b, self.r.get("run", {})
        started = (datetime.datetime.fromisoformat(run["started_utc"]) if run.get("started_utc")
                   else datetime.datetime.now(datetime.timezone.utc))
        mode = "quick (`--quick`: fewer rows and repetitions; for checking the harness, not for quoting)" if b.quick else "full"
        self.w(
            "# Benchmarks",
            "",
            "runcore against `wandb` 0.31.0 (offline mode, `WANDB_MODE=offline`) on the same machine, in one run",
            "of `bench/run.sh`, which wrote this file; the Python scenarios add a third column, the unchanged",
            "`wandb` SDK logging into runcore through the W&B service protocol (`WANDB_SERVICE`, no wandb-core).",
            "Each repetition is a fresh process (a fresh sidecar or wandb-core); the SDKs' repetitions alternate",
            "(runcore's client first in even repetitions, last in odd ones), so drift in the machine's load hits all. Each figure is the **median** and (min–max)",
            "over the repetitions; \"runcore advantage\" is the ratio of the two medians of this same run, oriented",
            "so that above 1× means runcore is better (faster, or less CPU, memory or bytes). Targets are from",
            "issue 9; they are goals, never test assertions.",
            "",
            f"Measured {started:%Y-%m-%d %H:%M} UTC, mode: {mode}; "
            f"the whole run took {run.get('elapsed_s', 0) / 60:.1f} min.",
            "",
            "## Machine",
            "",
            "| | |",
            "|---|---|",
        )
        for k, v in run.get("machine") or machine(b):
            self.w(f"| {k} | {v} |")
        loads = [l for _, l in run.get("loads", [])]
        if loads:
            self.w(f"| Load during the run | 1-min load average {min(loads):.2f}–{max(loads):.2f} at the scenarios' starts; "
                   f"the machine was busy {run['machine_busy_cores']:.2f} cores on average, of which "
                   f"{run['other_busy_cores']:.2f} cores were other processes than the benchmark |")
        self.w("")
        if b.note:
            self.w(f"**Note:** {b.note}", "")
        if run.get("other_busy_cores", 0) > 0.25:
            self.w(f"**This machine was shared and busy while the figures were taken** (other processes kept "
                   f"{run['other_busy_cores']:.2f} of its {os.cpu_count()} cores busy on average): wall-clock "
                   "figures (calls/s, points/s, seconds) are noisier and lower than on an idle machine; CPU seconds, "
                   "RSS and bytes are much less affected. The alternation keeps the ratios fair.", "")

    def targets_section(self) -> None:
        self.w("## Targets", "", "| target (issue 9) | measured (median) | met? | where |", "|---|---|---|---|")
        for t in self.targets:
            met = "n/a" if t["met"] is None else ("**met**" if t["met"] else "**missed**")
            self.w(f"| {t['text']} | {t['measured']} | {met} | {t['where']} |")
        self.w("")

    def narrow_wide(self, scenario: str, title: str) -> None:
        if scenario not in self.r:
            return
        d = self.r[scenario]
        self.w(f"## {title}", "",
               f"{d['rows']:,} calls of `run.log({{...{d['keys']} float scalars...}})` in a loop, then `finish()`; "
               "each call builds a fresh dict, as training code does (building the dicts alone takes "
               f"{num(statistics.median(r['dict_build_s'] for r in d['reps']['runcore']))} s). The sidecar / "
               "wandb-core CPU is its utime + stime (every descendant process of the script counted) from after "
               "`init()` until `finish()` returned; peak RSS is its `VmHWM`. Default settings of both SDKs "
               "(system metrics every 15 s), wandb with `console=\"off\"`.", "")
        self.sdk_table(scenario, SDK_FIGURES)
        cmd = " ".join(d["cmd"])
        self.reproduce(scenario, "RUNCORE_BIN=bench/.cache/bin/runcore WANDB_MODE=offline " + cmd)

    def startup(self) -> None:
        if "startup" not in self.r:
            return
        d = self.r["startup"]
        self.w("## Start-up", "",
               "A fresh Python process imports the SDK, calls `init()` (which spawns the sidecar, resp. wandb-core, "
               "and waits for it) and `finish()`es the empty run.", "")
        self.sdk_table("startup", STARTUP_FIGURES)
        self.reproduce("startup", "RUNCORE_BIN=bench/.cache/bin/runcore WANDB_MODE=offline " + " ".join(d["cmd"]))

    def ingest(self) -> None:
        if "ingest" not in self.r:
            return
        d = self.r["ingest"]["configs"]
        pts = self.r["ingest"]["points"]
        s = {name: {k: summarize(r[k] for r in reps) for k, v in reps[0].items() if isinstance(v, (int, float))}
             for name, reps in d.items() if reps}
        for name in s:
            s[name]["rss_mib"] = summarize(r["sidecar_rss_peak_kib"] / 1024 for r in d[name])
        wb_cpu = self.stat("narrow", "wandb", "server_cpu_us_per_point")

        def row(name: str, label: str, base: Optional[str]) -> str:
            x = s[name]
            vs = "—"
            if base and base in s:
                vs = f"{num(x['points_per_s']['median'] / s[base]['points_per_s']['median'])}× the points/s"
            return (f"| {label} | {cell(x['points_per_s'])} | {cell(x['sidecar_cpu_us_per_point'], 'µs')} | "
                    f"{cell(x['rss_mib'], 'MiB')} | {cell(x['finish_s'], 's')} | {cell(x['wal_bytes_per_point'], 'B')} | "
                    f"{cell(x['client_cpu_s'], 's')} | {vs} |")

        self.w("## Raw ingest (LogStream, no Python)", "",
               f"`service/benches/ingest.rs` (a single-threaded Rust client on `runcore::proto`) pushes {pts:,} "
               "float points (rows of 10 scalars in the packed fields, 1,000 rows per `LogBatch`) through `LogStream` "
               "into a fresh sidecar on loopback, with the transaction log on, one connection and one stream per run, "
               "32 batches in flight per stream (the Python client's default) unless noted. The clock runs from the "
               "first batch to the last acknowledgement; the sidecar's CPU is from /proc/PID/stat over that time. "
               "The client shares the 2 cores with the sidecar (its CPU is shown).", "")
        head = ("| configuration | points/s | sidecar CPU per point | sidecar peak RSS | finish (all runs) | WAL per point | "
                "client CPU | same-run peer |")
        self.w(head, "|---|---|---|---|---|---|---|---|")
        rows = [("tcp-1", "1 run, TCP loopback, `--fsync batch` (default)", None),
                ("tcp-16", "16 concurrent runs, TCP, `--fsync batch`", "tcp-1"),
                ("unix-1", "1 run, unix socket, `--fsync batch`", "tcp-1"),
                ("tcp-1-if4", "1 run, TCP, only 4 batches in flight", "tcp-1"),
                ("unix-1-if4", "1 run, unix socket, only 4 batches in flight", "tcp-1-if4")]
        for name, label, base in rows:
            if name in s:
                self.w(row(name, label, base))
        self.w("")
        if wb_cpu and "tcp-1" in s:
            a = wb_cpu["median"] / s["tcp-1"]["sidecar_cpu_us_per_point"]["median"]
            self.w(f"wandb has no raw ingest API to drive the same way; for scale, wandb-core spent "
                   f"{num(wb_cpu['median'])} µs of CPU per point in the Python narrow-row run above, "
                   f"{num(a)}× runcore's per-point CPU here.", "")
        self.w("## Durability cost (`--fsync batch` vs `--fsync always`)", "",
               "The same ingest; `always` fsyncs the log before every acknowledgement (one fsync per 10,000-point "
               "batch), `batch` at most once per flush interval (1 s) and at finish.", "")
        self.w(head, "|---|---|---|---|---|---|---|---|")
        for name, label, base in [("tcp-1", "1 run, `--fsync batch`", None),
                                  ("tcp-1-always", "1 run, `--fsync always`", "tcp-1"),
                                  ("tcp-16", "16 runs, `--fsync batch`", None),
                                  ("tcp-16-always", "16 runs, `--fsync always`", "tcp-16")]:
            if name in s:
                self.w(row(name, label, base))
        self.w("")
        self.w("## Shared runs (8 writers of one run vs 8 runs)", "",
               "The same ingest from 8 streams: 8 separate runs, then 8 writers of one shared run (W&B's "
               "mode=\"shared\"; each writer its own keys, its own seqs, rows of one step merged into one history "
               "row). The same points in both.", "")
        self.w(head, "|---|---|---|---|---|---|---|---|")
        for name, label, base in [("tcp-8", "8 runs, TCP, `--fsync batch`", None),
                                  ("tcp-8-shared", "8 writers of 1 shared run, TCP, `--fsync batch`", "tcp-8")]:
            if name in s:
                self.w(row(name, label, base))
        self.w("", "`cargo bench --bench ingest -- --writers 8` runs the same comparison on its own sidecars.", "")
        note = self.b.repo / "bench" / "notes" / "ingest-tcp.md"
        if note.exists():
            self.w(note.read_text().strip(), "")
        ex = self.ingest_example()
        self.reproduce("ingest", *ex)

    def ingest_example(self) -> List[str]:
        pts = self.r["ingest"]["points"]
        cmd = " ".join(self.b.ingest_cmd("$(cat $d/port)", "$!", 1, 32, pts, rel=True))
        return ["cargo build --release --bin runcore && cargo bench --no-run --bench ingest   # or bench/run.sh once",
                "d=$(mktemp -d); bench/.cache/bin/runcore serve --listen tcp://127.0.0.1:0 --port-file $d/port \\",
                "    --data-dir $d/data --fsync batch &   # --fsync always; --listen unix://$d/s.sock",
                "sleep 1; " + cmd + "   # --runs 16; --in-flight 4",
                "kill %1",
                "# or, self-contained (its own sidecar, 2,000,000 points, 1 and 16 runs): cargo bench --bench ingest"]

    def idle(self) -> None:
        if "idle" not in self.r:
            return
        d = self.r["idle"]
        n = d["runs"]
        self.w("## Idle cost", "",
               f"Open runs that log nothing, for {len(next(iter(d['windows'].values())))} consecutive windows of "
               f"{d['window_s']:.0f} s (after a settling pause); system metrics at the default 15 s. runcore's runs are "
               "held by the Rust client (`ingest --idle`: a heartbeat every 15 s per run, as the Python client "
               "sends; the Python client allows one run per process); wandb's by one Python process with "
               "`reinit=\"create_new\"` (runcore's sidecar gets `RUNCORE_MAX_RUNS_PER_CLIENT` raised to the run "
               "count, as one client process holds them all). The four setups run side by side. CPU is the server process's threads' "
               "schedstat time (ns) per window, scaled to a minute; RSS is `VmRSS` at each window's end; the "
               "kernel's share is stime / (utime + stime) over the window.", "",
               "| figure | runcore | wandb 0.31 offline | runcore advantage |", "|---|---|---|---|")

        def stat(name: str, key: str, scale: float = 1) -> Optional[Dict[str, float]]:
            return summarize(w[key] * scale for w in d["windows"][name])

        def kernel_share(name: str) -> str:
            # Over all windows together: utime and stime are 10 ms ticks.
            user = sum(w["user_s"] for w in d["windows"][name])
            system = sum(w["sys_s"] for w in d["windows"][name])
            if user + system < 0.2:
                return "n/a (under 0.2 s to split)"
            return f"{100 * system / (user + system):.0f} % (all windows)"

        for runs in (1, n):
            what = f"{runs} open run{'s' if runs > 1 else ''}"
            for key, label, unit, scale in (("cpu_s_per_min", "CPU per minute", "ms", 1000), ("rss_mib", "RSS", "MiB", 1)):
                rc, wb = stat(f"runcore-{runs}", key, scale), stat(f"wandb-{runs}", key, scale)
                self.w(f"| {what}: {label} | {cell(rc, unit)} | {cell(wb, unit)} | {adv_cell(advantage(rc, wb, 'lower'))} |")
            self.w(f"| {what}: kernel's share of that CPU | {kernel_share(f'runcore-{runs}')} | "
                   f"{kernel_share(f'wandb-{runs}')} | — |")
        self.w("")
        note = self.b.repo / "bench" / "notes" / "idle.md"
        if note.exists():
            self.w(note.read_text().strip(), "")
        self.reproduce("idle",
                       f"d=$(mktemp -d); RUNCORE_MAX_RUNS_PER_CLIENT={max(64, n)} bench/.cache/bin/runcore serve "
                       "--listen tcp://127.0.0.1:0 --port-file $d/port --data-dir $d/data &",
                       f"sleep 1; bench/.cache/bin/ingest --address $(cat $d/port) --idle --runs {n} &   # open runs until its stdin closes",
                       "# read /proc/<runcore pid>/stat and /proc/<runcore pid>/task/*/schedstat once a minute",
                       "WANDB_MODE=offline bench/.cache/venv/bin/python bench/sdk_worker.py idle --sdk wandb "
                       f"--runs {n} --dir $(mktemp -d)   # prints wandb-core's pid; runs until stdin closes")

    def sampler(self) -> None:
        if "sampler" not in self.r:
            return
        d = self.r["sampler"]
        self.w("## System sampler", "",
               "CPU time of one system-metrics sample on the sampler thread (host: CPU, memory, network, disk; "
               "the watched process tree; 8 fake GPUs through the same trait NVML is behind), "
               "from `cargo bench --bench monitor_sample` (2,000 samples after 50 warm-up ones, per repetition). "
               "wandb's sampler lives inside wandb-core and cannot be driven alone, so there is no peer figure.", "",
               "| configuration | metrics | CPU per sample |", "|---|---|---|")
        for name, vals in d["configs"].items():
            self.w(f"| {name} | {d['metrics'].get(name, '')} | {cell(summarize(vals), 'µs')} |")
        self.w("")
        self.reproduce("sampler", "cargo bench --bench monitor_sample   # or bench/.cache/bin/monitor_sample")

    def micro(self) -> None:
        if "micro" not in self.r:
            return
        self.w("## Micro-benchmarks of the hot paths", "",
               "`cargo bench --bench hot_paths` (`service/benches/hot_paths.rs`, a plain `std::time` loop: one "
               "warm-up repetition, then timed repetitions; median and min–max per unit). A regression in "
               "review shows here. One run of the binary.", "",
               "| path | per | median | min–max |", "|---|---|---|---|")
        for m in self.r["micro"]:
            self.w(f"| {m['name']} | {m['unit']} | **{num(m['median_ns'])} ns** | {num(m['min_ns'])}–{num(m['max_ns'])} ns |")
        self.w("")
        self.reproduce("micro", "cargo bench --bench hot_paths")

    # -- targets ------------------------------------------------------------------

    def evaluate(self) -> None:
        st = self.stat
        if "narrow" in self.r:
            a = advantage(st("narrow", "runcore", "calls_per_s"), st("narrow", "wandb", "calls_per_s"), "higher")
            self.target("loop", "Python `run.log` loop ≥ 10× wandb's calls/s", f"{num(a)}×", a is not None and a >= 10,
                        "Python logging throughput")
        for sc in ("narrow", "wide"):
            if sc in self.r:
                a = advantage(st(sc, "runcore", "server_cpu_us_per_point"), st(sc, "wandb", "server_cpu_us_per_point"), "lower")
                self.target(f"cpu-{sc}", f"sidecar CPU per metric point ≤ 1/20 of wandb-core's ({sc} rows)",
                            f"1/{num(a)}" if a else "n/a", a is not None and a >= 20,
                            "Python logging throughput" if sc == "narrow" else "Wide rows")
        for sc in ("narrow", "wide"):
            wr = st(sc, "wandb-runcore", "server_cpu_us_per_point") if sc in self.r else None
            if wr:
                rc = st(sc, "runcore", "server_cpu_us_per_point")
                ratio = wr["median"] / rc["median"] if rc and rc["median"] else None
                self.target(f"wandb-protocol-{sc}",
                            f"sidecar CPU per point through the W&B service protocol ≤ 2× runcore's LogStream path ({sc} rows)",
                            f"{num(ratio)}×" if ratio else "n/a", ratio is not None and ratio <= 2,
                            "Python logging throughput" if sc == "narrow" else "Wide rows")
        if "narrow" in self.r:
            f = st("narrow", "runcore", "finish_s")
            rows = self.r["narrow"]["rows"]
            self.target("finish", f"`finish()` of a {rows:,}-step run < 1 s", f"{num(f['median'])} s" if f else "n/a",
                        f is not None and f["median"] < 1, "Python logging throughput")
        if "startup" in self.r:
            a = advantage(st("startup", "runcore", "import_init_s"), st("startup", "wandb", "import_init_s"), "lower")
            self.target("startup", "`import` + `init()` ≥ 10× faster than wandb's", f"{num(a)}×", a is not None and a >= 10,
                        "Start-up")
        if "ingest" in self.r and self.r["ingest"]["configs"].get("tcp-1"):
            p = summarize(r["points_per_s"] for r in self.r["ingest"]["configs"]["tcp-1"])
            self.target("ingest", "raw ingest ≥ 1,000,000 points/s for 1 run", f"{num(p['median'])} points/s" if p else "n/a",
                        p is not None and p["median"] >= 1e6, "Raw ingest")
        for sc, limit in (("narrow", 20), ("wide", 40)):
            if sc in self.r:
                m = st(sc, "runcore", "server_rss_peak_mib")
                self.target(f"rss-{sc}", f"sidecar RSS < {limit} MB ({sc} rows)", f"{num(m['median'])} MiB" if m else "n/a",
                            m is not None and m["median"] < limit * MB,
                            "Python logging throughput" if sc == "narrow" else "Wide rows")
        for sc in ("narrow", "wide"):
            if sc in self.r:
                m = st(sc, "runcore", "log_bytes_per_point")
                self.target(f"wal-{sc}", f"WAL ≤ 15 bytes per scalar point ({sc} rows)", f"{num(m['median'])} B" if m else "n/a",
                            m is not None and m["median"] <= 15, "Python logging throughput" if sc == "narrow" else "Wide rows")
        if "sampler" in self.r:
            cfg = self.r["sampler"]["configs"]
            key = next((k for k in cfg if k.startswith("host + process (this")), None)
            m = summarize(cfg[key]) if key else None
            worst = max((statistics.median(v) for v in cfg.values()), default=None)
            self.target("sampler", "sampler < 2 ms CPU per sample (host + 8 fake GPUs)",
                        f"{num(m['median'] / 1000)} ms (slowest configuration {num((worst or 0) / 1000)} ms)" if m else "n/a",
                        m is not None and m["median"] < 2000, "System sampler")

    def missed(self) -> None:
        missed = [t for t in self.targets if t["met"] is False]
        self.w("## Missed targets: what limits them", "")
        if not missed:
            self.w("Every target was met in this run.", "")
            return
        notes_dir = self.b.repo / "bench" / "notes"
        for t in missed:
            self.w(f"### {t['text']}: {t['measured']}", "")
            note = notes_dir / f"{t['id']}.md"
            if note.exists():
                self.w(note.read_text().strip(), "")
            else:
                self.w(f"No analysis written for this target yet (`bench/notes/{t['id']}.md`); the profiles below "
                       "show where the time goes.", "")

    def profiles(self) -> None:
        prof = self.r.get("profile")
        if not prof:
            return
        self.w("## Profiles", "")
        cg = prof.get("callgrind-ingest")
        if cg:
            self.w(f"### The sidecar under callgrind: {cg['points']:,} points through LogStream (1 run, TCP)", "",
                   "`valgrind --tool=callgrind bench/.cache/bin/runcore serve ...` with the raw-ingest client "
                   "(`bench/run.sh --only profile`); instructions of the whole process, start-up and shutdown "
                   "included, user space only (callgrind does not see the kernel). "
                   f"Profile file: `{cg['file']}`.", "")
            self.profile_tables(cg)
        cg = prof.get("callgrind-idle")
        if cg:
            self.w(f"### The sidecar under callgrind: {cg['runs']} idle open runs for {cg['seconds']:.0f} s", "",
                   "Instrumented only while the runs idle (`--instr-atstart=no`, then `callgrind_control -i on`); "
                   f"user space only. Profile file: `{cg['file']}`.", "")
            self.profile_tables(cg)
        for sdk in IMPORTS:
            rows = prof.get(f"import-{sdk}")
            if rows:
                self.w(f"### `python -X importtime -c \"import {sdk}\"`", "",
                       "Cumulative import time of the biggest modules (depth ≤ 2), one cold-ish run:", "",
                       "| ms | module (depth) |", "|---|---|")
                for name, ms, depth in rows:
                    self.w(f"| {ms:.1f} | `{name}` ({depth}) |")
                self.w("")

    def profile_tables(self, cg: Dict[str, Any]) -> None:
        self.w("| self cost % | by crate |", "|---|---|")
        for pct, name in cg["crates"]:
            self.w(f"| {pct:.1f} | `{name}` |")
        self.w("", "| self cost % | function |", "|---|---|")
        for pct, name in cg["exclusive"]:
            self.w(f"| {pct:.1f} | `{name}` |")
        self.w("", "| inclusive % | runcore function |", "|---|---|")
        for pct, name in cg["inclusive"]:
            self.w(f"| {pct:.1f} | `{name}` |")
        self.w("")

    def method(self) -> None:
        self.w("## How the figures are taken", "",
               "- `bench/run.sh` builds a cached venv (`bench/.cache/venv`: `bench/requirements.txt`, wandb pinned, "
               "and the runcore client from `clients/python`), builds the release sidecar and the bench targets, "
               "copies them to `bench/.cache/bin` (so a rebuild meanwhile cannot mix builds) and runs "
               "`bench/driver.py`, which runs each repetition in a fresh process and wrote this file. Raw results: "
               "`bench/.cache/results/`.",
               "- wandb runs offline (`WANDB_MODE=offline`, its dirs under `bench/.cache/tmp`, error reporting off): "
               "nothing leaves the machine. Its transaction log is the run's `.wandb` file.",
               "- Sidecar / wandb-core CPU: utime + stime from `/proc/PID/stat` (10 ms ticks; all threads, exited "
               "ones included); idle CPU from the threads' `schedstat` (ns). Peak RSS: `VmHWM`.",
               "- Wall-clock figures depend on the machine's load; CPU seconds, RSS and bytes much less so.",
               "- `bench/run.sh --quick` runs the same code with fewer rows and repetitions (harness check only).",
               "")

    def render(self) -> str:
        self.evaluate()
        self.header()
        self.targets_section()
        self.narrow_wide("narrow", f"Python logging throughput ({self.r.get('narrow', {}).get('rows', 0):,} × 10 scalars)")
        self.narrow_wide("wide", f"Wide rows ({self.r.get('wide', {}).get('rows', 0):,} × {self.r.get('wide', {}).get('keys', 0):,} scalars)")
        self.startup()
        self.ingest()
        self.idle()
        self.sampler()
        self.micro()
        self.missed()
        self.profiles()
        self.method()
        return "\n".join(self.lines).rstrip() + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description="runcore benchmarks (use bench/run.sh)")
    p.add_argument("--repo", required=True)
    p.add_argument("--cache", required=True)
    p.add_argument("--quick", action="store_true", help="fewer rows and repetitions, to check the harness")
    p.add_argument("--only", help=f"comma-separated scenarios: {','.join(SCENARIOS)}")
    p.add_argument("--note", help="a note for the machine section")
    p.add_argument("--out", help="where to write the report (default: docs/BENCHMARKS.md for a full run of every "
                                 "scenario, else bench/.cache/BENCHMARKS.quick.md or .partial.md)")
    p.add_argument("--render", metavar="RESULTS_JSON",
                   help="measure nothing: write the report again from a run's raw results (after editing "
                        "bench/notes or the report's code); the figures stay those of that run")
    args = p.parse_args()
    if args.render:
        raw = Path(args.render)
        results = json.loads(raw.read_text())
        run = results.setdefault("run", {})
        if "started_utc" not in run:
            started = raw.stat().st_mtime - run.get("elapsed_s", 0)
            run["started_utc"] = datetime.datetime.fromtimestamp(started, datetime.timezone.utc).isoformat()
        args.quick = run.get("quick", raw.stem.endswith("-quick"))
        args.only = ",".join(run.get("only") or [s for s in SCENARIOS if s in results])
        args.note = args.note or run.get("note")
        b = Bench(args)
        b.results = results
    else:
        b = Bench(args)
        b.run()
        results_dir = b.cache / "results"
        results_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        raw = results_dir / f"{stamp}{'-quick' if b.quick else ''}.json"
        raw.write_text(json.dumps(b.results, indent=1))
    if args.out:
        out = Path(args.out)
    elif b.quick:
        out = b.cache / "BENCHMARKS.quick.md"
    elif set(b.only) != set(SCENARIOS):
        out = b.cache / "BENCHMARKS.partial.md"
    else:
        out = b.repo / "docs" / "BENCHMARKS.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    text = Report(b).render()
    # Sections measured by other benchmarks (cargo bench --bench ui) follow this
    # marker in the report; a new report keeps them.
    if out.exists() and KEEP_MARKER in out.read_text():
        old = out.read_text()
        text = text.rstrip("\n") + "\n\n" + old[old.index(KEEP_MARKER):]
    out.write_text(text)
    shutil.rmtree(b.tmp_root, ignore_errors=True)
    log(f"raw results: {raw}")
    log(f"wrote {out}")


KEEP_MARKER = "<!-- Sections below are not written by bench/run.sh, which keeps them. -->"


if __name__ == "__main__":
    main()
