"""The unchanged `wandb` SDK (the release of this venv) logging into runcore through
the W&B service protocol: the W&B doc examples, the same results as runcore's own
client and as the real wandb-core, exits, crashes, online mode, `runcore exec`."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import (
    SCRIPT, SCRIPT_TIMEOUT, TAG, WANDB_VERSION, python_for, read_json, read_lines, run_script,
    sdk_env, wait_for,
)

#: Keys that carry times, which differ between any two runs.
TIMES = ("_runtime", "_timestamp", "throttled_until")


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def timeless(obj):
    """A store object without its times, as canonical JSON text (types kept: 1 and
    1.0 differ)."""
    if isinstance(obj, list):
        return [timeless(x) for x in obj]
    return json.dumps({k: v for k, v in obj.items() if k not in TIMES}, sort_keys=True)


def numeric(obj):
    """A value with every number as a float and NaN as a marker: how values are
    compared with wandb-core, whose JSON writes 1.0 as 1."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, (int, float)):
        return "NaN" if math.isnan(obj) else float(obj)
    if isinstance(obj, list):
        return [numeric(x) for x in obj]
    return {k: numeric(v) for k, v in obj.items() if k not in TIMES and k != "_wandb"}


def store(run_dir: Path):
    return {
        "config": read_json(run_dir / "config.json"),
        "summary": read_json(run_dir / "summary.json"),
        "history": read_lines(run_dir / "history.jsonl"),
    }


@pytest.fixture(scope="module")
def basic_runs(sidecar, tmp_path_factory):
    """The docs example once through `import wandb` on runcore and once through
    `import runcore as wandb`, on one sidecar."""
    wb_id, rc_id = f"basic-wb{TAG}", f"basic-rc{TAG}"
    proc = ok(run_script("wandb", "basic", wb_id, tmp_path_factory.mktemp("wb"), sidecar))
    ok(run_script("runcore", "basic", rc_id, tmp_path_factory.mktemp("rc"), sidecar))
    return proc, sidecar.run_dir(wb_id), sidecar.run_dir(rc_id)


def test_the_sdk_needs_no_wandb_core(basic_runs):
    proc, wb_dir, _ = basic_runs
    children = next(l for l in proc.stdout.splitlines() if l.startswith("children:"))
    assert "wandb-core" not in children, children
    run = read_json(wb_dir / "run.json")
    assert run["state"] == "finished" and run["exit_code"] == 0
    assert (run["tags"], run["notes"], run["group"], run["job_type"]) == (
        ["docs"], "the W&B docs example", "examples", "train")
    assert run["client_pid"] > 0


def test_same_history_summary_and_config_as_runcores_client(basic_runs):
    _, wb_dir, rc_dir = basic_runs
    wb, rc = store(wb_dir), store(rc_dir)
    assert timeless(wb["config"]) == timeless(rc["config"])
    assert timeless(wb["summary"]) == timeless(rc["summary"])
    assert timeless(wb["history"]) == timeless(rc["history"])
    # The example's rules, spelled out: the dropped step, the merged step 20,
    # define_metric summaries, nested values, explicit summary values.
    steps = [r["_step"] for r in wb["history"]]
    assert steps == list(range(18)) + [20, 21]
    assert wb["history"][18] == {**wb["history"][18], "custom": 1, "custom2": 2.5, "partial": 1.5, "partial2": 2.5}
    s = wb["summary"]
    assert s["val/acc"] == {"max": 0.7} and s["val/loss"] == {"min": 0.8}
    assert s["train/loss"]["min"] == s["train/loss"]["last"] == 1 / 15
    assert s["best_acc"] == 0.8 and s["final"] == {"x": 1}
    assert wb["config"] == {"arch": {"act": "relu", "layers": 2}, "batch_size": 32, "epochs": 3,
                            "lr": 0.01, "optimizer": "adam"}


def test_alert_save_and_console(basic_runs):
    _, wb_dir, rc_dir = basic_runs
    alerts = [timeless(a) for a in read_lines(wb_dir / "alerts.jsonl")]
    assert alerts == [timeless(a) for a in read_lines(rc_dir / "alerts.jsonl")]
    assert json.loads(alerts[0])["level"] == "WARN"
    assert (wb_dir / "files" / "model.txt").read_text() == "weights"
    assert "console line one" in (wb_dir / "output.log").read_text().splitlines()


