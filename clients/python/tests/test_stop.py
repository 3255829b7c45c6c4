"""A run an operator stops (``runcore runs stop ID``; the heartbeat reply says
should_stop): as in W&B the training loop is interrupted (KeyboardInterrupt in the
main thread, after a warning that says why), unless ``Settings(on_stop="warn")``
or ``RUNCORE_ON_STOP=warn`` asks for the warning only."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import textwrap

import pytest

import runcore
from conftest import BIN, PATIENCE, Sidecar, wait_for


def stop(sidecar: Sidecar, run_id: str) -> None:
    subprocess.run([BIN, "runs", "stop", run_id, "--address", sidecar.address], check=True, capture_output=True)


def start_child(sidecar: Sidecar, tmp_path: pathlib.Path, code: str, **env: str) -> "subprocess.Popen[str]":
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=sidecar.env(**env),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "started", child.stderr.read() if child.stderr else ""
    return child


def test_a_stop_request_interrupts_the_training_loop(sidecar: Sidecar, tmp_path: pathlib.Path) -> None:
    child = start_child(
        sidecar,
        tmp_path,
        """
        import time, runcore
        run = runcore.init(project="p", id="stop-me", settings=runcore.Settings(heartbeat_interval=0.1))
        print("started", flush=True)
        try:
            while True:
                run.log({"x": 1.0})
                time.sleep(60)  # blocked in a sleep: the interrupt wakes it
        except KeyboardInterrupt:
            print("interrupted", run.status().should_stop, flush=True)
            run.finish()
        """,
    )
    stop(sidecar, "stop-me")
    out, err = child.communicate(timeout=PATIENCE)
    assert child.returncode == 0, err
    assert out.strip() == "interrupted True", err
    assert "run stop-me was asked to stop (runcore runs stop stop-me" in err
    assert "raising KeyboardInterrupt in the main thread" in err
    assert sidecar.run_json("stop-me", "p")["state"] == "finished"


def test_an_uncaught_stop_interrupt_fails_the_run(sidecar: Sidecar, tmp_path: pathlib.Path) -> None:
    child = start_child(
        sidecar,
        tmp_path,
        """
        import time, runcore
        with runcore.init(project="p", id="stop-uncaught", settings=runcore.Settings(heartbeat_interval=0.1)) as run:
            print("started", flush=True)
            while True:
                run.log({"x": 1.0})
                time.sleep(0.01)
        """,
    )
    stop(sidecar, "stop-uncaught")
    _, err = child.communicate(timeout=PATIENCE)
    assert child.returncode != 0 and "KeyboardInterrupt" in err, err
    assert "was asked to stop" in err
    info = sidecar.run_json("stop-uncaught", "p")
    assert (info["state"], info["exit_code"]) == ("failed", 1)


def test_on_stop_warn_from_the_environment_only_warns(sidecar: Sidecar, tmp_path: pathlib.Path) -> None:
    child = start_child(
        sidecar,
        tmp_path,
        """
        import time, runcore
        run = runcore.init(project="p", id="stop-warn-env", settings=runcore.Settings(heartbeat_interval=0.1))
        print("started", flush=True)
        while not run.status().should_stop:
            run.log({"x": 1.0})
            time.sleep(0.02)
        print("asked to stop", flush=True)
        run.finish()
        """,
        RUNCORE_ON_STOP="warn",
    )
    stop(sidecar, "stop-warn-env")
    out, err = child.communicate(timeout=PATIENCE)
    assert child.returncode == 0, err
    assert out.strip() == "asked to stop"
    assert "run.status().should_stop is True" in err and "KeyboardInterrupt" not in err
    assert sidecar.run_json("stop-warn-env", "p")["state"] == "finished"


def test_on_stop_warn_only_warns(sidecar: Sidecar) -> None:
    run = runcore.init(project="p", id="stop-warn", settings=sidecar.settings(heartbeat_interval=0.05, on_stop="warn"))
    with pytest.warns(runcore.RuncoreWarning, match=r"run stop-warn was asked to stop .*should_stop is True"):
        stop(sidecar, "stop-warn")
        wait_for(lambda: run.status().should_stop, "the heartbeat to see the stop request")
    run.log({"x": 1.0})
    run.finish()
    assert sidecar.run_json(run)["state"] == "finished"
    with pytest.raises(ValueError, match="on_stop 'never' is not one of interrupt, warn"):
        runcore.Settings(on_stop="never")
