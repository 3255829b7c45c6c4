"""runcore._native on its own: value conversion through Channel.call round trips
against a real sidecar, enum_values, RpcError, request checks, and Sender.log's
return values and errors."""

from __future__ import annotations

import gc
import math
import pathlib
import threading
import weakref
from collections import OrderedDict
from typing import Any, Iterator

import pytest

from conftest import PATIENCE, Sidecar, wait_for
from runcore import _native

TIMEOUT = PATIENCE


@pytest.fixture
def channel(sidecar: Sidecar) -> _native.Channel:
    return _native.Channel(sidecar.address)


@pytest.fixture
def run_id(channel: _native.Channel) -> str:
    return str(channel.call("Init", {"project": "p"}, TIMEOUT).run.id)


def roundtrip(channel: _native.Channel, run_id: str, value: Any) -> Any:
    """`value` sent as a config value and read back from the sidecar's reply."""
    reply = channel.call("UpdateConfig", {"run_id": run_id, "config": {"v": value}}, TIMEOUT)
    return reply.config["v"]


# -- value rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        1.5,
        -0.0,
        0,
        -(2**63),
        2**63 - 1,
        True,
        False,
        "text ✓",
        "",
        None,
        [1, 2.5, "x", None, True],
        {"a": {"b": [1, {"c": "d"}]}},
        [],
        {},
    ],
)
def test_plain_values_round_trip(channel: _native.Channel, run_id: str, value: Any) -> None:
    got = roundtrip(channel, run_id, value)
    assert got == value
    assert type(got) is type(value)


def test_ints_beyond_int64_become_doubles(channel: _native.Channel, run_id: str) -> None:
    got = roundtrip(channel, run_id, 2**64)
    assert type(got) is float and got == float(2**64)


def test_tuples_and_mappings_become_lists_and_dicts(channel: _native.Channel, run_id: str) -> None:
    assert roundtrip(channel, run_id, (1, (2, 3))) == [1, [2, 3]]
    assert roundtrip(channel, run_id, OrderedDict([("x", 1)])) == {"x": 1}


def test_float_subclasses_are_floats(channel: _native.Channel, run_id: str) -> None:
    class Meters(float):
        pass

    got = roundtrip(channel, run_id, Meters(2.5))
    assert type(got) is float and got == 2.5


def test_nested_keys_that_are_not_str(channel: _native.Channel, run_id: str) -> None:
    got = roundtrip(channel, run_id, {7: "int", 2.5: "float", True: "bool", None: "none"})
    assert got == {"7": "int", "2.5": "float", "true": "bool", "None": "none"}
    with pytest.raises(ValueError, match=r"cannot log 'v': a nested key has type tuple; keys must be str"):
        roundtrip(channel, run_id, {(1, 2): "x"})


def test_nesting_deeper_than_32_levels_is_refused(channel: _native.Channel, run_id: str) -> None:
    ok: Any = 1
    for _ in range(32):
        ok = [ok]
    try:
        roundtrip(channel, run_id, ok)
    except _native.RpcError as e:  # past the client's check: the sidecar's own limit is lower
        assert e.code == "INVALID_ARGUMENT"
    with pytest.raises(ValueError, match=r"cannot log 'v': nested deeper than 32 levels"):
        roundtrip(channel, run_id, [ok])


def test_histograms_and_media_through_to_native(
    channel: _native.Channel, run_id: str, tmp_path: pathlib.Path
) -> None:
    class Values:
        def _to_native(self) -> tuple[Any, ...]:
            return ("histogram", [1.0, 2.0, 2.0, 3.0], 2)

    class Bins:
        def _to_native(self) -> tuple[Any, ...]:
            return ("histogram_bins", [3, 1], [0.0, 1.0, 2.0])

    # The sidecar bins raw values itself; explicit bins travel as they are.
    summary = channel.call(
        "UpdateSummary", {"run_id": run_id, "summary": {"raw": Values(), "bins": Bins()}}, TIMEOUT
    ).summary
    assert summary["bins"] == {"_type": "histogram", "bins": [0.0, 1.0, 2.0], "values": [3, 1]}
    assert summary["raw"]["_type"] == "histogram"
    assert sum(summary["raw"]["values"]) == 4

    image = tmp_path / "a.png"
    image.write_bytes(b"not really a png")

    class Picture:
        def _to_native(self) -> tuple[Any, ...]:
            return ("media", str(image), _native.enum_values("runcore.v1.MediaKind")["MEDIA_KIND_IMAGE"],
                    "a caption", {"width": 2})

    got = roundtrip(channel, run_id, Picture())
    assert got["_type"] == "image-file"
    assert got["caption"] == "a caption"
    assert got["path"]


def test_unknown_types_go_through_native_fallback(channel: _native.Channel, run_id: str) -> None:
    class Opaque:
        pass

    with pytest.raises(ValueError, match=r"cannot log 'v': values of type .*Opaque are not supported"):
        roundtrip(channel, run_id, Opaque())


