"""The shared test vectors of tests/vectors/ (format: tests/vectors/README.md).

- The step/commit cases run against the client's own step mirror, the native
  core's (``run._sender``, a ``runcore._native.Sender``: ``run.step`` and the rows
  it drops before sending them, which its ``log`` reports by returning False and
  never queues): ``steps``, ``step``, ``dropped``.
- Every case runs against the real sidecar through the client (``run.log``,
  ``define_metric``, ``summary``, ``finish``): rows (ScanHistory), dropped rows, the
  step (the client's and the sidecar's), the summary and the metric definitions.
  The client computes neither summaries nor definitions itself: those are the
  sidecar's.
- ``status_contract.json`` runs against ``runcore._contract.classify``.
- ``shared_steps.json`` (several writers of one run) runs against the real sidecar
  through plain stubs: one Python process is one writer, and these cases need
  several. Every field of every case.
"""

from __future__ import annotations

import json
import math
import signal
import warnings
from typing import Any, Iterator

import grpc
import pytest

import runcore
from conftest import REPO, Sidecar
from runcore import _values
from runcore._contract import RETRY_LIMITED_ATTEMPTS, Action, Kind, classify
from runcore._proto import runcore_pb2 as pb
from runcore._proto import runcore_pb2_grpc as pbg

VECTORS = REPO / "tests" / "vectors"
SEMANTICS = ("log_steps.json", "summary.json", "define_metric.json")
#: The exception the Python client raises for a call refused with a status.
ERRORS: dict[str, type[BaseException]] = {"INVALID_ARGUMENT": ValueError}
TIME_KEYS = ("_runtime", "_timestamp")


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text())
    return data


def all_cases() -> list[Any]:
    cases = []
    for name in SEMANTICS:
        data = load(name)
        assert data["format"] == "runcore.vectors.semantics/1", f"{name}: unknown format {data['format']!r}"
        for case in data["cases"]:
            cases.append(pytest.param(case, id=case["name"]))
    return cases


CASES = all_cases()

#: Cases the sidecar gets wrong today, and why; strict: once it is fixed the test
#: fails until the entry is removed (clients/go/vectors_test.go has the same list).
SIDECAR_DEFECTS: dict[str, str] = {}


def sidecar_cases() -> list[Any]:
    out = []
    for p in CASES:
        case = p.values[0]
        why = SIDECAR_DEFECTS.get(case["name"])
        marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
        out.append(pytest.param(case, id=case["name"], marks=marks))
    return out


