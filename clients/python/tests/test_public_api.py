"""``runcore.Api``, W&B's public read API, against the real sidecar: listing runs
with filters and order, a run's attributes, history (DataFrame and list paths),
scan_history, files and downloads, update (open and ended runs, and the SDK's
``run.name = ...``), delete, wait_until_finished, to_html."""

from __future__ import annotations

import importlib
import itertools
import pathlib
import threading
import types
from typing import Any

import pytest

import runcore
from conftest import Sidecar, read_json, wait_for


def _run(sidecar: Sidecar, **kw: Any) -> runcore.Run:
    kw.setdefault("project", "proj")
    return runcore.init(settings=sidecar.settings(disable_stats=True), **kw)


def _finished(sidecar: Sidecar, **kw: Any) -> runcore.Run:
    run = _run(sidecar, **kw)
    run.log({"loss": 1.0})
    run.finish()
    return run


def test_runs_are_listed_filtered_and_ordered(sidecar: Sidecar) -> None:
    _finished(sidecar, id="a1", group="g", tags=["base"], config={"lr": 0.1})
    _finished(sidecar, id="a2", group="g", tags=["new"], config={"lr": 0.3})
    failed = _run(sidecar, id="a3", group="h", config={"lr": 0.2})
    failed.finish(exit_code=1)
    _finished(sidecar, id="other", project="elsewhere")
    api = runcore.Api(sidecar.address)

    assert [r.id for r in api.runs("proj")] == ["a3", "a2", "a1"], "newest first"
    assert [r.id for r in api.runs("proj", order="+created_at")] == ["a1", "a2", "a3"]
    assert [r.id for r in api.runs("me/proj", filters={"state": "finished", "group": "g"})] == ["a2", "a1"]
    assert [r.id for r in api.runs("proj", filters={"config.lr": {"$gt": 0.15}})] == ["a3", "a2"]
    assert [r.id for r in api.runs("proj", filters={"config.lr.value": 0.1})] == ["a1"]
    assert [r.id for r in api.runs("proj", filters={"tags": {"$in": ["new", "x"]}})] == ["a2"]
    assert [r.id for r in api.runs("proj", filters={"$or": [{"state": "failed"}, {"tags": "base"}]})] == ["a3", "a1"]
    assert [r.id for r in api.runs("proj", order="-config.lr")] == ["a2", "a3", "a1"]
    assert {r.id for r in api.runs()} == {"a1", "a2", "a3", "other"}
    runs = api.runs("proj", filters={"state": "failed"})
    assert len(runs) == 1 and runs[0].state == "failed"
    with pytest.raises(ValueError, match="unknown operator"):
        api.runs("proj", filters={"state": {"$near": 1}})


def test_a_run_has_the_wandb_attributes(sidecar: Sidecar) -> None:
    run = runcore.init(
        project="proj", entity="me", id="attrs", name="n1", group="g", job_type="train",
        tags=["t1"], notes="some notes", config={"lr": 0.01, "model": {"layers": 2}},
        settings=sidecar.settings(stats_sampling_interval=0.1),
    )
    for i in range(3):
        run.log({"loss": 1.0 / (i + 1)})
    api = runcore.Api(sidecar.address)
    wait_for(lambda: api.run("attrs").system_metrics or None, "a system-metrics sample")
    run.finish()

    got = api.run("me/proj/attrs")
    assert (got.id, got.name, got.state, got.group, got.job_type) == ("attrs", "n1", "finished", "g", "train")
    assert (got.tags, got.notes, got.entity, got.project) == (["t1"], "some notes", "me", "proj")
    assert got.config == {"lr": 0.01, "model": {"layers": 2}}
    assert got.summary["loss"] == pytest.approx(1 / 3)
    assert got.summary["_step"] == 2
    assert any(k.startswith("system.") for k in got.system_metrics)
    assert got.system_metrics["_timestamp"] > 1e9
    assert got.path == ["me", "proj", "attrs"]
    assert got.url.startswith("file://") and got.url.endswith("/proj/attrs")
    assert len(got.created_at) == 19 and got.created_at[4] == "-" and got.created_at[10] == "T"
    assert got.lastHistoryStep == 2
    assert api.run("proj/attrs").id == "attrs" and api.run("attrs").id == "attrs"
    with pytest.raises(runcore.CommError, match="not 'other'"):
        api.run("other/attrs")
    with pytest.raises(runcore.CommError, match="NOT_FOUND"):
        api.run("proj/missing")
    with pytest.raises(ValueError):
        api.run("a/b/c/d")


def _long_run(sidecar: Sidecar, n: int = 1000) -> runcore.Run:
    run = _run(sidecar, id="hist")
    for i in range(n):
        row: dict[str, Any] = {"loss": 1.0 / (i + 1)}
        if i % 10 == 0:
            row["val"] = {"acc": i / n}
            row["epoch"] = i // 10
        run.log(row)
    run.finish()
    return run


