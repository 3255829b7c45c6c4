"""Fixtures of the W&B SDK matrix (tests/wandb/run.sh runs this suite once per wandb
release, each in its own venv): a real runcore sidecar with its W&B listener, and
a runner for the doc examples under the unchanged `wandb` SDK, runcore's own
client, or the real wandb-core. Every wait has a deadline: a wandb release that
blocks on a request runcore does not answer fails a test instead of hanging it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "scripts" / "docs_example.py"
#: Longest a script may run (the SDK's own init timeout is 90 s).
SCRIPT_TIMEOUT = 120
#: Longest the sidecar may take to listen, or to stop.
SIDECAR_TIMEOUT = 30

WANDB_VERSION = os.environ.get("WANDB_VERSION", "unknown")
#: A run-id-safe tag of the release.
TAG = WANDB_VERSION.replace(".", "")


def _need(var: str) -> str:
    value = os.environ.get(var)
    if not value:
        pytest.exit(f"{var} is not set: run this suite through tests/wandb/run.sh", returncode=2)
    return value


class Sidecar:
    """`runcore serve` on a temporary dir, gRPC and W&B listeners on unix sockets."""

    def __init__(self) -> None:
        self.bin = _need("RUNCORE_BIN")
        # Short: a unix socket path must fit in 108 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="rcw-", dir="/tmp"))
        self.data = self.dir / "data"
        self.grpc = f"unix://{self.dir}/grpc.sock"
        self.wandb_sock = self.dir / "wandb.sock"
        self.log = open(self.dir / "sidecar.log", "w")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNCORE_")}
        self.proc = subprocess.Popen(
            [self.bin, "serve", "--listen", self.grpc, "--wandb-listen", f"unix://{self.wandb_sock}",
             "--wandb-port-file", str(self.dir / "wandb.addr"), "--data-dir", str(self.data),
             "--shutdown-grace", "5"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env,
        )
        deadline = time.monotonic() + SIDECAR_TIMEOUT
        while not (self.dir / "wandb.addr").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the sidecar did not start: {self.log_text()}")
            time.sleep(0.02)
        self.service = f"3-{self.proc.pid}-unix-{self.wandb_sock}"

    def log_text(self) -> str:
        self.log.flush()
        return (self.dir / "sidecar.log").read_text()

    def run_dir(self, run_id: str, project: str = "docs") -> Path:
        return self.data / project / run_id

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(SIDECAR_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(SIDECAR_TIMEOUT)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def sidecar():
    s = Sidecar()
    yield s
    s.stop()


def sdk_env(sidecar: Optional[Sidecar], sdk: str, workdir: Path, **extra: str) -> Dict[str, str]:
    """The environment of a script: `sdk` is wandb (the unchanged SDK on runcore),
    runcore (runcore's client) or wandb-core (the real one, offline, no runcore)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "RUNCORE_"))}
    env.update(PYTHONWARNINGS="ignore", WANDB_DIR=str(workdir), WANDB_SILENT="true",
               WANDB_CONFIG_DIR=str(workdir / ".config"), WANDB_CACHE_DIR=str(workdir / ".cache"))
    if sdk == "runcore":
        env.update(SDK="runcore", RUNCORE_ADDRESS=sidecar.grpc, RUNCORE_SILENT="true")
    elif sdk == "wandb":
        env.update(SDK="wandb", WANDB_SERVICE=sidecar.service, WANDB_MODE="offline")
    else:
        env.update(SDK="wandb", WANDB_MODE="offline")
    env.update(extra)
    return env


def python_for(sdk: str) -> str:
    return _need("RUNCORE_PYTHON") if sdk == "runcore" else sys.executable


def run_script(sdk: str, scenario: str, run_id: str, workdir: Path, sidecar: Optional[Sidecar] = None,
               **extra: str) -> subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [python_for(sdk), str(SCRIPT), scenario, run_id],
        cwd=workdir, env=sdk_env(sidecar, sdk, workdir, **extra),
        capture_output=True, text=True, timeout=SCRIPT_TIMEOUT,
    )


def read_json(path: Path):
    return json.loads(path.read_text())


def read_lines(path: Path) -> List[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(check, what: str, timeout: float = SIDECAR_TIMEOUT):
    """Polls `check` until it returns something truthy, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