def decode(v: Any) -> Any:
    """A vector VALUE as the Python value to log (ints stay int, doubles float)."""
    if isinstance(v, dict):
        if set(v) == {"$double"}:
            return float(v["$double"])  # "NaN", "Infinity", "-Infinity"
        return {k: decode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [decode(x) for x in v]
    return v


def check(expected: Any, actual: Any, where: str) -> None:
    """README "Comparison": numbers by value (NaN equals NaN), objects by key set."""
    exp = decode(expected) if isinstance(expected, dict) and set(expected) == {"$double"} else expected
    if isinstance(exp, bool) or exp is None or isinstance(exp, str):
        assert type(actual) is type(exp) and actual == exp, f"{where}: {actual!r}, want {exp!r}"
    elif isinstance(exp, (int, float)):
        assert isinstance(actual, (int, float)) and not isinstance(actual, bool), f"{where}: {actual!r}, want {exp!r}"
        a, b = float(exp), float(actual)
        ok = (math.isnan(a) and math.isnan(b)) or a == b or abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
        assert ok, f"{where}: {actual!r}, want {exp!r}"
    elif isinstance(exp, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r}, want a map"
        assert set(actual) == set(exp), f"{where}: keys {sorted(actual)}, want {sorted(exp)}"
        for k in exp:
            check(exp[k], actual[k], f"{where}.{k}")
    elif isinstance(exp, list):
        assert isinstance(actual, list) and len(actual) == len(exp), f"{where}: {actual!r}, want {exp!r}"
        for i, (e, a) in enumerate(zip(exp, actual)):
            check(e, a, f"{where}[{i}]")
    else:
        raise AssertionError(f"{where}: the vector holds {exp!r}, which the format does not allow")


OPERATIONS = ("log", "define_metric", "update_summary", "finish")


def operation(call: dict[str, Any]) -> str:
    ops = [k for k in call if k in OPERATIONS]
    known = set(OPERATIONS) | {"step", "commit", "remove", "error"}
    assert len(ops) == 1 and set(call) <= known, f"call {call} is not one operation the format knows"
    return ops[0]


# -- the client's step mirror -----------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_step_mirror(shared_sidecar: Sidecar, case: dict[str, Any]) -> None:
    run = runcore.init(project="vectors", id="mirror-" + case["name"], settings=shared_sidecar.settings())
    sender = run._sender
    try:
        steps: list[int] = []
        dropped: list[dict[str, int]] = []
        for i, call in enumerate(case["calls"]):
            op = operation(call)
            if op == "log":
                current, queued, dropped_before = sender.step, sender.stats()["rows_queued"], run._dropped
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", runcore.RuncoreWarning)  # the drop's warning
                    sender.log(decode(call["log"]), call.get("step"), call.get("commit"))
                kept = run._dropped == dropped_before
                assert sender.stats()["rows_queued"] == queued + kept, "a dropped row is never queued"
                if not kept:
                    dropped.append({"call": i, "step": call["step"], "current_step": current})
            elif op == "finish":
                sender.finish_steps()
            steps.append(sender.step)
        expect = case["expect"]
        if "steps" in expect:
            assert steps == expect["steps"]
        assert sender.step == expect["step"]
        assert dropped == expect["dropped"]
    finally:
        run.finish()


# -- the real sidecar, through the client ---------------------------------------------


@pytest.fixture(scope="module")
def shared_sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    sc = Sidecar(tmp_path_factory.mktemp("vectors"))
    yield sc
    try:
        runcore.teardown()
    finally:
        sc.kill(signal.SIGTERM)


def history(run: runcore.Run) -> list[dict[str, Any]]:
    sc = run._sidecar
    rows = []
    for resp in sc.stub.ScanHistory(pb.ScanHistoryRequest(run_id=run.id), metadata=sc.metadata, timeout=30):
        for r in resp.rows:
            values = _values.map_from_proto(r.values)
            for k in ("_step", *TIME_KEYS):
                values.pop(k, None)
            rows.append({"step": r.step, "values": values})
    return rows


def get_run(run: runcore.Run) -> pb.GetRunResponse:
    sc = run._sidecar
    resp: pb.GetRunResponse = sc.stub.GetRun(pb.GetRunRequest(run_id=run.id), metadata=sc.metadata, timeout=30)
    return resp


def apply(run: runcore.Run, i: int, call: dict[str, Any], dropped: list[dict[str, int]]) -> None:
    op = operation(call)
    if op == "log":
        current, before = run.step, run.status().rows_dropped
        run.log(decode(call["log"]), step=call.get("step"), commit=call.get("commit"))
        run._flush()  # a row the sidecar drops is reported by its ack
        if run.status().rows_dropped > before:
            dropped.append({"call": i, "step": call["step"], "current_step": current})
    elif op == "define_metric":
        run.define_metric(**call["define_metric"])
    elif op == "update_summary":
        for key in call.get("remove", ()):  # removals first, as in one UpdateSummaryRequest
            del run.summary[key]
        if call["update_summary"]:
            run.summary.update(decode(call["update_summary"]))
    else:
        run.finish(exit_code=call["finish"].get("exit_code"))


@pytest.mark.parametrize("case", sidecar_cases())
def test_sidecar(shared_sidecar: Sidecar, case: dict[str, Any]) -> None:
    run = runcore.init(project="vectors", id=case["name"], settings=shared_sidecar.settings())
    try:
        steps: list[int] = []
        dropped: list[dict[str, int]] = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", runcore.RuncoreWarning)
            for i, call in enumerate(case["calls"]):
                if "error" in call:
                    with pytest.raises(ERRORS[call["error"]]):
                        apply(run, i, call, dropped)
                else:
                    apply(run, i, call, dropped)
                steps.append(run.step)
        expect = case["expect"]
        # A dropped row is reported, never silent.
        assert bool(expect["dropped"]) == any("smaller than" in str(w.message) for w in caught)
        if "steps" in expect:
            assert steps == expect["steps"]
        got = get_run(run)
        assert run.step == expect["step"], "the client's step"
        assert got.run.step == expect["step"], "the sidecar's step"
        check(expect["rows"], history(run), "rows")
        assert dropped == expect["dropped"]
        if "summary" in expect:
            summary = dict(run.summary)
            for k in TIME_KEYS:
                summary.pop(k, None)
            check(expect["summary"], summary, "summary")
        if "metrics" in expect:
            metrics = [
                {
                    "name": m.name,
                    "step_metric": m.step_metric,
                    "step_sync": m.step_sync,
                    "hidden": m.hidden,
                    "summary": list(m.summary),
                    "goal": m.goal,
                }
                for m in got.metrics
            ]
            check(expect["metrics"], metrics, "metrics")
    finally:
        run.finish()


# -- shared runs: several writers, plain stubs -------------------------------------------

SHARED = load("shared_steps.json")
assert SHARED["format"] == "runcore.vectors.shared/1", f"shared_steps.json: unknown format {SHARED['format']!r}"
STATE_NAMES = {v: k.removeprefix("RUN_STATE_").lower() for k, v in pb.RunState.items()}


def writer_init(run_id: str, writer: str, primary: bool) -> pb.InitRequest:
    """A writer of a shared case: the first is primary, the others may not end the run."""
    return pb.InitRequest(
        id=run_id,
        project="vectors",
        resume=pb.RESUME_ALLOW,
        writer_id=writer,
        writer=pb.WriterSettings(shared=True, label=writer, primary=primary, update_finish_state=primary),
    )


def shared_call(stub: pbg.RunServiceStub, run_id: str, i: int, call: dict[str, Any], seqs: dict[str, int], dropped: list[dict[str, int]]) -> None:
    writer = call["writer"]
    ops = [k for k in ("join", "log", "finish") if k in call]
    assert len(ops) == 1 and set(call) <= {"writer", "join", "log", "finish", "step", "commit", "error"}, call
    if ops[0] == "join":
        stub.Init(writer_init(run_id, writer, False), timeout=30)
    elif ops[0] == "log":
        seqs[writer] = seqs.get(writer, 0) + 1
        req = pb.LogRequest(run_id=run_id, writer_id=writer, seq=seqs[writer])
        _values.map_to_proto(req.data, decode(call["log"]), "log")
        if "step" in call:
            req.step = call["step"]
        if "commit" in call:
            req.commit = call["commit"]
        for d in stub.Log(req, timeout=30).dropped:
            dropped.append({"call": i, "step": d.step, "current_step": d.current_step})
    else:
        finish = pb.FinishRequest(run_id=run_id, writer_id=writer)
        if "exit_code" in call["finish"]:
            finish.exit_code = call["finish"]["exit_code"]
        stub.Finish(finish, timeout=30)


@pytest.mark.parametrize("case", [pytest.param(c, id=c["name"]) for c in SHARED["cases"]])
def test_shared_sidecar(shared_sidecar: Sidecar, case: dict[str, Any]) -> None:
    stub = pbg.RunServiceStub(grpc.insecure_channel(shared_sidecar.address))
    run_id = case["name"][:60]
    for n, writer in enumerate(case["writers"]):
        stub.Init(writer_init(run_id, writer, n == 0), timeout=30)
    seqs: dict[str, int] = {}
    steps: list[int] = []
    dropped: list[dict[str, int]] = []
    for i, call in enumerate(case["calls"]):
        if "error" in call:
            with pytest.raises(grpc.RpcError) as refused:
                shared_call(stub, run_id, i, call, seqs, dropped)
            assert refused.value.code().name == call["error"]
        else:
            shared_call(stub, run_id, i, call, seqs, dropped)
        steps.append(stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=30).run.step)
    expect = case["expect"]
    got = stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=30)
    if "steps" in expect:
        assert steps == expect["steps"]
    assert got.run.step == expect["step"]
    assert dropped == expect["dropped"]
    rows = []
    for resp in stub.ScanHistory(pb.ScanHistoryRequest(run_id=run_id), timeout=30):
        for r in resp.rows:
            values = _values.map_from_proto(r.values)
            for k in ("_step", *TIME_KEYS):
                values.pop(k, None)
            rows.append({"step": r.step, "values": values})
    check(expect["rows"], rows, "rows")
    if "state" in expect:
        assert STATE_NAMES[got.run.state] == expect["state"]
    writers = {w.id: w for w in got.writers}
    for w, step in expect.get("writer_steps", {}).items():
        assert writers[w].step == step, f"writer {w} step"
    for w, state in expect.get("writer_states", {}).items():
        assert STATE_NAMES[writers[w].state] == state, f"writer {w} state"


