"""runcore.init: attributes, config, resume, one active run per process."""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import signal
import socket
import textwrap
import time

import pytest

import runcore
from conftest import Sidecar, read_json, run_script


def test_init_sets_every_attribute(sidecar: Sidecar, work_dir: pathlib.Path) -> None:
    before = time.time()
    assert runcore.run is None
    run = runcore.init(
        project="vision",
        entity="team",
        name="first",
        id="run-1",
        group="sweep-a",
        job_type="train",
        tags=["baseline", "cnn"],
        notes="a note",
        config={"lr": 0.01, "arch": {"layers": 3}},
        settings=sidecar.settings(),
    )
    assert runcore.run is run
    assert (run.id, run.name, run.entity, run.project) == ("run-1", "first", "team", "vision")
    assert (run.group, run.job_type, run.tags, run.notes) == ("sweep-a", "train", ("baseline", "cnn"), "a note")
    assert run.path == "team/vision/run-1"
    run_dir = sidecar.run_dir("run-1", "vision")
    assert run.dir == str(run_dir / "files") and os.path.isdir(run.dir)
    assert run.url == run_dir.as_uri() == run.get_url()
    assert run.get_project_url() == run_dir.parent.as_uri() == run.project_url
    assert run.get_sweep_url() is None and run.sweep_url is None and run.sweep_id is None
    assert before - 1 <= run.start_time <= time.time() + 1
    assert (run.starting_step, run.step, run.resumed, run.offline, run.disabled) == (0, 0, False, False, False)
    assert run.settings.address == sidecar.address
    assert run.config["lr"] == 0.01 and run.config.arch == {"layers": 3}

    info = sidecar.run_json("run-1", "vision")
    assert info["state"] == "running"
    assert info["name"] == "first" and info["group"] == "sweep-a" and info["tags"] == ["baseline", "cnn"]
    assert read_json(run_dir / "config.json") == {"lr": 0.01, "arch": {"layers": 3}}
    # The client tells the sidecar who it is (for liveness).
    text = (run_dir / "run.json").read_text()
    assert str(os.getpid()) in text and socket.gethostname() in text
    run.finish()
    assert runcore.run is None


def test_generated_id_and_name_and_default_project(sidecar: Sidecar) -> None:
    run = runcore.init(settings=sidecar.settings())
    assert re.fullmatch(r"[a-z0-9]{8}", run.id)
    assert run.name and run.project == "uncategorized"
    assert run.path == f"uncategorized/{run.id}"
    run.finish()


def test_config_updates_reach_the_sidecar(sidecar: Sidecar) -> None:
    args = argparse.Namespace(batch_size=32, optimizer="adam")
    run = runcore.init(project="p", config=args, config_exclude_keys=["optimizer"], settings=sidecar.settings())
    assert dict(run.config) == {"batch_size": 32}
    run.config.update({"dropout": 0.1, "sizes": (1, 2)})
    run.config.epochs = 10
    run.config["momentum"] = 0.9
    run.config.setdefaults({"epochs": 99, "seed": 7})
    assert run.config.epochs == 10 and run.config.seed == 7 and run.config["sizes"] == [1, 2]
    with pytest.raises(runcore.ConfigError, match="allow_val_change=True"):
        run.config.update({"epochs": 20})
    run.config.update({"epochs": 20}, allow_val_change=True)
    run.config.update({"epochs": 20})  # the same value is no change
    del run.config["momentum"]
    assert "momentum" not in run.config
    assert runcore.config.epochs == 20  # module-level config is the run's
    with pytest.raises(ValueError, match="keys must be non-empty str"):
        run.config.update({"": 1})
    expected = {"batch_size": 32, "dropout": 0.1, "sizes": [1, 2], "epochs": 20, "seed": 7}
    assert run.config.as_dict() == expected
    assert read_json(sidecar.run_dir(run) / "config.json") == expected
    run.finish()
    with pytest.raises(runcore.UsageError, match=r"call runcore.init\(\) before using runcore.config"):
        runcore.config.lr = 0.1


def test_one_active_run_per_process(sidecar: Sidecar) -> None:
    run = runcore.init(project="p", settings=sidecar.settings())
    assert runcore.init(project="p", settings=sidecar.settings()) is run  # W&B's default
    with pytest.raises(runcore.UsageError, match="only one run"):
        runcore.init(project="p", reinit="create_new", settings=sidecar.settings())
    second = runcore.init(project="p", reinit="finish_previous", settings=sidecar.settings())
    assert second is not run and runcore.run is second
    assert sidecar.run_json(run, "p")["state"] == "finished"
    second.finish()


