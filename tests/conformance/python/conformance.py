"""The conformance scenario over grpcio, with stubs generated from proto/ at test time.

Usage: conformance.py STUB_DIR ADDRESS RUN_ID WORKDIR

STUB_DIR holds runcore/v1/runcore_pb2{,_grpc}.py made by grpc_tools.protoc from the
repository's proto/ (tests/run.sh makes them). ADDRESS is the sidecar's address as
`runcore serve --port-file` writes it (tcp://HOST:PORT or unix:///PATH); the channel
is made from that address alone. The scenario is tests/conformance/README.md's; the
Go, Node and Java programs perform the same one. Exits 1 when anything differs.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, Iterator

if len(sys.argv) != 5:
    sys.exit("usage: conformance.py STUB_DIR ADDRESS RUN_ID WORKDIR")
STUB_DIR, ADDRESS, RUN_ID, WORKDIR = sys.argv[1:]
sys.path.insert(0, STUB_DIR)

import grpc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from grpc_reflection.v1alpha import reflection_pb2  # noqa: E402

from runcore.v1 import runcore_pb2 as pb  # noqa: E402
from runcore.v1 import runcore_pb2_grpc as pb_grpc  # noqa: E402

PROJECT = "conformance"
NAN = float("nan")


class Failed(Exception):
    pass


failures: list[str] = []


def check(ok: bool, what: str) -> None:
    if not ok:
        failures.append(what)
        print(f"  MISMATCH: {what}", flush=True)


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types, NaN equal to NaN, recursively."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def eq(got: Any, want: Any, what: str) -> None:
    check(same(got, want), f"{what}: got {got!r}, want {want!r}")


# --- Values ---------------------------------------------------------------------


def val(x: Any) -> pb.Value:
    """A Python value as a runcore Value (bool before int: bool is an int in Python)."""
    if x is None:
        return pb.Value(null_value=True)
    if isinstance(x, bool):
        return pb.Value(bool_value=x)
    if isinstance(x, int):
        return pb.Value(int_value=x)
    if isinstance(x, float):
        return pb.Value(double_value=x)
    if isinstance(x, str):
        return pb.Value(string_value=x)
    if isinstance(x, dict):
        return pb.Value(map_value=pb.MapValue(fields={k: val(v) for k, v in x.items()}))
    if isinstance(x, list):
        return pb.Value(list_value=pb.ListValue(values=[val(v) for v in x]))
    raise TypeError(type(x))


def vmap(d: dict[str, Any]) -> dict[str, pb.Value]:
    return {k: val(v) for k, v in d.items()}


def py(v: pb.Value) -> Any:
    """A runcore Value as a Python value."""
    kind = v.WhichOneof("kind")
    if kind == "map_value":
        return {k: py(x) for k, x in v.map_value.fields.items()}
    if kind == "list_value":
        return [py(x) for x in v.list_value.values]
    if kind == "null_value" or kind is None:
        return None
    if kind in ("double_value", "int_value", "bool_value", "string_value"):
        return getattr(v, kind)
    return f"<{kind}>"


def pymap(m: Any) -> dict[str, Any]:
    return {k: py(v) for k, v in m.items()}


# --- Scenario -------------------------------------------------------------------

CONFIG = {
    "lr": 0.001,
    "epochs": 3,
    "arch": "mlp",
    "optimizer": {"name": "adam", "betas": [0.9, 0.999], "schedule": {"warmup": 100, "cosine": True}},
}


def target(address: str) -> str:
    # grpcio takes unix:///path as is, and host:port for TCP.
    return address[len("tcp://") :] if address.startswith("tcp://") else address


def scenario(channel: grpc.Channel) -> None:
    # 1. Health: the server as a whole and RunService are SERVING.
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "runcore.v1.RunService"):
        got = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
        eq(health_pb2.HealthCheckResponse.ServingStatus.Name(got), "SERVING", f"health {service!r}")

    # 2. Reflection v1 lists the services. grpcio-reflection ships only the v1alpha
    # messages, which are the v1 messages field for field; the method is v1's.
    info = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    replies = list(info(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
    eq(len(replies), 1, "reflection replies")
    names = sorted(s.name for s in replies[0].list_services_response.service)
    check("runcore.v1.RunService" in names, f"reflection lists runcore.v1.RunService: {names}")
    check("grpc.health.v1.Health" in names, f"reflection lists grpc.health.v1.Health: {names}")

    stub = pb_grpc.RunServiceStub(channel)

    # 3. Init.
    init = stub.Init(
        pb.InitRequest(
            id=RUN_ID,
            project=PROJECT,
            name="conformance-run",
            tags=["conformance"],
            notes="any language, unmodified",
            config=vmap(CONFIG),
            working_dir=WORKDIR,
            system_metrics=pb.SystemMetricsSettings(disabled=True),
        ),
        timeout=30,
    )
    eq(init.run.id, RUN_ID, "Init run.id")
    eq(init.run.project, PROJECT, "Init run.project")
    eq(init.run.name, "conformance-run", "Init run.name")
    eq(pb.RunState.Name(init.run.state), "RUN_STATE_RUNNING", "Init run.state")
    eq(init.run.path, f"{PROJECT}/{RUN_ID}", "Init run.path")
    check(init.run.dir.endswith(f"/{PROJECT}/{RUN_ID}/files"), f"Init run.dir: {init.run.dir!r}")
    eq(init.resumed, False, "Init resumed")
    eq(init.starting_step, 0, "Init starting_step")
    eq(init.last_seq, 0, "Init last_seq")

    # 4. DefineMetric: min/max, a hidden step metric, a glob with that step metric.
    m = stub.DefineMetric(pb.DefineMetricRequest(run_id=RUN_ID, name="loss", summary="min,max"), timeout=30).metric
    eq((m.name, list(m.summary), m.step_metric), ("loss", ["min", "max"], ""), "DefineMetric loss")
    m = stub.DefineMetric(pb.DefineMetricRequest(run_id=RUN_ID, name="epoch", hidden=True), timeout=30).metric
    eq((m.name, m.hidden), ("epoch", True), "DefineMetric epoch")
    m = stub.DefineMetric(
        pb.DefineMetricRequest(run_id=RUN_ID, name="val/*", step_metric="epoch", summary="max"), timeout=30
    ).metric
    eq((m.name, m.step_metric, m.step_sync, list(m.summary)), ("val/*", "epoch", True, ["max"]), "DefineMetric val/*")

    # 5. Unary Log: (data, step, commit) -> the reply's step and dropped rows.
    def log(data: dict[str, Any], step: int | None = None, commit: bool | None = None) -> pb.LogResponse:
        req = pb.LogRequest(run_id=RUN_ID, data=vmap(data))
        if step is not None:
            req.step = step
        if commit is not None:
            req.commit = commit
        return stub.Log(req, timeout=30)

    eq(log({"loss": 2.0, "note": "hello", "flag": True, "count": 7}).step, 1, "Log 1 step")
    eq(log({"partial": 1.0}, commit=False).step, 1, "Log 2 (commit=false) step")
    eq(log({"bad": NAN, "nested": {"x": 1.5, "y": {"z": "deep"}}}, commit=True).step, 2, "Log 3 (commit) step")
    eq(log({"loss": 1.5}, step=5).step, 5, "Log 4 (step=5) step")
    eq(log({"extra": 4.0}, step=5).step, 5, "Log 5 (same step) step")
    r = log({"loss": 9.0}, step=3)
    eq(r.step, 5, "Log 6 (smaller step) step")
    eq([(d.row_index, d.step, d.current_step) for d in r.dropped], [(0, 3, 5)], "Log 6 dropped")
    check(all(d.reason for d in r.dropped), "Log 6 dropped row has a reason")
    r = log({"none": None, "big": 1 << 40}, step=6, commit=True)
    eq(r.step, 7, "Log 7 (step=6, commit) step")
    eq(len(r.dropped), 0, "Log 7 dropped")

    # 6. LogStream: numbered batches with per-batch key tables and packed scalars.
    def row(scalars: dict[str, float], keys: list[str], values: dict[str, Any] | None = None,
            step: int | None = None, commit: bool | None = None) -> pb.Row:
        r = pb.Row(
            scalar_keys=[keys.index(k) for k in scalars],
            scalar_values=list(scalars.values()),
            values=vmap(values or {}),
        )
        if step is not None:
            r.step = step
        if commit is not None:
            r.commit = commit
        return r

    k1 = ["loss", "epoch"]
    k2 = ["val/acc", "loss", "epoch"]
    k3 = ["loss", "val/loss"]
    batches = [
        pb.LogBatch(run_id=RUN_ID, seq=1, keys=k1, rows=[
            row({"loss": 1.0}, k1, {"phase": "train"}),
            row({"loss": 0.75}, k1),
            row({"loss": 0.5, "epoch": 0.0}, k1),
        ]),
        pb.LogBatch(run_id=RUN_ID, seq=2, keys=k2, rows=[
            row({"loss": 0.25, "epoch": 1.0, "val/acc": 0.5}, k2),
            row({"val/acc": 0.625}, k2),
            row({"loss": 0.125}, k2, {"deep": {"a": {"k": 3}}, "items": ["a", 1, True]}),
        ]),
        pb.LogBatch(run_id=RUN_ID, seq=3, keys=k3, rows=[
            row({"loss": NAN, "val/loss": 0.375}, k3),
            row({"loss": 0.0625}, k3, step=20),
            row({"loss": 0.03125}, k3, commit=True),
            row({"loss": 8.0}, k3, step=15),
        ]),
    ]
    # The resent batch 2 must come back as a duplicate and change nothing.
    sent = batches + [batches[1]]
    acks = list(stub.LogStream(iter(sent), timeout=60))
    eq([(a.run_id, a.seq, a.duplicate) for a in acks],
       [(RUN_ID, 1, False), (RUN_ID, 2, False), (RUN_ID, 3, False), (RUN_ID, 2, True)], "LogStream acks")
    eq([a.step for a in acks[:3]], [10, 13, 21], "LogStream ack steps")
    eq([[(d.row_index, d.step, d.current_step) for d in a.dropped] for a in acks[:3]],
       [[], [], [(3, 15, 21)]], "LogStream dropped rows")

    # 7. UpdateConfig: merge at the top level, remove a key.
    cfg = pymap(stub.UpdateConfig(pb.UpdateConfigRequest(
        run_id=RUN_ID, config=vmap({"epochs": 5, "extra": {"k": "v"}}), remove=["arch"]), timeout=30).config)
    want_cfg = {k: v for k, v in CONFIG.items() if k != "arch"} | {"epochs": 5, "extra": {"k": "v"}}
    eq(cfg, want_cfg, "UpdateConfig config")

    # 8. UpdateSummary: explicit values, a removed key; aggregated metrics stay.
    summ = pymap(stub.UpdateSummary(pb.UpdateSummaryRequest(
        run_id=RUN_ID, summary=vmap({"best_acc": 0.875, "note": "summary-note"}), remove=["count"]),
        timeout=30).summary)
    eq(summ.get("best_acc"), 0.875, "UpdateSummary best_acc")
    eq(summ.get("note"), "summary-note", "UpdateSummary note (explicit wins)")
    check("count" not in summ, f"UpdateSummary removed count: {sorted(summ)}")
    eq(summ.get("loss"), {"min": 0.03125, "max": 2.0}, "UpdateSummary loss min/max")
    eq(summ.get("val/acc"), {"max": 0.625}, "UpdateSummary val/acc max (glob)")
    eq(summ.get("val/loss"), {"max": 0.375}, "UpdateSummary val/loss max (glob)")

    # 9. Alert twice with the same title: the second is throttled.
    a1 = stub.Alert(pb.AlertRequest(run_id=RUN_ID, title="conformance alert", text="first",
                                    level="WARN", wait_duration=600), timeout=30)
    eq((a1.sent, a1.throttled), (True, False), "Alert 1 (sent, throttled)")
    a2 = stub.Alert(pb.AlertRequest(run_id=RUN_ID, title="conformance alert", text="second",
                                    level="WARN", wait_duration=600), timeout=30)
    eq((a2.sent, a2.throttled), (False, True), "Alert 2 (sent, throttled)")
    check(a2.throttled_until > time.time() + 500, f"Alert 2 throttled_until {a2.throttled_until} is ~600 s ahead")

    # 10. SaveFiles of a file this program wrote, policy now.
    os.makedirs(os.path.join(WORKDIR, "out"), exist_ok=True)
    with open(os.path.join(WORKDIR, "out", "result.txt"), "w", encoding="utf-8") as f:
        f.write("conformance result\n")
    with open(os.path.join(WORKDIR, "out", "skip.bin"), "w", encoding="utf-8") as f:
        f.write("not matched\n")
    saved = stub.SaveFiles(pb.SaveFilesRequest(run_id=RUN_ID, glob="out/*.txt", policy="now"), timeout=30)
    eq(list(saved.saved), ["out/result.txt"], "SaveFiles saved")

    # 11. Finish with exit code 0.
    fin = stub.Finish(pb.FinishRequest(run_id=RUN_ID, exit_code=0), timeout=60)
    eq(pb.RunState.Name(fin.run.state), "RUN_STATE_FINISHED", "Finish run.state")
    eq(fin.run.HasField("exit_code") and fin.run.exit_code, 0, "Finish run.exit_code")
    eq(fin.run.step, 21, "Finish run.step")
    eq(fin.run.history_rows, 12, "Finish run.history_rows")
    fsum = pymap(fin.summary)
    eq(fsum.get("_step"), 20, "Finish summary _step")
    eq(fsum.get("best_acc"), 0.875, "Finish summary best_acc")

    # 12. GetRun.
    got = stub.GetRun(pb.GetRunRequest(run_id=RUN_ID), timeout=30)
    eq(pb.RunState.Name(got.run.state), "RUN_STATE_FINISHED", "GetRun run.state")
    eq(got.run.HasField("exit_code") and got.run.exit_code, 0, "GetRun run.exit_code")
    eq((got.run.id, got.run.project, got.run.name), (RUN_ID, PROJECT, "conformance-run"), "GetRun identity")
    eq(list(got.run.tags), ["conformance"], "GetRun tags")
    check(0 < got.run.start_time <= got.run.end_time, f"GetRun start {got.run.start_time} <= end {got.run.end_time}")
    eq((got.run.step, got.run.history_rows), (21, 12), "GetRun (step, history_rows)")
    eq(pymap(got.config), want_cfg, "GetRun config")
    eq(list(got.files), ["out/result.txt"], "GetRun files")
    eq(sorted(m.name for m in got.metrics), ["epoch", "loss", "val/*"], "GetRun metrics")
    eq(pymap(got.summary), fsum, "GetRun summary equals Finish summary")

    # 13. ScanHistory: every row, in step order.
    rows = [r for resp in stub.ScanHistory(pb.ScanHistoryRequest(run_id=RUN_ID), timeout=30) for r in resp.rows]
    eq([r.step for r in rows], [0, 1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 20], "ScanHistory steps")
    by_step = {r.step: pymap(r.values) for r in rows}
    if len(rows) == 12:
        eq(by_step[0].get("count"), 7, "row 0 count (int)")
        eq(by_step[0].get("flag"), True, "row 0 flag (bool)")
        eq(by_step[0].get("note"), "hello", "row 0 note (string)")
        eq(by_step[1].get("bad"), NAN, "row 1 bad (NaN)")
        eq(by_step[1].get("nested"), {"x": 1.5, "y": {"z": "deep"}}, "row 1 nested")
        eq(by_step[1].get("partial"), 1.0, "row 1 partial (commit=false joined)")
        eq((by_step[5].get("loss"), by_step[5].get("extra")), (1.5, 4.0), "row 5 merged")
        eq((by_step[6].get("none", "absent"), by_step[6].get("big")), (None, 1 << 40), "row 6 null and int64")
        eq(by_step[11].get("epoch"), 1.0, "row 11 epoch (step_sync)")
        eq(by_step[12].get("items"), ["a", 1, True], "row 12 list")
        eq(by_step[13].get("loss"), NAN, "row 13 loss (NaN)")
        eq(by_step[20].get("loss"), 0.03125, "row 20 loss (merged into the pending row)")
    only = [r.step for resp in stub.ScanHistory(pb.ScanHistoryRequest(run_id=RUN_ID, keys=["val/acc"]), timeout=30)
            for r in resp.rows]
    eq(only, [10, 11], "ScanHistory keys=[val/acc] steps")


def main() -> int:
    address = target(ADDRESS)
    print(f"python grpcio {grpc.__version__}: {RUN_ID} at {address}", flush=True)
    with grpc.insecure_channel(address) as channel:
        try:
            scenario(channel)
        except grpc.RpcError as e:
            failures.append(f"RPC failed: {e.code().name}: {e.details()}")
            print(f"  RPC FAILED: {e.code().name}: {e.details()}", flush=True)
    if failures:
        print(f"FAIL {RUN_ID}: {len(failures)} mismatch(es)", flush=True)
        return 1
    print(f"PASS {RUN_ID}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