def test_history_downsamples_to_a_dataframe_or_a_list(sidecar: Sidecar, monkeypatch: pytest.MonkeyPatch) -> None:
    _long_run(sidecar)
    run = runcore.Api(sidecar.address).run("proj/hist")

    rows = run.history(samples=100, pandas=False)
    assert isinstance(rows, list) and 50 <= len(rows) <= 100
    steps = [r["_step"] for r in rows]
    assert steps[0] == 0 and steps[-1] == 999 and steps == sorted(steps)
    gaps = {b - a for a, b in zip(steps, steps[1:])}
    assert max(gaps) <= 3 * min(gaps), f"evenly spread: {sorted(gaps)}"
    assert len(run.history(samples=5000, pandas=False)) == 1000

    val = run.history(keys=["val"], x_axis="epoch", pandas=False)
    assert len(val) == 100
    assert set(val[0]) == {"val", "epoch", "_step", "_runtime", "_timestamp"}
    assert val[3]["val"] == {"acc": 0.03}

    pd = importlib.import_module("pandas")  # requirements-dev.txt installs it
    df = run.history(samples=50)
    assert isinstance(df, pd.DataFrame)
    assert len(df) <= 50 and {"loss", "_step"} <= set(df.columns)
    assert df["_step"].iloc[-1] == 999

    # Without pandas, history() gives the list even when asked for a DataFrame.
    real = importlib.import_module

    def no_pandas(name: str, *args: Any) -> types.ModuleType:
        if name == "pandas":
            raise ImportError("no pandas here")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_pandas)
    assert isinstance(run.history(samples=10), list)


def test_scan_history_streams_every_row(sidecar: Sidecar) -> None:
    _long_run(sidecar)
    run = runcore.Api(sidecar.address).run("proj/hist")
    rows = run.scan_history(page_size=7)
    assert not isinstance(rows, list), "an iterator, not a list"
    first = list(itertools.islice(rows, 3))
    assert [r["_step"] for r in first] == [0, 1, 2]
    assert [r["_step"] for r in run.scan_history()] == list(range(1000))
    losses = [r["loss"] for r in run.scan_history(keys=["loss"], min_step=10, max_step=20)]
    assert losses == pytest.approx([1 / (i + 1) for i in range(10, 20)])
    assert [r["epoch"] for r in run.scan_history(keys=["epoch"], page_size=3)] == list(range(100))
    with pytest.raises(ValueError):
        next(iter(run.scan_history(page_size=0)))