def test_resume_continues_the_run(sidecar: Sidecar) -> None:
    run = runcore.init(project="p", id="resume-me", settings=sidecar.settings())
    for i in range(3):
        run.log({"x": i})
    run.finish()
    with pytest.raises(runcore.UsageError, match="already exists"):
        runcore.init(project="p", id="resume-me", settings=sidecar.settings())
    again = runcore.init(project="p", id="resume-me", resume="allow", settings=sidecar.settings())
    assert again.resumed and again.starting_step == 3 and again.step == 3
    assert again.start_time == pytest.approx(run.start_time)
    again.log({"x": 3})
    with pytest.warns(runcore.RuncoreWarning, match="smaller than the run's current step 4"):
        again.log({"x": 4}, step=2)
    again.finish()
    rows = sidecar.history("resume-me", "p")
    assert [(r["_step"], r["x"]) for r in rows] == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert sidecar.run_json("resume-me", "p")["state"] == "finished"
    with pytest.raises(runcore.UsageError, match="not found"):
        runcore.init(project="p", id="never-was", resume="must", settings=sidecar.settings())
    with pytest.raises(ValueError, match="run id"):
        runcore.init(project="p", id="bad id!", settings=sidecar.settings())


def test_batch_numbers_are_per_writer(sidecar: Sidecar) -> None:
    run = runcore.init(project="p", id="seqs", settings=sidecar.settings())
    for i in range(10):
        run.log({"x": i})
        run._flush()  # one batch each
    run.finish()
    # A new process (a new writer) numbers its own batches from 1: the sidecar
    # deduplicates per writer, so none of its rows is taken for an old one.
    again = runcore.init(project="p", id="seqs", resume="must", settings=sidecar.settings())
    assert again._sender.stats()["next_seq"] == 1
    assert again._writer_id != run._writer_id
    again.log({"x": 10})
    again.finish()
    assert [r["x"] for r in sidecar.history("seqs", "p")] == list(range(11))


def test_an_unreachable_address_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    addr = f"unix://{tmp_path}/nobody.sock"
    with pytest.raises(runcore.SidecarNotFoundError, match=rf"{re.escape(addr)} \(settings.address\)"):
        runcore.init(project="p", settings=runcore.Settings(address=addr, init_timeout=0.5))
    assert runcore.run is None


def test_a_resumed_run_has_its_whole_config(sidecar: Sidecar) -> None:
    run = runcore.init(project="p", id="cfg", config={"lr": 0.1, "arch": {"layers": 3}}, settings=sidecar.settings())
    run.config.update({"epochs": 5})
    run.finish()
    again = runcore.init(project="p", id="cfg", resume="allow", settings=sidecar.settings())
    assert again.resumed
    assert again.config.as_dict() == {"lr": 0.1, "arch": {"layers": 3}, "epochs": 5}
    assert again.config.arch == {"layers": 3}
    with pytest.raises(runcore.ConfigError, match="allow_val_change"):
        again.config.update({"lr": 0.2})  # a change, now that the client knows the value
    again.finish()
    # Keys given to a resuming init are merged into the run's config.
    third = runcore.init(project="p", id="cfg", resume="must", config={"seed": 7}, settings=sidecar.settings())
    assert third.config.as_dict() == {"lr": 0.1, "arch": {"layers": 3}, "epochs": 5, "seed": 7}
    third.finish()
    assert read_json(sidecar.run_dir(third) / "config.json") == third.config.as_dict()


FAILED_INIT_SCRIPT = textwrap.dedent(
    """
    import os, runcore
    try:
        runcore.init(project="p", id="after-failure")
    except runcore.Error as e:
        print("refused:", "authorization" in str(e), flush=True)
    assert runcore.run is None
    os.environ["RUNCORE_AUTH_TOKEN"] = {token!r}
    run = runcore.init(project="p", id="after-failure")
    run.log({{"x": 1.0}})
    run.finish()
    print("logged:", run.status().state, flush=True)
    """
)


def test_a_failed_init_does_not_poison_the_next(tmp_path: pathlib.Path) -> None:
    token = "tok-" + "y" * 28
    sc = Sidecar(tmp_path, extra=("--auth-token", token))
    try:
        proc = run_script(FAILED_INIT_SCRIPT.format(token=token), sc.env(), tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split("\n")[:2] == ["refused: True", "logged: finished"], proc.stdout + proc.stderr
        assert [r["x"] for r in sc.history("after-failure", "p")] == [1.0]
    finally:
        sc.kill(signal.SIGTERM)
