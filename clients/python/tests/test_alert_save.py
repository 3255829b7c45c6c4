"""run.alert (throttling) and run.save (W&B's layouts and policies)."""

from __future__ import annotations

import datetime
import os
import pathlib

import pytest

import runcore
from conftest import Sidecar, read_jsonl, wait_for


def test_alerts_are_throttled_per_title(sidecar: Sidecar) -> None:
    run = runcore.init(project="p", settings=sidecar.settings())
    first = run.alert("loss spike", "loss went up", level=runcore.AlertLevel.WARN)
    assert first.sent and not first.throttled and first
    again = run.alert("loss spike", "and again")
    assert again.throttled and not again.sent and not again
    assert again.throttled_until == pytest.approx(first.throttled_until)
    other = run.alert("other title", "different title, not throttled", level="error")
    assert other.sent
    # No wait: the same title is sent every time.
    assert run.alert("no wait", "1", wait_duration=0).sent
    assert run.alert("no wait", "2", wait_duration=datetime.timedelta(seconds=0)).sent
    short = run.alert("short", "x", wait_duration=300)
    assert short.throttled_until - run.start_time >= 299
    runcore.alert("short", "module-level: throttled", level="INFO")
    run.finish()
    alerts = read_jsonl(sidecar.run_dir(run) / "alerts.jsonl")
    assert [(a["title"], a["level"], a["outcome"]) for a in alerts] == [
        ("loss spike", "WARN", "sent"),
        ("loss spike", "INFO", "throttled"),
        ("other title", "ERROR", "sent"),
        ("no wait", "INFO", "sent"),
        ("no wait", "INFO", "sent"),
        ("short", "INFO", "sent"),
        ("short", "INFO", "throttled"),
    ]
    assert alerts[0]["text"] == "loss went up" and alerts[0]["wait_duration"] == 60
    assert alerts[5]["wait_duration"] == 300


def test_bad_alerts_are_refused(sidecar: Sidecar) -> None:
    run = runcore.init(project="p", settings=sidecar.settings())
    with pytest.raises(ValueError, match="1..64 characters"):
        run.alert("", "empty title")
    with pytest.raises(ValueError, match="1..64 characters"):
        run.alert("x" * 65, "long title")
    with pytest.raises(ValueError, match="not one of INFO, WARN, ERROR"):
        run.alert("t", "x", level="LOUD")
    with pytest.raises(ValueError, match="wait_duration must be >= 0"):
        run.alert("t", "x", wait_duration=-1)
    assert run.alert("x" * 64, "64 is fine").sent
    run.finish()


def touch(root: pathlib.Path, rel: str, text: str = "") -> pathlib.Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text or rel)
    return p


def saved_names(run: runcore.Run, paths: list[str]) -> list[str]:
    return sorted(os.path.relpath(p, run.dir) for p in paths)


def test_save_layouts_follow_the_wandb_doc(sidecar: Sidecar, work_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    for rel in ("these/are/myfiles/a.txt", "these/are/myfiles/b.txt", "files/x/saveme.txt", "files/y/saveme.txt", "files/y/other.txt"):
        touch(work_dir, rel)
    docs = tmp_path / "User" / "username" / "Documents" / "run123"
    touch(docs, "notes.txt")
    touch(docs, "skip.csv")
    run = runcore.init(project="p", settings=sidecar.settings())
    files = pathlib.Path(run.dir)

    got = run.save("these/are/myfiles/*", policy="now")
    assert saved_names(run, got) == ["these/are/myfiles/a.txt", "these/are/myfiles/b.txt"]
    assert all(os.path.isfile(p) for p in got)
    assert saved_names(run, run.save("these/are/myfiles/*", base_path="these", policy="now")) == [
        "are/myfiles/a.txt",
        "are/myfiles/b.txt",
    ]
    assert saved_names(run, run.save(f"{docs}/*.txt", policy="now")) == ["run123/notes.txt"]
    assert saved_names(run, run.save(f"{docs}/*.txt", base_path=str(tmp_path / "User"), policy="now")) == [
        "username/Documents/run123/notes.txt"
    ]
    assert saved_names(run, run.save("files/*/saveme.txt", policy="now")) == [
        "files/x/saveme.txt",
        "files/y/saveme.txt",
    ]
    assert run.save("nothing/matches/*") == []
    assert (files / "run123" / "notes.txt").read_text() == "notes.txt"
    assert (files / "are" / "myfiles" / "b.txt").read_text() == "these/are/myfiles/b.txt"
    with pytest.raises(ValueError, match="not a prefix"):
        run.save("these/*", base_path="elsewhere")
    with pytest.raises(ValueError, match='policy must be "live", "now" or "end"'):
        run.save("these/*", policy="sometimes")
    run.finish()


def test_save_policies(sidecar: Sidecar, work_dir: pathlib.Path) -> None:
    now = touch(work_dir, "now.txt", "v1")
    end = touch(work_dir, "end.txt", "v1")
    live = touch(work_dir, "live.txt", "v1")
    run = runcore.init(project="p", settings=sidecar.settings())
    files = pathlib.Path(run.dir)
    run.save("now.txt", policy="now")
    run.save("end.txt", policy="end")
    runcore.save("live.txt")  # default policy: live
    assert (files / "now.txt").read_text() == "v1"
    assert (files / "live.txt").read_text() == "v1"
    assert not (files / "end.txt").exists()  # copied at finish
    live.write_text("v2")
    # A live file is copied again once it changed and stopped changing.
    wait_for(lambda: (files / "live.txt").read_text() == "v2", "the live file's new version")
    now.write_text("v2")
    end.write_text("v2")
    live.write_text("v3")
    run.finish()
    assert (files / "now.txt").read_text() == "v1"
    assert (files / "end.txt").read_text() == "v2"
    assert (files / "live.txt").read_text() == "v3"