def test_same_values_as_wandb_cores_offline_run(basic_runs, tmp_path):
    """The real wandb-core of this release runs the example offline; its own log
    (run-<id>.wandb) holds the same rows, summary and config."""
    _, wb_dir, _ = basic_runs
    work = tmp_path / "core"
    ok(run_script("wandb-core", "basic", f"core{TAG}", work))
    run_dir = next((work / "wandb").glob("offline-run-*"))
    reader = os.environ["WANDB_READER_PYTHON"]
    out = subprocess.run([reader, str(Path(__file__).parent / "read_wandb_log.py"), str(run_dir)],
                         capture_output=True, text=True, timeout=SCRIPT_TIMEOUT,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 0, out.stderr
    core = json.loads(out.stdout)
    ours = store(wb_dir)
    assert numeric(ours["history"]) == numeric(core["history"])
    assert numeric(ours["config"]) == numeric(core["config"])
    assert numeric(ours["summary"]) == numeric(core["summary"])


def test_the_with_form_finishes_the_run(sidecar, tmp_path):
    run_id = f"with-{TAG}"
    ok(run_script("wandb", "with", run_id, tmp_path, sidecar))
    d = sidecar.run_dir(run_id)
    assert read_json(d / "run.json")["state"] == "finished"
    assert [r["loss"] for r in read_lines(d / "history.jsonl")] == [1 / (s + 1) for s in range(10)]
    summary = read_json(d / "summary.json")
    assert summary["done"] is True and summary["step_sq"] == 81


def test_name_tags_and_notes_set_by_the_script_reach_the_run(sidecar, tmp_path):
    run_id = f"rename-{TAG}"
    ok(run_script("wandb", "rename", run_id, tmp_path, sidecar))
    run = read_json(sidecar.run_dir(run_id) / "run.json")
    assert (run["name"], run["tags"], run["notes"]) == ("renamed", ["b", "c"], "changed from the script"), run


def test_an_exception_inside_with_fails_the_run(sidecar, tmp_path):
    run_id = f"exc-{TAG}"
    proc = run_script("wandb", "exception", run_id, tmp_path, sidecar)
    assert proc.returncode == 1
    d = sidecar.run_dir(run_id)
    run = read_json(d / "run.json")
    assert (run["state"], run["exit_code"]) == ("failed", 1)
    assert "RuntimeError: inside with" in (d / "output.log").read_text()


def test_an_uncaught_exception_crashes_the_run_with_the_traceback(sidecar, tmp_path):
    """With WANDB_SERVICE the SDK sends no exit record for an uncaught exception: the
    connection closes, the run is crashed, its last console lines are the reason.

    How much of the traceback reaches the sidecar is the SDK's race: its console
    thread may still hold the last lines when the process ends (seen on a loaded
    machine: only the traceback's first line arrived; once, in a full test run, none).
    What the sidecar owes is that the reason ends with exactly the last lines it
    received, which output.log holds. A run that received no line at all says nothing
    of that, so the script runs again then; twice without a line fails."""
    for attempt in (1, 2):
        run_id = f"uncaught{attempt}-{TAG}"
        proc = run_script("wandb", "uncaught", run_id, tmp_path, sidecar)
        assert proc.returncode == 1
        assert "ValueError: boom" in proc.stderr
        d = sidecar.run_dir(run_id)
        run = wait_for(lambda: (r := read_json(d / "run.json"))["state"] != "running" and r, "the crash")
        assert run["state"] == "crashed", run
        head, sep, tail = run["end_reason"].partition("; its last console lines:\n")
        assert head.startswith("the wandb SDK's connection closed without an exit record"), run
        assert [r["loss"] for r in read_lines(d / "history.jsonl")] == [0.5]
        printed = (d / "output.log").read_text().splitlines()
        if printed:
            break
        assert not sep, run["end_reason"]
    assert printed, "no console line of the traceback reached output.log, twice"
    assert sep and tail.split("\n") == printed[-20:], (run["end_reason"], printed)


def test_a_sigkilled_script_crashes_the_run(sidecar, tmp_path):
    run_id = f"kill-{TAG}"
    proc = subprocess.Popen([python_for("wandb"), str(SCRIPT), "sigkill", run_id], cwd=tmp_path,
                            env=sdk_env(sidecar, "wandb", tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: "ready" in (proc.stdout.readline() or "EOF"), "the script to log", SCRIPT_TIMEOUT)
        proc.send_signal(signal.SIGKILL)
        proc.wait(SCRIPT_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    d = sidecar.run_dir(run_id)
    run = wait_for(lambda: (r := read_json(d / "run.json"))["state"] != "running" and r, "the crash")
    assert run["state"] == "crashed"
    assert len(read_lines(d / "history.jsonl")) == 5


def test_online_mode_pointed_at_nothing_still_logs_into_runcore(sidecar, tmp_path):
    """WANDB_MODE=online with WANDB_SERVICE: the SDK leaves W&B's servers to its
    core; the base URL is a closed local port, so nothing could leave the machine."""
    run_id = f"online-{TAG}"
    ok(run_script("wandb", "with", run_id, tmp_path, sidecar, WANDB_MODE="online",
                  WANDB_BASE_URL="http://127.0.0.1:9", WANDB_API_KEY="x" * 40))
    assert read_json(sidecar.run_dir(run_id) / "run.json")["state"] == "finished"


def test_shared_mode_makes_each_process_a_writer_of_one_run(sidecar, tmp_path):
    """settings=wandb.Settings(mode="shared", x_label=..., x_primary=...): two
    processes write one run id, each as its own labelled writer; the non-primary's
    finish ends only itself, the primary's ends the run; every row lands once."""
    run_id = f"shared-{TAG}"
    release = tmp_path / "release"
    # Shared mode is an online mode to the SDK: a dummy key, W&B's URL a closed port.
    extra = dict(RELEASE=str(release), WANDB_BASE_URL="http://127.0.0.1:9", WANDB_API_KEY="x" * 40)
    work0 = tmp_path / "rank0"
    work0.mkdir()
    primary = subprocess.Popen([python_for("wandb"), str(SCRIPT), "shared", run_id], cwd=work0,
                               env=sdk_env(sidecar, "wandb", work0, RANK="0", **extra),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    d = sidecar.run_dir(run_id)
    try:
        wait_for(lambda: "ready" in (primary.stdout.readline() or "EOF"), "the primary to log", SCRIPT_TIMEOUT)
        ok(run_script("wandb", "shared", run_id, tmp_path / "rank1", sidecar, RANK="1", **extra))
        assert read_json(d / "run.json")["state"] == "running"
        release.touch()
        out, _ = primary.communicate(timeout=SCRIPT_TIMEOUT)
        assert primary.returncode == 0, out
    finally:
        if primary.poll() is None:
            primary.kill()
    assert read_json(d / "run.json")["state"] == "finished"
    history = read_lines(d / "history.jsonl")
    for rank in (0, 1):
        got = sorted(r[f"rank{rank}/loss"] for r in history if f"rank{rank}/loss" in r)
        assert got == sorted(1 / (i + 1) for i in range(10)), (rank, history)
    ended = [e["writer"] for e in read_lines(d / "events.jsonl") if e.get("_event") == "writer_ended"]
    assert [(w["label"], w["primary"], w["state"]) for w in ended] == [("rank-1", False, "finished")]


def test_runcore_exec_runs_a_script_and_returns_its_code(tmp_path):
    data = tmp_path / "data"
    # The environment of a plain wandb script: exec adds WANDB_SERVICE and WANDB_MODE.
    env = sdk_env(None, "wandb-core", tmp_path)
    env.pop("WANDB_MODE")
    cmd = [os.environ["RUNCORE_BIN"], "exec", "--data-dir", str(data), "--", sys.executable, str(SCRIPT)]
    ok(subprocess.run(cmd + ["with", f"exec-{TAG}"], cwd=tmp_path, env=env, capture_output=True,
                      text=True, timeout=SCRIPT_TIMEOUT))
    assert read_json(data / "docs" / f"exec-{TAG}" / "run.json")["state"] == "finished"
    failed = subprocess.run(cmd + ["exception", f"exec-exc-{TAG}"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=SCRIPT_TIMEOUT)
    assert failed.returncode == 1
    assert read_json(data / "docs" / f"exec-exc-{TAG}" / "run.json")["state"] == "failed"


def test_nan_does_not_poison_summaries_unlike_wandb_core(sidecar, tmp_path):
    """The deliberate difference the README names: runcore's min/max/mean skip NaN,
    wandb-core's become NaN."""
    run_id = f"nan-{TAG}"
    ok(run_script("wandb", "nan", run_id, tmp_path / "rc", sidecar))
    ours = read_json(sidecar.run_dir(run_id) / "summary.json")["loss"]
    assert ours == {"min": 0.25, "max": 0.5, "mean": 0.375}
    work = tmp_path / "core"
    ok(run_script("wandb-core", "nan", f"nancore{TAG}", work))
    run_dir = next((work / "wandb").glob("offline-run-*"))
    out = subprocess.run([os.environ["WANDB_READER_PYTHON"], str(Path(__file__).parent / "read_wandb_log.py"),
                          str(run_dir)], capture_output=True, text=True, timeout=SCRIPT_TIMEOUT,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 0, out.stderr
    theirs = json.loads(out.stdout)["summary"]["loss"]
    assert all(math.isnan(theirs[k]) for k in ("min", "max", "mean")), theirs