# -- Channel ---------------------------------------------------------------------------


def test_enum_values() -> None:
    states = _native.enum_values("runcore.v1.RunState")
    assert states["RUN_STATE_RUNNING"] == 1
    assert all(isinstance(k, str) and isinstance(v, int) for k, v in states.items())
    with pytest.raises(ValueError, match="NoSuchEnum"):
        _native.enum_values("runcore.v1.NoSuchEnum")


def test_responses_have_every_field(channel: _native.Channel) -> None:
    reply = channel.call("Init", {"project": "p", "resume": "RESUME_NEVER", "tags": ("a", "b")}, TIMEOUT)
    run = reply.run
    assert run.project == "p" and run.tags == ["a", "b"]
    assert run.state == _native.enum_values("runcore.v1.RunState")["RUN_STATE_RUNNING"]
    assert run.exit_code is None  # optional and unset
    assert reply.last_seq == 0  # a proto3 default
    got = channel.call("GetRun", {"run_id": run.id}, TIMEOUT)
    assert got.config == {} and got.files == [] and got.run.id == run.id


def test_unknown_request_fields_and_methods(channel: _native.Channel) -> None:
    with pytest.raises(ValueError, match="projekt"):
        channel.call("Init", {"projekt": "p"}, TIMEOUT)
    with pytest.raises(ValueError, match="NoSuchMethod"):
        channel.call("NoSuchMethod", {}, TIMEOUT)
    with pytest.raises(ValueError, match="RESUME_SOMETIMES"):
        channel.call("Init", {"resume": "RESUME_SOMETIMES"}, TIMEOUT)
    with pytest.raises(ValueError, match="project"):
        channel.call("Init", {"project": 3}, TIMEOUT)


def test_rpc_errors_carry_the_grpc_code(channel: _native.Channel, tmp_path: pathlib.Path) -> None:
    with pytest.raises(_native.RpcError) as e:
        channel.call("GetRun", {"run_id": "nosuchrun"}, TIMEOUT)
    assert e.value.code == "NOT_FOUND"
    assert "nosuchrun" in e.value.details
    assert str(e.value) == f"NOT_FOUND: {e.value.details}"

    nobody = _native.Channel(f"unix://{tmp_path / 'nobody.sock'}")
    with pytest.raises(_native.RpcError) as e:
        nobody.health(TIMEOUT)
    assert e.value.code == "UNAVAILABLE"

    made = _native.RpcError("UNAVAILABLE", "gone")
    assert (made.code, made.details, made.args) == ("UNAVAILABLE", "gone", ("UNAVAILABLE", "gone"))


def test_health_and_address(channel: _native.Channel, sidecar: Sidecar) -> None:
    assert channel.health(TIMEOUT) == "SERVING"
    assert channel.address == sidecar.address


def test_a_malformed_address_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        _native.Channel("tcp://")


# -- Sender.log ------------------------------------------------------------------------


class RecordingLink:
    """A run's side of the sender that records what it is told."""

    def __init__(self, channel: _native.Channel) -> None:
        self.channel = channel
        self.warnings: list[tuple[str, str]] = []
        self.dropped: list[tuple[int, int, str]] = []
        self.log_dropped_rows: list[tuple[int, int]] = []

    def attach(self, force: bool) -> None:
        pass

    def recover(self, timeout: float) -> _native.Channel:
        return self.channel

    def on_dropped(self, step: int, current_step: int, reason: str) -> None:
        self.dropped.append((step, current_step, reason))

    def log_dropped(self, step: int, current_step: int) -> None:
        self.log_dropped_rows.append((step, current_step))

    def warn(self, kind: str, message: str) -> None:
        self.warnings.append((kind, message))

    def should_stop(self) -> None:
        pass


def start_sender(
    channel: _native.Channel, run_id: str, max_value_bytes: int = 8 << 20, link: Any = None
) -> _native.Sender:
    return _native.Sender(
        channel, run_id, "", 0, 0, link or RecordingLink(channel),
        batch_interval=0.01, batch_rows=100, queue_size=1000, max_in_flight=4,
        heartbeat_every=5.0, reconnect_timeout=30.0, max_value_bytes=max_value_bytes,
    )


@pytest.fixture
def sender(channel: _native.Channel, run_id: str) -> Iterator[_native.Sender]:
    s = start_sender(channel, run_id)
    yield s
    s.close(TIMEOUT)


def history(sidecar: Sidecar, run_id: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if not k.startswith("_") or k == "_step"}
            for r in sidecar.history(run_id, "p")]