def test_files_are_listed_and_downloaded(sidecar: Sidecar, work_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    (work_dir / "ckpt").mkdir()
    big = bytes(range(256)) * 3000
    (work_dir / "ckpt" / "model.bin").write_bytes(big)
    (work_dir / "notes.txt").write_text("hello")
    run = _run(sidecar, id="files")
    run.save("ckpt/model.bin", policy="now")
    run.save("notes.txt", policy="now")
    run.finish()
    got = runcore.Api(sidecar.address).run("proj/files")

    files = got.files()
    assert [(f.name, f.size) for f in files] == [("ckpt/model.bin", len(big)), ("notes.txt", 5)]
    assert [f.name for f in got.files(pattern="%.txt")] == ["notes.txt"]
    assert [f.name for f in got.files(names=["ckpt/model.bin"])] == ["ckpt/model.bin"]
    out = tmp_path / "out"
    with got.file("ckpt/model.bin").download(root=str(out)) as f:
        assert f.name == str(out / "ckpt" / "model.bin")
    assert (out / "ckpt" / "model.bin").read_bytes() == big
    note = got.file("notes.txt")
    note.download(root=str(out)).close()
    (out / "notes.txt").write_text("changed")
    with pytest.raises(ValueError, match="replace=True"):
        note.download(root=str(out))
    note.download(root=str(out), exist_ok=True).close()
    assert (out / "notes.txt").read_text() == "changed"
    note.download(root=str(out), replace=True).close()
    assert (out / "notes.txt").read_text() == "hello"
    with pytest.raises(runcore.CommError, match="no file"):
        got.file("missing.txt")


def test_files_are_fetched_lazily_a_page_at_a_time(sidecar: Sidecar, work_dir: pathlib.Path) -> None:
    run = _run(sidecar, id="many")
    run.finish()
    files_dir = sidecar.run_dir("many", "proj") / "files"
    (files_dir / "d").mkdir(parents=True)
    names = sorted(f"d/f{i:03}.txt" if i % 7 == 0 else f"f{i:03}.txt" for i in range(230))
    for n in names:
        (files_dir / n).write_text(n)
    got = runcore.Api(sidecar.address).run("proj/many")
    calls: list[Any] = []
    real = got._api._call

    def counting(what: str, method: str, request: Any) -> Any:
        if method == "ListFiles":
            calls.append((request.page_size, request.page_token))
        return real(what, method, request)

    got._api._call = counting  # type: ignore[method-assign]
    files = got.files(per_page=100)
    first = next(iter(files))
    assert first.name == names[0] and len(calls) == 1, "one page for the first file"
    assert [f.name for f in files] == names
    assert [c[0] for c in calls[1:]] == [100, 100, 100]
    assert calls[2][1] == names[99], "the next page follows on from the last name"
    assert len(files) == 230 and files[229].name == names[-1]
    calls.clear()
    assert len(files) == 230 and not calls, "len() fetched once, then kept"
    assert [f.name for f in got.files(pattern="d/%", per_page=10)] == [n for n in names if n.startswith("d/")]
    assert got.file(names[-1]).size == len(names[-1])


def test_update_persists_on_an_ended_run(sidecar: Sidecar) -> None:
    _finished(sidecar, id="upd", name="before", tags=["a"], config={"lr": 0.1, "old": 1})
    api = runcore.Api(sidecar.address)
    run = api.run("proj/upd")
    run.name = "after"
    run.tags.append("b")
    run.notes = "edited later"
    run.config["lr"] = 0.2
    del run.config["old"]
    run.summary["acc"] = 0.9
    run.update()
    assert run.name == "after" and run.state == "finished"

    again = runcore.Api(sidecar.address).run("proj/upd")
    assert (again.name, again.tags, again.notes) == ("after", ["a", "b"], "edited later")
    assert again.config == {"lr": 0.2}
    assert again.summary["acc"] == 0.9 and again.summary["loss"] == 1.0
    on_disk = sidecar.run_json("upd", "proj")
    assert (on_disk["name"], on_disk["tags"], on_disk["state"]) == ("after", ["a", "b"], "finished")
    assert read_json(sidecar.run_dir("upd", "proj") / "config.json") == {"lr": 0.2}
    again.summary.update({"acc": 0.95})  # W&B's summary.update persists too
    assert runcore.Api(sidecar.address).run("upd").summary["acc"] == 0.95
    again.update()  # nothing changed: nothing sent
    listed = api.runs("proj")[0]  # not read in full yet: the change must survive that
    listed.notes = "from the list"
    listed.update()
    assert api.run("upd").notes == "from the list"
    with pytest.raises(ValueError, match="1..64"):
        again.tags = ["x" * 65]
        again.update()


def test_sdk_name_tags_and_notes_reach_the_sidecar(sidecar: Sidecar) -> None:
    run = _run(sidecar, id="live", name="first", tags=["t"])
    api = runcore.Api(sidecar.address)
    with _no_warning():
        run.name = "second"
        run.tags = ["t", "u"]
        run.notes = "from the sdk"
    got = api.run("live")
    assert (got.name, got.tags, got.notes, got.state) == ("second", ["t", "u"], "from the sdk", "running")
    # The public API edits a run that another client logs to.
    got.config["added"] = True
    got.update()
    run.log({"x": 1})
    run.finish()
    run.name = "after finish"
    final = api.run("live")
    assert final.name == "after finish" and final.config["added"] is True
    assert sidecar.run_json("live", "proj")["name"] == "after finish"


class _no_warning:
    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error", runcore.RuncoreWarning)

    def __exit__(self, *exc: Any) -> None:
        self._ctx.__exit__(*exc)


def test_delete_refuses_an_open_run(sidecar: Sidecar) -> None:
    run = _run(sidecar, id="del")
    api = runcore.Api(sidecar.address)
    with pytest.raises(runcore.CommError, match="FAILED_PRECONDITION.*finish it"):
        api.run("del").delete()
    run.finish()
    api.run("del").delete(delete_artifacts=True)
    assert not sidecar.run_dir("del", "proj").exists()
    with pytest.raises(runcore.CommError, match="NOT_FOUND"):
        api.run("del")
    assert [r.id for r in api.runs("proj")] == []


def test_wait_until_finished_and_to_html(sidecar: Sidecar) -> None:
    run = _run(sidecar, id="wait", name="waiting <run>", config={"lr": 0.5})
    api = runcore.Api(sidecar.address)
    watched = api.run("wait")
    with pytest.raises(TimeoutError):
        watched.wait_until_finished(timeout=0.2, poll_interval=0.05)
    started = threading.Event()

    def finish_later() -> None:
        started.wait()
        run.finish()

    t = threading.Thread(target=finish_later)
    t.start()
    started.set()
    watched.wait_until_finished(poll_interval=0.05)
    t.join()
    assert watched.state == "finished"

    page = watched.to_html(height=300)
    assert "waiting &lt;run&gt;" in page and "height:300px" in page and "lr" in page
    assert "display:none" in watched.to_html(hidden=True)


def test_the_api_reconnects_to_a_restarted_sidecar(sidecar: Sidecar) -> None:
    _finished(sidecar, id="back")
    api = runcore.Api(sidecar.address)
    assert [r.id for r in api.runs("proj")] == ["back"]
    sidecar.kill()
    sidecar.start()
    assert [r.id for r in api.runs("proj")] == ["back"]
    assert api.run("back").summary["loss"] == 1.0
