"""Shared runs (W&B's ``settings.mode="shared"``): several processes write one run.

Each process is a writer with its own batch seqs, step counter, liveness and
labelled system metrics; every row lands exactly once; a writer that dies is
reported and the run goes on; rows sent after the primary ended the run are refused
with an error the writer surfaces.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from typing import Any

import grpc
import pytest

import runcore
from runcore._proto import runcore_pb2 as pb
from runcore._proto import runcore_pb2_grpc as pbg

from conftest import PATIENCE, Sidecar, read_jsonl, wait_for

WRITERS = 8
ROWS = 10_000

#: A writer process: joins run $RUN as rank $RANK, logs $ROWS rows of its own key,
#: then (the primary) waits for a line on stdin before it finishes.
WRITER = """
import json, os, sys
import runcore
rank = int(os.environ["RANK"])
primary = rank == 0
run = runcore.init(
    id=os.environ["RUN"], project="p", resume="allow",
    settings=dict(mode="shared", x_label=f"rank-{rank}", x_primary=primary,
                  x_update_finish_state=primary, stats_sampling_interval=0.1),
)
for j in range(int(os.environ["ROWS"])):
    run.log({f"w{rank}": j})
if primary:
    print("logged", flush=True)
    sys.stdin.readline()
run.finish()
status = run.status()
print(json.dumps({"acked": status.rows_acked, "lost": status.rows_lost}), flush=True)
"""


def _stub(sidecar: Sidecar) -> pbg.RunServiceStub:
    return pbg.RunServiceStub(grpc.insecure_channel(sidecar.address))


def _writer(sidecar: Sidecar, rank: int, run_id: str, rows: int) -> "subprocess.Popen[str]":
    return subprocess.Popen(
        [sys.executable, "-c", WRITER],
        env=sidecar.env(RANK=str(rank), RUN=run_id, ROWS=str(rows)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_eight_processes_write_one_run_every_row_once(sidecar: Sidecar) -> None:
    procs = [_writer(sidecar, rank, "shared8", ROWS) for rank in range(WRITERS)]
    primary = procs[0]
    assert primary.stdout is not None and primary.stdin is not None
    assert primary.stdout.readline().strip() == "logged"
    for p in procs[1:]:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert json.loads(out) == {"acked": ROWS, "lost": 0}
    out, err = primary.communicate("finish\n", timeout=300)
    assert primary.returncode == 0, err
    history = sidecar.history("shared8", "p")
    for rank in range(WRITERS):
        got = sorted(row[f"w{rank}"] for row in history if f"w{rank}" in row)
        assert got == list(range(ROWS)), f"rank {rank}: {len(got)} rows"
    assert sidecar.run_json("shared8", "p")["state"] == "finished"
    events = read_jsonl(sidecar.run_dir("shared8", "p") / "events.jsonl")
    for rank in range(WRITERS):
        key = f"system.proc.memory.rssMB/l:rank-{rank}"
        assert any(key in line for line in events), f"no {key} sample"
    unlabelled = {k for line in events for k in line if k.startswith("system.") and "/l:" not in k}
    assert not unlabelled


def test_a_sigkilled_writer_is_reported_and_the_run_goes_on(sidecar: Sidecar) -> None:
    run = runcore.init(
        id="killed1",
        project="p",
        settings=sidecar.settings(mode="shared", x_label="rank-0"),
    )
    worker = _writer(sidecar, 1, "killed1", 10**9)  # logs until killed
    wait_for(lambda: any("w1" in row for row in sidecar.history("killed1", "p")), "rows of the worker")
    worker.send_signal(signal.SIGKILL)
    worker.wait(PATIENCE)

    def crashed() -> Any:
        got = _stub(sidecar).GetRun(pb.GetRunRequest(run_id="killed1"))
        w = [w for w in got.writers if w.label == "rank-1"]
        return got if w and w[0].state == pb.RUN_STATE_CRASHED else None

    got = wait_for(crashed, "the killed writer reported crashed")
    assert got.run.state == pb.RUN_STATE_RUNNING

    def ended_events() -> Any:
        lines = read_jsonl(sidecar.run_dir(run) / "events.jsonl")
        return [e for e in lines if e.get("_event") == "writer_ended"] or None

    ended = wait_for(ended_events, "the writer_ended line in events.jsonl")
    assert [(e["writer"]["label"], e["writer"]["state"]) for e in ended] == [("rank-1", "crashed")]
    for i in range(10):
        run.log({"w0": i})
    run.finish()
    assert sidecar.run_json(run)["state"] == "finished"
    assert [row["w0"] for row in sidecar.history(run) if "w0" in row] == list(range(10))


#: A non-primary writer: logs 200 rows, waits for the primary to finish the run,
#: logs 100 more, finishes, and reports what it was told.
WORKER = """
import json, os, sys, warnings
import runcore
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    run = runcore.init(id=os.environ["RUN"], project="p", resume="allow",
                       settings=dict(mode="shared", x_label="rank-1", x_primary=False,
                                     x_update_finish_state=False))
    for n in range(200):
        run.log({"w1": n})
    run._flush()
    print("going", flush=True)
    sys.stdin.readline()
    for n in range(200, 300):
        run.log({"w1": n})
    run.finish()
s = run.status()
print(json.dumps({"state": s.state, "logged": s.rows_logged, "acked": s.rows_acked, "lost": s.rows_lost,
                  "warnings": [str(w.message) for w in caught]}), flush=True)
"""


def test_rows_after_the_primary_finished_are_refused_and_reported(sidecar: Sidecar) -> None:
    run = runcore.init(id="prim1", project="p", settings=sidecar.settings(mode="shared", x_label="rank-0"))
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER],
        env=sidecar.env(RUN="prim1"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    assert worker.stdout.readline().strip() == "going"
    run.log({"w0": 1.0})
    run.finish()
    out, err = worker.communicate("more\n", timeout=120)
    assert worker.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    # Nothing vanished without a word: the 100 rows sent after the end are counted
    # lost, and the writer was warned how the run ended.
    assert report["state"] == "finished"
    assert (report["logged"], report["acked"], report["lost"]) == (300, 200, 100)
    assert any("ended run prim1 as finished" in w for w in report["warnings"]), report["warnings"]
    assert "100 rows were not delivered" in err or "100 logged rows" in err, err
    recorded = sorted(row["w1"] for row in sidecar.history(run) if "w1" in row)
    assert recorded == list(range(200))


def test_a_second_process_without_shared_mode_is_refused(sidecar: Sidecar) -> None:
    runcore.init(id="solo1", project="p", settings=sidecar.settings())
    code = (
        "import runcore\n"
        "try:\n"
        "    runcore.init(id='solo1', project='p', resume='allow')\n"
        "except runcore.UsageError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=sidecar.env(), capture_output=True, text=True, timeout=60
    )
    assert "open by another live writer" in out.stdout, out.stderr
    import os

    assert f"pid {os.getpid()}" in out.stdout


@pytest.mark.parametrize("settings", [dict(mode="shared", x_label="r", x_primary=False), None])
def test_settings_spell_wandb_shared_mode(settings: Any) -> None:
    s = runcore.Settings.make(settings)
    if settings is None:
        assert (s.mode, s.x_label, s.x_primary, s.x_update_finish_state) == ("online", None, True, True)
    else:
        assert (s.mode, s.x_label, s.x_primary) == ("shared", "r", False)
        assert runcore.Settings(mode="shared", x_label="r", x_primary=False).x_primary is False
