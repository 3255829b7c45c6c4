"""``import runcore`` and the whole run path load neither grpc nor protobuf (issue
20: init must be cheap); the read API loads them when it is used. Each check runs
in a fresh interpreter, whose sys.modules is the evidence."""

from __future__ import annotations

import json
import pathlib

from conftest import Sidecar, run_script

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


def heavy_modules(code: str, sidecar: Sidecar, cwd: pathlib.Path) -> list[str]:
    done = run_script(code + REPORT, sidecar.env(), cwd)
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


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
