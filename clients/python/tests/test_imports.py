"""``import runcore`` and the whole run path load neither grpc nor protobuf (issue
20: init must be cheap); the read API loads them when it is used. ``import
runcore`` loads neither the read API, the artifacts nor the media modules either:
their names resolve on first use. Each check runs in a fresh interpreter, whose
sys.modules is the evidence."""

from __future__ import annotations

import json
import pathlib

from conftest import BIN, Sidecar, run_script

#: Prints which of the heavy modules the code before it loaded.
REPORT = """
import json, sys
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("grpc", "grpc_health") or m.startswith("google.protobuf"))
print(json.dumps(heavy))
"""

RUN_PATH = """
import runcore
with runcore.init(project="imports", id="path", config={"lr": 0.1}) as run:
    run.log({"loss": 0.5, "text": "a", "nested": {"a": [1, 2]}})
    run.log({"h": runcore.Histogram([1.0, 2.0, 3.0])}, step=3)
    run.config.update({"epochs": 2})
    run.summary["best"] = 0.4
    run.define_metric("loss", summary="min")
    run.alert("done", "all rows logged")
    run.mark_preempting()
    status = run.status()
    assert status.rows_logged == 2, status
assert run.status().state == "finished", run.status()
"""


def reported(code: str, report: str, sidecar: Sidecar, cwd: pathlib.Path) -> list[str]:
    """The module list `report` prints after `code` ran in a fresh interpreter."""
    done = run_script(code + report, sidecar.env(), cwd)
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def heavy_modules(code: str, sidecar: Sidecar, cwd: pathlib.Path) -> list[str]:
    return reported(code, REPORT, sidecar, cwd)


def test_import_runcore_loads_no_grpc_or_protobuf(sidecar: Sidecar, tmp_path: pathlib.Path) -> None:
    assert heavy_modules("import runcore\n", sidecar, tmp_path) == []


def test_the_run_path_loads_no_grpc_or_protobuf(sidecar: Sidecar, tmp_path: pathlib.Path) -> None:
    assert heavy_modules(RUN_PATH, sidecar, tmp_path) == []
    rows = sidecar.history("path", "imports")
    assert [r.get("loss") for r in rows] == [0.5, None]
    assert sidecar.summary_json("path", "imports")["best"] == 0.4


def test_the_read_api_loads_grpc_when_used(sidecar: Sidecar, tmp_path: pathlib.Path) -> None:
    # The check above would pass with a REPORT that sees nothing: this one must see grpc.
    code = RUN_PATH + "assert runcore.Api().run('imports/path').summary['best'] == 0.4\n"
    assert "grpc" in heavy_modules(code, sidecar, tmp_path)


#: The modules the run path does not need, loaded on first use of runcore.Api,
#: runcore.Artifact, runcore.Table, runcore.plot...
LAZY = ["runcore._artifacts", "runcore._media", "runcore.plot", "runcore.public"]

#: Prints which of the lazy modules the code before it loaded.
LAZY_REPORT = f"""
import json, sys
print(json.dumps(sorted(m for m in {LAZY!r} if m in sys.modules)))
"""


def lazy_modules(code: str, sidecar: Sidecar, cwd: pathlib.Path) -> list[str]:
    return reported(code, LAZY_REPORT, sidecar, cwd)


def test_import_and_the_run_path_load_no_read_api_artifacts_or_media(sidecar: Sidecar, tmp_path: pathlib.Path) -> None:
    assert lazy_modules("import runcore\n", sidecar, tmp_path) == []
    assert lazy_modules(RUN_PATH, sidecar, tmp_path) == []


def test_the_lazy_names_resolve_on_first_use(sidecar: Sidecar, tmp_path: pathlib.Path) -> None:
    # The check above would pass with a LAZY_REPORT that sees nothing: this one must
    # see every lazy module, through the names a user reaches them by.
    code = """
import runcore
names = ["Api", "Artifact", "ArtifactManifestEntry", "Audio", "Html", "Object3D", "Table", "Video", "plot"]
assert set(names) <= set(dir(runcore)), dir(runcore)
from runcore import Table
from runcore.public import Api
from runcore._artifacts import Artifact
assert runcore.Table is Table and runcore.Api is Api and runcore.Artifact is Artifact
table = Table(columns=["x", "y"], data=[[1, 2]])
assert isinstance(runcore.plot.line(table, "x", "y"), runcore.Table)
assert all(getattr(runcore, n) is not None for n in names)
try:
    runcore.NoSuchName
except AttributeError as e:
    assert "NoSuchName" in str(e), e
else:
    raise AssertionError("runcore.NoSuchName resolved")
"""
    assert lazy_modules(code, sidecar, tmp_path) == LAZY


#: Standard-library modules that would cost ``import runcore`` + ``init()`` more than
#: the rest of the run path; the code that needs them imports them on first use.
SLOW_STDLIB = ["dataclasses", "datetime", "inspect", "pathlib", "socket", "uuid"]

#: The run as most scripts use it: init (its message shown), log, config and
#: summary, finish (its message shown). Not alert, define_metric or status, whose
#: results are dataclasses (runcore._results).
PLAIN_RUN = """
import runcore
with runcore.init(project="imports", id="plain", config={"lr": 0.1}) as run:
    run.log({"loss": 0.5, "nested": {"a": [1, 2]}})
    run.log({"h": runcore.Histogram([1.0, 2.0, 3.0])}, step=3)
    run.config.update({"epochs": 2})
    run.summary["best"] = 0.4
    run.mark_preempting()
"""

#: Prints which of SLOW_STDLIB the code before it loaded (not the interpreter's start).
STDLIB_REPORT = f"""
import json, sys
print(json.dumps(sorted(m for m in {SLOW_STDLIB!r} if m in sys.modules and m not in _preloaded)))
"""


def stdlib_loaded(code: str, env: dict[str, str], cwd: pathlib.Path) -> list[str]:
    done = run_script("import sys\n_preloaded = set(sys.modules)\n" + code + STDLIB_REPORT, env, cwd)
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_import_and_a_plain_run_load_no_slow_stdlib_modules(sidecar: Sidecar, tmp_path: pathlib.Path) -> None:
    env = sidecar.env(RUNCORE_SILENT="")  # init and finish print their messages
    assert stdlib_loaded("import runcore\n", env, tmp_path) == []
    assert stdlib_loaded(PLAIN_RUN, env, tmp_path) == []
    # Spawning a private sidecar (no RUNCORE_ADDRESS) takes no slow module either.
    spawn_env = {k: v for k, v in env.items() if k != "RUNCORE_ADDRESS"}
    spawn_env["RUNCORE_BIN"] = BIN
    assert stdlib_loaded(PLAIN_RUN, spawn_env, tmp_path) == []


def test_the_slow_stdlib_modules_load_when_used(sidecar: Sidecar, tmp_path: pathlib.Path) -> None:
    # The checks above would pass with a report that sees nothing: the calls that
    # need these modules must load them, and still work.
    code = PLAIN_RUN.replace("run.mark_preempting()", """run.mark_preempting()
    assert run.status().rows_logged == 2
    assert runcore.Metric is type(run.define_metric("loss", summary="min"))
    assert run.alert("t", "x").sent
    assert run.get_url().startswith("file://")
    assert runcore.Settings(quiet=True) == runcore.Settings(quiet=True) != runcore.Settings()
""")
    assert stdlib_loaded(code, sidecar.env(), tmp_path) == ["dataclasses", "inspect", "pathlib"]
