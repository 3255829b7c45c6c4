"""Makes the runs the browser tests look at, through a real sidecar (RUNCORE_ADDRESS),
with the Python client the W&B way.

    python make_store.py finished        # three ended runs in project ui-test
    python make_store.py live READY STOP # one run that logs until STOP exists
    python make_store.py big DATA_DIR ID # a copy of "baseline" as ui-big/ID, with a big
                                         # history that no UI has indexed (a run
                                         # copied in from elsewhere)

The finished runs have nested keys, a define_metric step metric (hidden) for the
val/* metrics, a NaN and an Inf, an alert, a saved file and system metrics; one
of them fails (exit code 1). "baseline" also logs images (three steps), a table
of 45 rows, a runcore.plot line chart and an artifact "ui-dataset", which
"wider-lr" uses. The live run writes READY after its first rows.
"""

from __future__ import annotations

import math
import os
import random
import sys
import tempfile
import struct
import time
import zlib

import runcore as wandb

PROJECT = "ui-test"
SETTINGS = {"x_stats_sampling_interval": 0.1}


def curve(step: int, lr: float, rng: random.Random) -> float:
    return 2.5 * math.exp(-step * lr / 40.0) + 0.1 + rng.gauss(0.0, 0.04)


def png(path: str, width: int, height: int, shade: int) -> str:
    """A small RGB PNG (a gradient), written without Pillow."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + bytes(c for x in range(width) for c in (x * 255 // width, shade, 255 - y * 255 // height))
                   for y in range(height))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def log_media_and_artifact(run: "wandb.Run", tmp: str) -> None:
    for step, shade in enumerate((40, 120, 200)):
        run.log({"samples": wandb.Image(png(os.path.join(tmp, f"s{step}.png"), 32, 24, shade), caption=f"shade {shade}")})
    rows = [[i, round(1.0 / (1 + i), 4), f"item-{(i * 17) % 45:02d}"] for i in range(45)]
    run.log({"predictions": wandb.Table(columns=["id", "score", "label"], data=rows)})
    curve = wandb.Table(columns=["epoch", "loss"], data=[[e, 2.0 / (1 + e)] for e in range(10)])
    run.log({"loss_curve": wandb.plot.line(curve, "epoch", "loss", title="Loss by epoch")})
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    for i in range(3):
        with open(os.path.join(data, f"part{i}.csv"), "w") as f:
            f.write(f"x,y\n{i},{i * i}\n")
    artifact = wandb.Artifact("ui-dataset", type="dataset", description="three parts")
    artifact.add_dir(data)
    run.log_artifact(artifact, aliases=["gold"])


def finished_run(name: str, group: str, tags: list[str], lr: float, seed: int, exit_code: int = 0) -> str:
    rng = random.Random(seed)
    config = {"lr": lr, "batch_size": 64, "optimizer": {"name": "adam", "betas": [0.9, 0.999]}}
    run = wandb.init(project=PROJECT, name=name, group=group, job_type="train", tags=tags,
                     config=config, notes=f"{name}: lr={lr}", settings=SETTINGS)
    run.define_metric("epoch", hidden=True)
    run.define_metric("val/*", step_metric="epoch")
    run.define_metric("val/acc", step_metric="epoch", summary="max")
    steps = 400
    for step in range(steps):
        loss = curve(step, lr, rng)
        if exit_code and step > 300:
            loss *= 1.0 + (step - 300) / 20.0
        row = {"train/loss": loss, "train/lr": lr * 0.5 * (1 + math.cos(math.pi * step / steps)),
               "grad": {"norm": abs(rng.gauss(1.0 / (1 + step / 100), 0.05))}}
        if step == 120:
            row["train/loss"] = float("nan")
        if step == 200:
            row["grad"]["norm"] = float("inf")
        run.log(row)
        if step % 50 == 49:
            epoch = step // 50
            val = curve(step, lr, rng) + 0.05
            run.log({"epoch": epoch, "val/loss": val, "val/acc": 1.0 - val / 3.0})
        time.sleep(0.003)
    if name == "baseline":
        with tempfile.TemporaryDirectory() as tmp:
            log_media_and_artifact(run, tmp)
    if name == "wider-lr":
        run.use_artifact("ui-dataset:latest")
    run.alert(title="loss plateau", text=f"{name}: train/loss below {loss:.2f}", level=wandb.AlertLevel.WARN)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model-card.txt")
        with open(path, "w") as f:
            f.write(f"model {name}\nlr {lr}\n")
        run.save(path, base_path=tmp, policy="now")
        run.summary["best_checkpoint"] = "model-card.txt"
        run.finish(exit_code=exit_code)
    return run.id


def live_run(ready: str, stop: str) -> None:
    rng = random.Random(7)
    run = wandb.init(project=PROJECT, name="live-run", group="live", job_type="train", tags=["live"],
                     config={"lr": 0.02}, settings=SETTINGS)
    step = 0
    deadline = time.monotonic() + 300
    while not os.path.exists(stop) and time.monotonic() < deadline:
        run.log({"live/loss": curve(step, 0.5, rng), "live/acc": min(1.0, step / 500)})
        step += 1
        if step == 20:
            with open(ready, "w") as f:
                f.write(run.id)
        time.sleep(0.05)
    run.finish()


def big_run(data_dir: str, new_id: str) -> None:
    """Copies the baseline run to `new_id` with a history of about 60 MiB (100,000
    rows of 20 metrics, full precision, NaN at every 50th step of "noisy",
    +Inf at other 75ths), without the copy's chart index."""
    import json
    import shutil

    project = os.path.join(data_dir, PROJECT)
    src = next(
        os.path.join(project, d)
        for d in sorted(os.listdir(project))
        if os.path.exists(os.path.join(project, d, "run.json"))
        and json.load(open(os.path.join(project, d, "run.json"))).get("name") == "baseline"
    )
    dst = os.path.join(data_dir, "ui-big", new_id)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".ui-index"))
    meta_path = os.path.join(dst, "run.json")
    meta = json.load(open(meta_path))
    meta.update(id=new_id, name="copied-big", group="copied", project="ui-big")
    with open(meta_path, "w") as f:
        json.dump(meta, f)
    rng = random.Random(11)
    with open(os.path.join(dst, "history.jsonl"), "w") as f:
        for step in range(100_000):
            row = {f"big/m{i:02}": math.sin(step / 5000 + i) + rng.random() / 10 for i in range(19)}
            noisy = float("nan") if step % 50 == 0 else float("inf") if step % 75 == 0 else rng.random()
            row["noisy"] = noisy
            row.update(_step=step, _runtime=step / 100, _timestamp=1.7e9 + step / 100)
            f.write(json.dumps(row) + "\n")


def main() -> None:
    if sys.argv[1:2] == ["finished"]:
        ids = [
            finished_run("baseline", "sweep-a", ["baseline"], 0.5, 1),
            finished_run("wider-lr", "sweep-a", ["lr"], 1.0, 2),
            finished_run("diverged", "sweep-b", ["lr", "unstable"], 2.0, 3, exit_code=1),
        ]
        print(" ".join(ids))
    elif sys.argv[1:2] == ["big"] and len(sys.argv) == 4:
        big_run(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["live"] and len(sys.argv) == 4:
        live_run(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