def test_log_queues_rows_that_land_in_history(sidecar: Sidecar, sender: _native.Sender, run_id: str) -> None:
    sender.log({"loss": 0.5, "n": 3, "name": "a", "nested": {"x": [1, 2]}})
    sender.log(OrderedDict([("loss", 0.25)]))
    assert sender.step == 2
    assert sender.flush(TIMEOUT) is True
    rows = wait_for(lambda: len(history(sidecar, run_id)) == 2 and history(sidecar, run_id), "two rows")
    assert rows == [
        {"_step": 0, "loss": 0.5, "n": 3, "name": "a", "nested": {"x": [1, 2]}},
        {"_step": 1, "loss": 0.25},
    ]
    stats = sender.stats()
    assert stats["rows_queued"] == 2 and stats["rows_acked"] == 2 and stats["dead"] is None
    assert sender.pending() == 0 and sender.dead is None


def test_log_drops_a_smaller_step_and_tells_the_link(channel: _native.Channel, run_id: str) -> None:
    link = RecordingLink(channel)
    sender = start_sender(channel, run_id, link=link)
    sender.log({"a": 1.0}, step=5)
    sender.log({"a": 2.0}, step=3)
    assert link.log_dropped_rows == [(3, 5)]
    assert sender.step == 5
    sender.log({"a": 3.0}, step=5, commit=1)
    assert sender.step == 6
    assert link.log_dropped_rows == [(3, 5)]
    assert sender.stats()["rows_queued"] == 2
    sender.finish_steps()
    sender.close(TIMEOUT)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([("a", 1.0)], "run.log takes a dict of key -> value, not list"),
        ({1: 1.0}, "run.log keys must be str, got 1 (int)"),
        ({"": 1.0}, "run.log: a key is empty; give every logged value a name"),
        ({"_step": 1.0}, "run.log: key '_step' starts with '_', which is reserved for runcore's own keys"),
    ],
)
def test_log_refuses_bad_data(sender: _native.Sender, data: Any, message: str) -> None:
    with pytest.raises(ValueError) as e:
        sender.log(data)
    assert str(e.value).startswith(message)
    assert sender.stats()["rows_queued"] == 0


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (True, "run.log: step must be an int, not True"),
        (1.5, "run.log: step must be an int, not float"),
        ("3", "run.log: step must be an int, not str"),
        (-1, "run.log: step -1 is negative; steps start at 0"),
    ],
)
def test_log_refuses_bad_steps(sender: _native.Sender, step: Any, message: str) -> None:
    with pytest.raises(ValueError) as e:
        sender.log({"a": 1.0}, step=step)
    assert str(e.value) == message


def test_a_value_that_changes_the_logged_dict_is_a_runtime_error(sender: _native.Sender) -> None:
    data: dict[str, Any] = {}

    class Sneaky:
        def _to_native(self) -> tuple[Any, ...]:
            data["added"] = 1.0
            return ("histogram", [1.0, 2.0], 4)

    data["a"] = Sneaky()
    data["b"] = 2.0
    with pytest.raises(RuntimeError, match="the dict changed size while it was being logged"):
        sender.log(data)
    assert sender.stats()["rows_queued"] == 0


def test_log_takes_steps_with_index(sender: _native.Sender) -> None:
    class Step:
        def __index__(self) -> int:
            return 7

    sender.log({"a": 1.0}, step=Step())
    assert sender.step == 7


def test_log_refuses_values_over_max_value_bytes(channel: _native.Channel, run_id: str) -> None:
    s = start_sender(channel, run_id, max_value_bytes=1 << 20)
    try:
        with pytest.raises(ValueError) as e:
            s.log({"big": "x" * (2 << 20)})
        assert str(e.value) == (
            "cannot log 'big': the value is 2 MiB; log at most 1 MiB per value "
            "(a Histogram of big arrays is small)"
        )
        s.log({"small": "x" * 100})
    finally:
        s.close(TIMEOUT)


def test_log_from_threads_keeps_every_row(sidecar: Sidecar, sender: _native.Sender, run_id: str) -> None:
    def worker(i: int) -> None:
        for j in range(100):
            sender.log({f"w{i}": float(j)}, commit=False)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(PATIENCE)
    sender.log({"done": math.pi})
    assert sender.flush(TIMEOUT)
    assert sender.stats()["rows_acked"] == 401
    rows = wait_for(lambda: history(sidecar, run_id) or None, "the merged row")
    assert rows == [{"_step": 0, "w0": 99.0, "w1": 99.0, "w2": 99.0, "w3": 99.0, "done": math.pi}]


def test_a_run_and_its_sender_in_a_cycle_are_garbage_collected(channel: _native.Channel, run_id: str) -> None:
    class Run:
        """Stands for runcore.Run: it holds its sender, whose link holds the run."""

        sender: _native.Sender

    run = Run()
    link = RecordingLink(channel)
    link.run = run  # type: ignore[attr-defined]
    run.sender = start_sender(channel, run_id, link=link)
    run.sender.log({"a": 1.0})
    run.sender.close(TIMEOUT)
    gone = weakref.ref(run)
    del run, link
    gc.collect()
    assert gone() is None
