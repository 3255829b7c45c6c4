"""A small training loop logged to runcore the W&B way (no ML framework needed).

Fits y = 3x + 2 with mini-batch SGD, and uses: config, define_metric with a step
metric and a "best" summary, nested keys, an alert, save, and finish. Prints the
run directory and the final summary.

    RUNCORE_BIN=target/debug/runcore python clients/python/examples/train.py

(or RUNCORE_ADDRESS=unix:///path/to.sock to use a running sidecar). Swap the
import for ``import wandb`` and it runs against W&B unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile

import runcore as wandb


def make_data(n: int, rng: random.Random) -> list[tuple[float, float]]:
    return [(x, 3.0 * x + 2.0 + rng.gauss(0.0, 0.1)) for x in (rng.uniform(-1, 1) for _ in range(n))]


def evaluate(w: float, b: float, data: list[tuple[float, float]]) -> tuple[float, float]:
    """Mean squared error, and the share of points predicted within 0.25."""
    errors = [(w * x + b - y) for x, y in data]
    mse = sum(e * e for e in errors) / len(errors)
    acc = sum(abs(e) < 0.25 for e in errors) / len(errors)
    return mse, acc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", default="runcore-examples")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    rng = random.Random(0)
    train_data, val = make_data(512, rng), make_data(128, rng)
    with tempfile.TemporaryDirectory(prefix="runcore-example-") as checkpoints:
        run = fit(args, rng, train_data, val, checkpoints)

    # The run is finished: its files are complete.
    run_dir = os.path.dirname(run.dir)
    print(f"run directory: {run_dir}")
    print("summary:")
    for key, value in sorted(run.summary.items()):
        print(f"  {key}: {value}")


def fit(
    args: argparse.Namespace,
    rng: random.Random,
    train: list[tuple[float, float]],
    val: list[tuple[float, float]],
    checkpoints: str,
) -> wandb.Run:
    """Trains, logging as it goes; returns the finished run."""
    with wandb.init(project=args.project, job_type="train", tags=["example"], config=args) as run:
        config = run.config
        config.update({"model": {"kind": "linear", "params": 2}})
        # Validation metrics are plotted against the epoch; keep the best accuracy
        # and the lowest loss in the summary.
        run.define_metric("epoch", hidden=True)
        run.define_metric("val/*", step_metric="epoch")
        run.define_metric("val/acc", step_metric="epoch", summary="best", goal="maximize")
        run.define_metric("val/loss", step_metric="epoch", summary="min")

        w, b = 0.0, 0.0
        alerted = False
        for epoch in range(config.epochs):
            rng.shuffle(train)
            for start in range(0, len(train), config.batch_size):
                batch = train[start : start + config.batch_size]
                grad_w = sum(2 * (w * x + b - y) * x for x, y in batch) / len(batch)
                grad_b = sum(2 * (w * x + b - y) for x, y in batch) / len(batch)
                w -= config.lr * grad_w
                b -= config.lr * grad_b
                loss = sum((w * x + b - y) ** 2 for x, y in batch) / len(batch)
                run.log({"train/loss": loss, "params": {"w": w, "b": b}})
            val_loss, val_acc = evaluate(w, b, val)
            run.log({"epoch": epoch, "val/loss": val_loss, "val/acc": val_acc})
            if val_acc >= 0.9 and not alerted:
                run.alert(
                    title="accuracy reached 90%",
                    text=f"val/acc={val_acc:.3f} at epoch {epoch}",
                    level=wandb.AlertLevel.INFO,
                )
                alerted = True
            path = os.path.join(checkpoints, "model.json")
            with open(path, "w") as f:
                json.dump({"epoch": epoch, "w": w, "b": b}, f)
            if epoch == 0:
                run.save(path, base_path=checkpoints, policy="live")

        run.summary["final_params"] = {"w": w, "b": b}
    return run


if __name__ == "__main__":
    main()
