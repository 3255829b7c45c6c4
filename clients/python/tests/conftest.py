"""Shared by the tests: a real ``runcore serve`` per test on a private unix socket,
helpers to read its local store, and to run Python scripts in a subprocess.

The binary is $RUNCORE_BIN, default <repo>/target/debug/runcore (``cargo build``).
Tests pass the sidecar's address through ``runcore.Settings(address=...)`` (or a
child's environment), never by changing this process's environment.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Iterator, Optional, TypeVar

import pytest

import runcore

REPO = pathlib.Path(__file__).resolve().parents[3]
PKG = REPO / "clients" / "python"
BIN = os.environ.get("RUNCORE_BIN") or str(REPO / "target" / "debug" / "runcore")
#: How long a test waits for something that should take well under a second.
PATIENCE = 20.0
#: The sidecar's flush interval in tests: store files lag the log by this much.
FLUSH_INTERVAL = "0.05"

T = TypeVar("T")


def wait_for(f: Callable[[], Optional[T]], what: str, timeout: float = PATIENCE) -> T:
    """Polls ``f`` until it returns something other than None/False."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        v = f()
        if v is not None and v is not False:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def read_jsonl(path: pathlib.Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    text = path.read_text()
    # A line still being written has no newline yet: read whole lines only.
    lines = text.split("\n")[:-1] if not text.endswith("\n") else text.splitlines()
    return [json.loads(line) for line in lines if line]


def read_json(path: pathlib.Path) -> dict[str, Any]:
    return json.loads(path.read_text())


class Sidecar:
    """A runcore sidecar process on a unix socket under ``root``."""

    def __init__(self, root: pathlib.Path, extra: tuple[str, ...] = ()) -> None:
        if not os.access(BIN, os.X_OK):
            pytest.fail(f"no runcore binary at {BIN}: run `cargo build` in {REPO} or set RUNCORE_BIN")
        self.root = root
        self.data_dir = root / "data"
        self.socket = root / "rc.sock"
        self.port_file = root / "address"
        self.log_path = root / "sidecar.log"
        self.extra = extra
        self.address = f"unix://{self.socket}"
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.start()

    def start(self) -> None:
        if self.port_file.exists():
            self.port_file.unlink()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    BIN, "serve",
                    "--listen", self.address,
                    "--port-file", str(self.port_file),
                    "--data-dir", str(self.data_dir),
                    "--flush-interval", FLUSH_INTERVAL,
                    "--shutdown-grace", "5",
                    *self.extra,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "RUNCORE_LOG": "info"},
            )
        wait_for(lambda: self.port_file.exists() and self.port_file.read_text().strip(), "the sidecar's port file")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(PATIENCE)
        self.proc = None

    def settings(self, **kw: Any) -> runcore.Settings:
        return runcore.Settings(address=self.address, quiet=True, **kw)

    def run_dir(self, run: Any, project: Optional[str] = None) -> pathlib.Path:
        if isinstance(run, str):
            return self.data_dir / (project or "uncategorized") / run
        return self.data_dir / run.project / run.id

    def history(self, run: Any, project: Optional[str] = None) -> list[dict[str, Any]]:
        return read_jsonl(self.run_dir(run, project) / "history.jsonl")

    def run_json(self, run: Any, project: Optional[str] = None) -> dict[str, Any]:
        return read_json(self.run_dir(run, project) / "run.json")

    def summary_json(self, run: Any, project: Optional[str] = None) -> dict[str, Any]:
        return read_json(self.run_dir(run, project) / "summary.json")

    def env(self, **extra: str) -> dict[str, str]:
        """An environment for a child process that logs to this sidecar."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNCORE_")}
        env.update(RUNCORE_ADDRESS=self.address, RUNCORE_SILENT="1", PYTHONUNBUFFERED="1")
        env.update(extra)
        return env

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


@pytest.fixture
def sidecar(tmp_path: pathlib.Path) -> Iterator[Sidecar]:
    sc = Sidecar(tmp_path)
    yield sc
    try:
        runcore.teardown()
    finally:
        sc.kill(signal.SIGTERM)


@pytest.fixture
def work_dir(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """A fresh current directory (relative globs and media resolve against it)."""
    d = tmp_path / "work"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


def run_script(code: str, env: dict[str, str], cwd: pathlib.Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Runs Python code in a child interpreter (the package is importable there)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
