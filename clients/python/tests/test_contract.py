"""The client contract (tests/vectors/status_contract.json; test_vectors.py checks
the table itself): what the client does when the sidecar ends a run, loses it, or
fails inside.

A run the sidecar ended (crashed, killed) is reported, never resumed; a run it does
not know is Init-ed again; INTERNAL is retried a few times, not forever;
UNAUTHENTICATED stops the sender at once. The last two use a fake sidecar (a
grpc server in this process) that fails on purpose.
"""

from __future__ import annotations

import pathlib
import signal
import threading
import time
from concurrent import futures
from typing import Any, Iterator

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

import runcore
from conftest import Sidecar, read_json, wait_for
from runcore._proto import runcore_pb2 as pb
from runcore._proto import runcore_pb2_grpc


def test_a_run_the_sidecar_crashed_is_reported_not_resumed(sidecar: Sidecar) -> None:
    run = runcore.init(project="p", id="stalled", settings=sidecar.settings(client_timeout=0.5))
    run.log({"x": 1.0})
    run._flush()
    # The client stalls (a debugger, a swapped-out host): no heartbeat, no call.
    run._sender.set_heartbeat_every(3600.0)
    wait_for(lambda: sidecar.run_json(run)["state"] == "crashed", "the sidecar to mark the silent run crashed")
    with pytest.warns(runcore.RuncoreWarning, match=r"ended run stalled as crashed \(it saw no sign of life"):
        run.log({"x": 2.0})  # the sidecar refuses it: the run has ended
        wait_for(lambda: run.status().rows_lost == 1, "the row to be reported lost")
    with pytest.raises(runcore.RunEndedError, match="as crashed") as refused:
        run.define_metric("x")
    assert (refused.value.state, refused.value.run_id) == ("crashed", "stalled")
    run.log({"x": 3.0})  # discarded, counted
    run.finish()  # reports how it ended; does not resume it
    assert run.status().state == "crashed"
    assert run.status().rows_lost == 2
    info = sidecar.run_json(run)
    assert info["state"] == "crashed" and info["resumed"] is False
    assert [r["x"] for r in sidecar.history(run)] == [1.0]
    # The user may resume it on purpose.
    again = runcore.init(project="p", id="stalled", resume="allow", settings=sidecar.settings())
    again.log({"x": 4.0})
    again.finish()
    assert [r["x"] for r in sidecar.history(run)] == [1.0, 4.0]


def test_a_run_the_stopping_sidecar_killed_is_reported_not_resumed(sidecar: Sidecar) -> None:
    run = runcore.init(project="p", id="killed-by-stop", settings=sidecar.settings())
    run.log({"x": 1.0})
    run._flush()
    with pytest.warns(runcore.RuncoreWarning, match="ended run killed-by-stop as killed"):
        # SIGTERM: the sidecar waits its grace period for the open run, then
        # marks it killed and exits. Started again, it does not reopen it.
        sidecar.kill(signal.SIGTERM)
        sidecar.start()
        run.log({"x": 2.0})
        run.finish()
    assert run.status().state == "killed"
    info = sidecar.run_json(run)
    assert info["state"] == "killed" and info["resumed"] is False
    assert [r["x"] for r in sidecar.history(run)] == [1.0]
    assert runcore.run is None


def test_a_sidecar_that_lost_the_run_gets_it_again(sidecar: Sidecar, tmp_path: pathlib.Path) -> None:
    run = runcore.init(project="p", id="lost", config={"lr": 0.1}, settings=sidecar.settings())
    run.log({"x": 1.0})
    run._flush()
    sidecar.kill()
    sidecar.data_dir = tmp_path / "another-data-dir"  # this sidecar never saw the run
    sidecar.start()
    run.log({"x": 2.0})
    run.finish()
    assert run.status().state == "finished" and run.status().rows_lost == 0
    info = sidecar.run_json(run)
    assert info["state"] == "finished" and info["resumed"] is False
    assert read_json(sidecar.run_dir(run) / "config.json") == {"lr": 0.1}
    assert [r["x"] for r in sidecar.history(run)] == [2.0]


# -- a sidecar that fails on purpose ---------------------------------------------------


class FailingSidecar(runcore_pb2_grpc.RunServiceServicer):  # type: ignore[misc]
    """Init, GetRun and Heartbeat work; every LogStream ends with ``code``."""

    def __init__(self, code: grpc.StatusCode) -> None:
        self.code = code
        self.streams = 0
        self.lock = threading.Lock()

    def Init(self, request: pb.InitRequest, context: Any) -> pb.InitResponse:
        run = pb.RunInfo(id=request.id or "fake", project="p", state=pb.RUN_STATE_RUNNING, client_timeout=60)
        return pb.InitResponse(run=run)

    def GetRun(self, request: pb.GetRunRequest, context: Any) -> pb.GetRunResponse:
        return pb.GetRunResponse(run=pb.RunInfo(id=request.run_id, state=pb.RUN_STATE_RUNNING))

    def Heartbeat(self, request: pb.HeartbeatRequest, context: Any) -> pb.HeartbeatResponse:
        return pb.HeartbeatResponse(state=pb.RUN_STATE_RUNNING)

    def Finish(self, request: pb.FinishRequest, context: Any) -> pb.FinishResponse:
        return pb.FinishResponse(run=pb.RunInfo(id=request.run_id, state=pb.RUN_STATE_FINISHED))

    def LogStream(self, request_iterator: Any, context: Any) -> Any:
        with self.lock:
            self.streams += 1
        next(request_iterator, None)
        context.abort(self.code, f"the fake sidecar fails every stream with {self.code.name}")


@pytest.fixture
def fake(tmp_path: pathlib.Path) -> Iterator[tuple[FailingSidecar, str]]:
    servicer = FailingSidecar(grpc.StatusCode.OK)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    runcore_pb2_grpc.add_RunServiceServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    health_servicer.set("runcore.v1.RunService", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    address = f"unix://{tmp_path}/fake.sock"
    server.add_insecure_port(address)
    server.start()
    try:
        yield servicer, address
    finally:
        runcore.teardown()
        server.stop(0)


def test_internal_is_retried_a_few_times_not_forever(fake: tuple[FailingSidecar, str]) -> None:
    servicer, address = fake
    servicer.code = grpc.StatusCode.INTERNAL
    run = runcore.init(project="p", id="internal", settings=runcore.Settings(address=address, quiet=True))
    started = time.monotonic()
    with pytest.warns(runcore.RuncoreWarning, match=r"failed 3 times in a row \(INTERNAL"):
        run.log({"x": 1.0})
        wait_for(lambda: run._sender.dead is not None, "the sender to give up")
    # Well inside the reconnect timeout (120 s): INTERNAL is not waited out.
    assert time.monotonic() - started < 30
    assert servicer.streams == 3
    run.log({"x": 2.0})
    run.finish()
    assert run.status().rows_lost == 2


def test_unauthenticated_stops_the_sender_at_once(fake: tuple[FailingSidecar, str]) -> None:
    servicer, address = fake
    servicer.code = grpc.StatusCode.UNAUTHENTICATED
    run = runcore.init(project="p", id="unauth", settings=runcore.Settings(address=address, quiet=True))
    with pytest.warns(runcore.RuncoreWarning, match="refused the log stream: UNAUTHENTICATED"):
        run.log({"x": 1.0})
        wait_for(lambda: run._sender.dead is not None, "the sender to give up")
    assert servicer.streams == 1  # no batch-by-batch retries
    run.finish()
    assert run.status().rows_lost == 1
