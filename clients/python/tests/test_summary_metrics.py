"""run.summary and run.define_metric."""

from __future__ import annotations

import math

import pytest

import runcore
from conftest import Sidecar


def test_summary_is_the_last_value_by_default(sidecar: Sidecar) -> None:
    run = runcore.init(project="p", settings=sidecar.settings())
    for i, loss in enumerate([0.9, 0.5, 0.7]):
        run.log({"loss": loss, "epoch": i, "nested": {"acc": i / 10}})
    # Reads wait for the rows logged before them.
    assert run.summary["loss"] == 0.7
    assert run.summary["epoch"] == 2
    assert run.summary["nested"] == {"acc": 0.2}
    assert run.summary["_step"] == 2
    assert "loss" in run.summary and "missing" not in run.summary
    assert run.summary.loss == 0.7  # attribute access, as in W&B
    run.finish()
    on_disk = sidecar.summary_json(run)
    assert on_disk["loss"] == 0.7 and on_disk["epoch"] == 2 and on_disk["_step"] == 2


def test_define_metric_summaries_aggregate_and_skip_nan(sidecar: Sidecar) -> None:
    run = runcore.init(project="p", settings=sidecar.settings())
    m = run.define_metric("loss", summary="min,max,mean,first,last")
    assert m == runcore.Metric(name="loss", summary=("min", "max", "mean", "first", "last"))
    run.define_metric("acc", summary="best", goal="maximize")
    run.define_metric("val/*", summary="min")
    run.define_metric("secret", summary="none")
    run.define_metric("plain", summary="copy")  # W&B's deprecated default: the last value
    for loss, acc in [(3.0, 0.1), (float("nan"), 0.7), (1.0, float("nan")), (2.0, 0.4)]:
        run.log({"loss": loss, "acc": acc, "val/loss": loss + 1, "val/acc": acc, "secret": 1, "plain": loss})
    summary = dict(run.summary)
    assert summary["loss"] == {"min": 1.0, "max": 3.0, "mean": 2.0, "first": 3.0, "last": 2.0}
    assert summary["acc"] == {"best": 0.7}
    assert summary["val/loss"] == {"min": 2.0}
    assert summary["val/acc"] == {"min": 0.1}
    assert "secret" not in summary
    assert summary["plain"] == 2.0
    run.finish()
    assert sidecar.summary_json(run)["acc"] == {"best": 0.7}


def test_best_without_goal_is_refused(sidecar: Sidecar) -> None:
    run = runcore.init(project="p", settings=sidecar.settings())
    with pytest.raises(ValueError, match="best.*needs goal"):
        run.define_metric("acc", summary="best")
    with pytest.raises(ValueError, match="unknown summary option"):
        run.define_metric("acc", summary="median")
    run.finish()


def test_an_explicit_summary_value_wins_over_aggregation(sidecar: Sidecar) -> None:
    run = runcore.init(project="p", settings=sidecar.settings())
    run.log({"acc": 0.5})
    run.summary["best_acc"] = 0.9
    run.summary["acc"] = 0.95
    run.log({"acc": 0.6})
    run.summary.update({"note": "done", "stats": {"n": 2}})
    assert run.summary["acc"] == 0.95
    assert run.summary["best_acc"] == 0.9
    assert run.summary["stats"] == {"n": 2}
    del run.summary["note"]
    assert "note" not in run.summary
    with pytest.raises(KeyError):
        del run.summary["never-set"]
    run.finish()
    on_disk = sidecar.summary_json(run)
    assert on_disk["acc"] == 0.95 and on_disk["best_acc"] == 0.9 and "note" not in on_disk
    # After finish the summary can still be read.
    assert run.summary["best_acc"] == 0.9
    with pytest.raises(runcore.UsageError):
        run.summary["late"] = 1


def test_step_metric_and_step_sync(sidecar: Sidecar) -> None:
    run = runcore.init(project="p", settings=sidecar.settings())
    run.define_metric("epoch", hidden=True)
    m = run.define_metric("val/*", step_metric="epoch")
    assert m.step_metric == "epoch" and m.step_sync is True
    run.define_metric("train/*", step_metric="epoch", step_sync=False)
    run.log({"epoch": 1})
    run.log({"val/loss": 0.5})
    run.log({"train/loss": 0.7})
    run.log({"epoch": 2, "val/loss": 0.4})
    run.finish()
    rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in sidecar.history(run)]
    assert rows == [
        {"epoch": 1},
        {"val/loss": 0.5, "epoch": 1},  # step_sync filled the epoch in
        {"train/loss": 0.7},
        {"epoch": 2, "val/loss": 0.4},
    ]


def test_define_metric_overwrite_false_merges(sidecar: Sidecar) -> None:
    run = runcore.init(project="p", settings=sidecar.settings())
    run.define_metric("loss", step_metric="epoch", summary="min")
    merged = run.define_metric("loss", hidden=True, overwrite=False)
    assert merged.step_metric == "epoch" and merged.summary == ("min",) and merged.hidden
    replaced = run.define_metric("loss", hidden=True)
    assert replaced.step_metric is None and replaced.summary == ()
    # A Metric may be passed as the step metric, as in W&B.
    epoch = run.define_metric("epoch")
    assert run.define_metric("acc", step_metric=epoch).step_metric == "epoch"
    run.finish()


def test_nan_summary_values_survive_the_round_trip(sidecar: Sidecar) -> None:
    run = runcore.init(project="p", settings=sidecar.settings())
    run.log({"x": float("nan"), "y": float("-inf")})
    assert math.isnan(run.summary["x"]) and run.summary["y"] == -math.inf
    run.finish()
    on_disk = sidecar.summary_json(run)
    assert math.isnan(on_disk["x"]) and on_disk["y"] == -math.inf