# -- the status contract --------------------------------------------------------------


def test_status_contract() -> None:
    table = load("status_contract.json")
    assert table["format"] == "runcore.vectors.status_contract/1"
    assert {row["code"] for row in table["codes"]} == {c.name for c in grpc.StatusCode}
    assert set(table["actions"]) == {a.value for a in Action}
    assert set(table["kinds"]) == {k.value for k in Kind}
    for row in table["codes"]:
        assert grpc.StatusCode[row["code"]].value[0] == row["number"], row["code"]
        for kind in Kind:
            assert classify(row["code"], kind).value == row[kind.value], f"{row['code']} on a {kind.value} call"
    assert RETRY_LIMITED_ATTEMPTS == table["limits"]["retry_limited_attempts"]
    assert runcore.Settings().reconnect_timeout == table["limits"]["reconnect_timeout_seconds"]


def test_the_vectors_cover_what_they_claim() -> None:
    """The issue's list: each rule has a case (a renamed case must keep one)."""
    names = {p.values[0]["name"] for p in CASES}
    for needed in (
        "log_without_step_commits_and_increments",
        "commit_false_accumulates",
        "larger_step_flushes_pending_and_jumps",
        "same_step_merges",
        "smaller_step_is_dropped_and_reported",
        "summary_is_the_last_value_by_default",
        "summary_min_max_mean_first_last",
        "summary_best_follows_the_goal",
        "summary_none_keeps_the_key_out",
        "nan_does_not_poison_min_max_mean_best",
        "explicit_summary_update_wins",
        "glob_names_a_prefix",
        "step_metric_with_step_sync_fills_the_last_value",
        "hidden_metric_is_still_logged_and_summarized",
        "overwrite_false_merges_with_the_earlier_definition",
    ):
        assert needed in names
    assert len(names) == len(CASES), "case names must be unique"
    for p in CASES:
        for call in p.values[0]["calls"]:
            operation(call)
