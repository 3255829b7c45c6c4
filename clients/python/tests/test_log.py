"""run.log: W&B's step/commit rules, values, errors, batching and backpressure."""

from __future__ import annotations

import math
import os
import signal
import threading
import warnings
from typing import Any

import pytest

import runcore
from conftest import PATIENCE, Sidecar, wait_for


def user_keys(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def rows_by_step(sidecar: Sidecar, run: runcore.Run) -> list[tuple[int, dict[str, Any]]]:
    return [(r["_step"], user_keys(r)) for r in sidecar.history(run)]


def test_the_three_equivalent_ways_from_the_wandb_log_doc(sidecar: Sidecar) -> None:
    """Run.log doc: plain calls, commit=False, and explicit steps give one history."""
    histories = []
    for variant in ("plain", "commit", "step"):
        run = runcore.init(project="p", settings=sidecar.settings())
        if variant == "plain":
            run.log({"train-loss": 0.5, "accuracy": 0.8})
            run.log({"train-loss": 0.4, "accuracy": 0.9})
        elif variant == "commit":
            run.log({"train-loss": 0.5}, commit=False)
            run.log({"accuracy": 0.8})
            run.log({"train-loss": 0.4}, commit=False)
            run.log({"accuracy": 0.9})
        else:
            current_step = 0
            run.log({"train-loss": 0.5}, step=current_step)
            run.log({"accuracy": 0.8}, step=current_step)
            current_step += 1
            run.log({"train-loss": 0.4}, step=current_step)
            run.log({"accuracy": 0.9}, step=current_step)
        run.finish()
        histories.append(rows_by_step(sidecar, run))
    expected = [(0, {"train-loss": 0.5, "accuracy": 0.8}), (1, {"train-loss": 0.4, "accuracy": 0.9})]
    assert histories == [expected, expected, expected]


def test_step_and_commit_table(sidecar: Sidecar) -> None:
    run = runcore.init(project="p", settings=sidecar.settings())
    run.log({"a": 1.0})  # commits at 0
    assert run.step == 1
    run.log({"b": 2.0}, commit=False)  # pending at 1
    assert run.step == 1
    run.log({"c": 3.0})  # merges, commits 1
    run.log({"d": 4.0}, step=5)  # jumps to 5, pending (commit defaults to False)
    assert run.step == 5
    run.log({"e": 5.0}, step=5)  # merges at 5
    run.log({"f": 6.0}, step=7)  # commits 5, pending at 7
    with pytest.warns(runcore.RuncoreWarning, match=r"step=3\) is smaller than the run's current step 7"):
        run.log({"g": 7.0}, step=3)  # dropped
    run.log({"h": 8.0}, step=7, commit=True)  # commits 7
    assert run.step == 8
    run.log({"i": 9.0}, step=9)  # pending at 9: finish commits it
    run.finish()
    assert rows_by_step(sidecar, run) == [
        (0, {"a": 1.0}),
        (1, {"b": 2.0, "c": 3.0}),
        (5, {"d": 4.0, "e": 5.0}),
        (7, {"f": 6.0, "h": 8.0}),
        (9, {"i": 9.0}),
    ]
    status = run.status()
    assert status.rows_dropped == 1
    assert status.history_rows == 5
    assert status.state == "finished"


def test_a_dropped_row_is_warned_about_once(sidecar: Sidecar) -> None:
    run = runcore.init(project="p", settings=sidecar.settings())
    run.log({"x": 1}, step=10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run.log({"x": 2}, step=3)
        run.log({"x": 3}, step=4)
        run.log({"x": 4}, step=2)
    dropped = [w for w in caught if issubclass(w.category, runcore.RuncoreWarning)]
    assert len(dropped) == 1, [str(w.message) for w in caught]
    # The warning points at the line that called run.log (here), not at runcore.
    assert dropped[0].filename == __file__
    assert run.status().rows_dropped == 3
    run.finish()
    assert rows_by_step(sidecar, run) == [(10, {"x": 1})]


def test_values_are_recorded_as_logged(sidecar: Sidecar, work_dir: Any) -> None:
    np = pytest.importorskip("numpy")
    run = runcore.init(project="p", settings=sidecar.settings())
    run.log(
        {
            "float": 0.25,
            "int": 7,
            "big_int": 2**70,
            "bool": True,
            "str": "hello",
            "none": None,
            "nan": float("nan"),
            "inf": float("inf"),
            "neg_inf": -math.inf,
            "train/loss": 0.5,
            "a/b/c": 1,
            "nested": {"train": {"loss": 0.1, "acc": 0.9}, "epoch": 2},
            "list": [1, 2.5, "x", None, [True]],
            "tuple": (1, 2),
            "np_float": np.float32(1.5),
            "np_int": np.int64(3),
            "np_bool": np.bool_(False),
            "np_small": np.array([1, 2, 3]),
            "np_big": np.arange(100, dtype=float),
            "hist": runcore.Histogram([1, 2, 2, 3, 3, 3], num_bins=3),
            "np_hist": runcore.Histogram(np_histogram=np.histogram([1, 2, 3], bins=2)),
        }
    )
    run.finish()
    [row] = sidecar.history(run)
    assert row["float"] == 0.25
    assert row["int"] == 7 and isinstance(row["int"], int)
    assert row["big_int"] == float(2**70)
    assert row["bool"] is True
    assert row["str"] == "hello"
    assert row["none"] is None
    assert math.isnan(row["nan"])
    assert row["inf"] == math.inf and row["neg_inf"] == -math.inf
    assert row["train/loss"] == 0.5 and row["a/b/c"] == 1
    assert row["nested"] == {"train": {"loss": 0.1, "acc": 0.9}, "epoch": 2}
    assert row["list"] == [1, 2.5, "x", None, [True]]
    assert row["tuple"] == [1, 2]
    assert row["np_float"] == 1.5 and row["np_int"] == 3 and row["np_bool"] is False
    assert row["np_small"] == [1, 2, 3]
    # Arrays of more than 32 numbers become histograms (of 32 bins), as in W&B.
    assert row["np_big"]["_type"] == "histogram"
    assert len(row["np_big"]["values"]) == 32 and sum(row["np_big"]["values"]) == 100
    assert row["hist"] == {"_type": "histogram", "bins": [1.0, 1 + 2 / 3, 1 + 4 / 3, 3.0], "values": [1, 2, 3]}
    assert row["np_hist"] == {"_type": "histogram", "bins": [1.0, 2.0, 3.0], "values": [1, 2]}
    assert row["_step"] == 0 and row["_runtime"] >= 0 and row["_timestamp"] > 1e9


def test_images_are_copied_into_the_run(sidecar: Sidecar, work_dir: Any) -> None:
    png = work_dir / "pic.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    run = runcore.init(project="p", settings=sidecar.settings())
    img = runcore.Image(str(png), caption="from a path")
    png.unlink()  # the client staged a copy: deleting the original loses nothing
    run.log({"examples": [img], "single": img})
    run.finish()
    [row] = sidecar.history(run)
    single = row["single"]
    assert single["_type"] == "image-file" and single["caption"] == "from a path"
    assert single["path"].startswith("media/images/")
    assert (sidecar.run_dir(run) / "files" / single["path"]).read_bytes() == b"\x89PNG\r\n\x1a\nnot really"
    assert row["examples"][0]["path"].startswith("media/images/")


def test_image_from_an_array(sidecar: Sidecar) -> None:
    np = pytest.importorskip("numpy")
    pytest.importorskip("PIL")
    run = runcore.init(project="p", settings=sidecar.settings())
    pixels = np.random.randint(low=0, high=256, size=(10, 12, 3))
    run.log({"img": runcore.Image(pixels, caption="random")})
    run.finish()
    [row] = sidecar.history(run)
    data = (sidecar.run_dir(run) / "files" / row["img"]["path"]).read_bytes()
    assert data.startswith(b"\x89PNG")
    from PIL import Image as PILImage

    with PILImage.open(sidecar.run_dir(run) / "files" / row["img"]["path"]) as im:
        assert im.size == (12, 10)


class Unloggable:
    pass


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"obj": Unloggable()}, r"cannot log 'obj': values of type .*Unloggable are not supported"),
        ({"deep": {"x": [Unloggable()]}}, r"cannot log 'deep': values of type .*Unloggable"),
        ({"s": {1, 2}}, r"cannot log 's': values of type set"),
        ({"_step": 1}, r"key '_step' starts with '_'"),
        ({"": 1}, r"a key is empty"),
        ({3: 1.0}, r"keys must be str, got 3"),
    ],
)
def test_values_that_cannot_be_logged_raise_value_error(sidecar: Sidecar, data: Any, message: str) -> None:
    run = runcore.init(project="p", settings=sidecar.settings())
    with pytest.raises(ValueError, match=message):
        run.log(data)
    with pytest.raises(ValueError, match="takes a dict"):
        run.log([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="step must be an int"):
        run.log({"x": 1}, step=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        run.log({"x": 1}, step=-1)
    run.log({"ok": 1.0})
    run.finish()
    assert rows_by_step(sidecar, run) == [(0, {"ok": 1.0})]


def test_many_rows_travel_in_few_batches(sidecar: Sidecar) -> None:
    run = runcore.init(project="p", settings=sidecar.settings(batch_interval=0.5, batch_rows=256))
    n = 5000
    for i in range(n):
        run.log({"loss": 1.0 / (i + 1), "i": float(i)})
    run.finish()
    status = run.status()
    assert status.rows_acked == n and status.rows_pending == 0
    assert status.batches_sent <= n // 256 + 2, status
    rows = sidecar.history(run)
    assert [r["i"] for r in rows] == [float(i) for i in range(n)]
    assert [r["_step"] for r in rows] == list(range(n))


def test_a_full_queue_blocks_log_and_loses_nothing(sidecar: Sidecar) -> None:
    run = runcore.init(project="p", settings=sidecar.settings(queue_size=20, batch_rows=5, max_in_flight=1))
    run.log({"warm": 1.0})
    run._flush()
    assert sidecar.proc is not None
    sidecar.proc.send_signal(signal.SIGSTOP)  # the sidecar stops reading
    done = threading.Event()

    def writer() -> None:
        for i in range(200):
            run.log({"i": i})
        done.set()

    t = threading.Thread(target=writer, daemon=True)
    try:
        t.start()
        # With the sidecar frozen, the writer fills the queue and then waits.
        wait_for(lambda: run._sender.stats()["queued"] >= 20, "the queue to fill")
        assert not done.wait(0.5), "log() returned although the queue was full"
        assert run._sender.stats()["queued"] == 20
    finally:
        sidecar.proc.send_signal(signal.SIGCONT)
    assert done.wait(PATIENCE)
    run.finish()
    rows = sidecar.history(run)
    assert [r["i"] for r in rows[1:]] == list(range(200))


def test_module_level_log_acts_on_the_active_run(sidecar: Sidecar) -> None:
    with pytest.raises(runcore.UsageError, match=r"call runcore.init\(\) before runcore.log"):
        runcore.log({"x": 1})
    run = runcore.init(project="p", settings=sidecar.settings())
    assert runcore.run is run
    runcore.log({"x": 1})
    runcore.log({"y": 2}, step=3)
    runcore.finish()
    assert runcore.run is None
    assert rows_by_step(sidecar, run) == [(0, {"x": 1}), (3, {"y": 2})]
    with pytest.raises(runcore.UsageError, match="has finished"):
        run.log({"x": 2})


def test_a_row_with_unreadable_media_is_dropped_and_reported(sidecar: Sidecar, work_dir: Any) -> None:
    png = work_dir / "pic.png"
    png.write_bytes(b"png")
    run = runcore.init(project="p", settings=sidecar.settings())
    for i in range(3):
        run.log({"i": i})
    run._flush()
    img = runcore.Image(str(png))
    os.unlink(img._path)  # the staged copy vanishes: the sidecar cannot read the media
    with pytest.warns(runcore.RuncoreWarning, match=r"dropped a logged row: media \"img\": cannot read"):
        run.log({"img": img, "i": 3})
        run._flush()
    for i in range(4, 6):
        run.log({"i": i})
    run.finish()
    assert [r["i"] for r in sidecar.history(run)] == [0, 1, 2, 4, 5]
    status = run.status()
    # The sidecar dropped only that row; its batch was acknowledged.
    assert (status.rows_lost, status.rows_acked, status.state) == (0, 6, "finished")
