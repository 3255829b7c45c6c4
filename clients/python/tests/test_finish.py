"""Ending runs: finish states, the context manager, exit hooks, preemption."""

from __future__ import annotations

import pathlib
import textwrap
import time

import pytest

import runcore
from conftest import Sidecar, run_script


def test_finish_states_and_exit_codes(sidecar: Sidecar) -> None:
    ok = runcore.init(project="p", settings=sidecar.settings())
    ok.log({"x": 1}, step=4)  # pending: finish commits it
    ok.finish()
    ok.finish()  # again: nothing happens
    info = sidecar.run_json(ok)
    assert info["state"] == "finished" and info["exit_code"] == 0 and info["end_time"] >= info["start_time"]
    assert [r["_step"] for r in sidecar.history(ok)] == [4]
    assert ok.status().state == "finished"

    bad = runcore.init(project="p", settings=sidecar.settings())
    runcore.finish(exit_code=2)
    assert sidecar.run_json(bad)["state"] == "failed" and sidecar.run_json(bad)["exit_code"] == 2
    assert runcore.run is None
    runcore.finish()  # no active run: nothing to do
    for call in (lambda: bad.alert("t", "x"), lambda: bad.save("*"), lambda: bad.define_metric("x"), bad.mark_preempting):
        with pytest.raises(runcore.UsageError, match="has finished"):
            call()



def test_finish_right_after_init_does_not_wait_for_the_log_stream(sidecar: Sidecar) -> None:
    # finish() before the sender opened its LogStream, or once it had opened one
    # that carried nothing: there is nothing to ack, so closing does not sit out
    # the native sender's half-close wait (it used to take 5 s).
    for _ in range(3):
        run = runcore.init(project="p", settings=sidecar.settings())
        run.finish()
        stats = run._sender.stats()
        assert stats["half_close_timed_out"] is False and stats["dead"] is None
        assert sidecar.run_json(run)["state"] == "finished"
    # A run that logged: its stream is half-closed and ended by the sidecar.
    run = runcore.init(project="p", settings=sidecar.settings())
    run.log({"x": 1})
    run.finish()
    assert run._sender.stats()["half_close_timed_out"] is False
    assert [r["x"] for r in sidecar.history(run)] == [1]

def test_context_manager(sidecar: Sidecar) -> None:
    with runcore.init(project="p", settings=sidecar.settings()) as run:
        assert runcore.run is run
        run.log({"accuracy": 0.9, "loss": 0.1})
    assert runcore.run is None
    assert sidecar.run_json(run)["state"] == "finished"

    with pytest.raises(RuntimeError, match="boom"):
        with runcore.init(project="p", settings=sidecar.settings()) as failing:
            failing.log({"loss": 1.0})
            raise RuntimeError("boom")
    info = sidecar.run_json(failing)
    assert info["state"] == "failed" and info["exit_code"] == 1
    assert [r["loss"] for r in sidecar.history(failing)] == [1.0]


def test_mark_preempting_and_status(sidecar: Sidecar) -> None:
    run = runcore.init(project="p", settings=sidecar.settings())
    run.log({"x": 1})
    assert run.status().state == "running"
    runcore.mark_preempting()
    status = run.status()
    assert status.state == "preempting" and status.history_rows == 1
    assert status.rows_logged == status.rows_acked == 1 and status.rows_pending == 0
    assert status.sync_items_total == 1 and status.sync_items_pending == 0 and status.sync_time > 0
    run.log({"x": 2})  # a preempting run still logs
    run.finish()
    assert sidecar.run_json(run)["state"] == "finished"
    assert [r["x"] for r in sidecar.history(run)] == [1, 2]


EXIT_SCRIPTS = {
    "clean": ("", "finished", 0),
    "exception": ("raise ValueError('uncaught')", "failed", 1),
    "sys_exit": ("import sys; sys.exit(3)", "failed", 3),
    "sys_exit_0": ("import sys; sys.exit(0)", "finished", 0),
}


@pytest.mark.parametrize("case", sorted(EXIT_SCRIPTS))
def test_an_unfinished_run_is_finished_at_exit(sidecar: Sidecar, tmp_path: pathlib.Path, case: str) -> None:
    ending, state, exit_code = EXIT_SCRIPTS[case]
    code = textwrap.dedent(
        f"""
        import runcore
        run = runcore.init(project="p", id="exit-{case.replace('_', '-')}")
        for i in range(100):
            run.log({{"i": i}})
        run.log({{"pending": 1}}, step=500)
        {ending}
        """
    )
    proc = run_script(code, sidecar.env(), tmp_path)
    assert proc.returncode == exit_code, proc.stderr
    run_id = f"exit-{case.replace('_', '-')}"
    info = sidecar.run_json(run_id, "p")
    assert (info["state"], info["exit_code"]) == (state, exit_code), proc.stderr
    rows = sidecar.history(run_id, "p")
    assert [r["i"] for r in rows[:100]] == list(range(100))
    assert rows[100]["_step"] == 500 and rows[100]["pending"] == 1
    if case == "exception":
        assert "ValueError: uncaught" in proc.stderr  # the user's traceback is still shown


def test_an_idle_run_is_kept_alive_by_heartbeats(sidecar: Sidecar) -> None:
    run = runcore.init(project="p", settings=sidecar.settings(client_timeout=1.0))
    run.log({"x": 1})
    # Idle for longer than the client timeout: only the sender's heartbeats (every
    # timeout/3) keep the sidecar from declaring the client gone.
    time.sleep(2.5)
    assert sidecar.run_json(run)["state"] == "running"
    run.log({"x": 2})
    run.finish()
    assert sidecar.run_json(run)["state"] == "finished"
    assert [r["x"] for r in sidecar.history(run)] == [1, 2]
