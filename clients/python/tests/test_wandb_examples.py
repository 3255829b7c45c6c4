"""`import runcore as wandb` runs W&B's documented examples unchanged, and the
package's own example trains and reports."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import textwrap

import pytest

from conftest import PKG, Sidecar, read_json, read_jsonl, run_script

# Snippets from the W&B Run reference and Runs guide (seeds 000, 002, 003), with the
# import swapped; each run's id is printed so the test can read its store.
DOC_EXAMPLES = textwrap.dedent(
    """
    import json
    import os
    import numpy as np
    from PIL import Image as PILImage
    import runcore as wandb

    ids = {}

    assert wandb.run is None
    wandb.init()
    assert wandb.run is not None
    ids["bare"] = wandb.run.id
    wandb.finish()
    assert wandb.run is None
    with wandb.init() as run:
        pass  # log data here
    assert wandb.run is None

    wandb.login()

    with wandb.init(entity="entity", project="project") as run:
        acc, loss = 0.9, 0.1
        run.log({"accuracy": acc, "loss": loss})
        ids["basic"] = run.id

    with wandb.init() as run:
        run.log(
            {
                "train/accuracy": 0.9,
                "train/loss": 30,
                "validate/accuracy": 0.8,
                "validate/loss": 20,
            }
        )
        ids["sections"] = run.id

    with wandb.init() as run:
        run.log({"epoch": 40, "train-loss": 0.5})

    with wandb.init() as run:
        run.log({"loss": 0.2}, commit=False)
        # Somewhere else when I'm ready to report this step:
        run.log({"accuracy": 0.8})
        ids["incremental"] = run.id

    gradients = np.random.randn(100, 100)
    with wandb.init() as run:
        run.log({"gradients": wandb.Histogram(gradients)})
        ids["histogram"] = run.id

    with wandb.init() as run:
        examples = []
        for i in range(3):
            pixels = np.random.randint(low=0, high=256, size=(100, 100, 3))
            image = wandb.Image(pixels, caption=f"random field {i}")
            examples.append(image)
        run.log({"examples": examples})
        ids["images"] = run.id

    with wandb.init() as run:
        examples = []
        for i in range(3):
            pixels = np.random.randint(
                low=0,
                high=256,
                size=(100, 100, 3),
                dtype=np.uint8,
            )
            pil_image = PILImage.fromarray(pixels, mode="RGB")
            image = wandb.Image(pil_image, caption=f"random field {i}")
            examples.append(image)
        run.log({"examples": examples})

    # Config, summary, alert, define_metric at module level (W&B guides).
    wandb.init(project="my-project-name", config={"learning_rate": 0.01})
    wandb.config.epochs = 4
    wandb.config.update({"batch_size": 32})
    wandb.define_metric("acc", summary="max")
    for epoch in range(wandb.config.epochs):
        wandb.log({"acc": epoch / 10, "loss": 1 - epoch / 10})
    wandb.summary["best_acc"] = 0.9
    wandb.alert(
        title="Low accuracy",
        text="Accuracy is below the acceptable threshold",
        level=wandb.AlertLevel.WARN,
        wait_duration=300,
    )
    ids["module"] = wandb.run.id
    wandb.finish()

    for d in ("these/are/myfiles", "files/a", "files/b"):
        os.makedirs(d, exist_ok=True)
    for p in ("these/are/myfiles/x.txt", "files/a/saveme.txt", "files/b/saveme.txt"):
        open(p, "w").write(p)
    run = wandb.init()
    run.save("these/are/myfiles/*")
    run.save("these/are/myfiles/*", base_path="these")
    run.save("files/*/saveme.txt")
    # If not using a context manager, finish the run explicitly.
    run.finish()
    ids["save"] = run.id

    print(json.dumps(ids))
    """
)


def test_wandb_doc_examples_run_unchanged(sidecar: Sidecar, tmp_path: pathlib.Path) -> None:
    pytest.importorskip("numpy")
    pytest.importorskip("PIL")
    proc = run_script(DOC_EXAMPLES, sidecar.env(), tmp_path)
    assert proc.returncode == 0, proc.stderr
    ids = json.loads(proc.stdout.strip().splitlines()[-1])

    def history(key: str, project: str = "uncategorized") -> list[dict]:
        return read_jsonl(sidecar.run_dir(ids[key], project) / "history.jsonl")

    assert history("basic", "project")[0]["accuracy"] == 0.9
    assert sidecar.run_json(ids["basic"], "project")["entity"] == "entity"
    assert history("sections")[0]["validate/loss"] == 20
    [row] = history("incremental")
    assert (row["loss"], row["accuracy"], row["_step"]) == (0.2, 0.8, 0)
    assert history("histogram")[0]["gradients"]["_type"] == "histogram"
    assert sum(history("histogram")[0]["gradients"]["values"]) == 10000
    assert [e["caption"] for e in history("images")[0]["examples"]] == [f"random field {i}" for i in range(3)]
    module_dir = sidecar.run_dir(ids["module"], "my-project-name")
    assert read_json(module_dir / "config.json") == {"learning_rate": 0.01, "epochs": 4, "batch_size": 32}
    summary = read_json(module_dir / "summary.json")
    assert summary["acc"] == {"max": 0.3} and summary["best_acc"] == 0.9
    assert read_jsonl(module_dir / "alerts.jsonl")[0]["level"] == "WARN"
    files = sidecar.run_dir(ids["save"]) / "files"
    for name in ("these/are/myfiles/x.txt", "are/myfiles/x.txt", "files/a/saveme.txt", "files/b/saveme.txt"):
        assert (files / name).is_file(), name
    for key in ids:
        project = {"basic": "project", "module": "my-project-name"}.get(key, "uncategorized")
        assert sidecar.run_json(ids[key], project)["state"] == "finished"


def test_the_example_trains_and_reports(sidecar: Sidecar, tmp_path: pathlib.Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(PKG / "examples" / "train.py"), "--epochs", "5"],
        env=sidecar.env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    run_dir = pathlib.Path(lines[0].removeprefix("run directory: "))
    assert run_dir.parent == sidecar.data_dir / "runcore-examples"
    assert "summary:" in lines
    summary = read_json(run_dir / "summary.json")
    assert summary["val/acc"]["best"] > 0.9
    assert set(summary["val/loss"]) == {"min"}
    assert summary["final_params"]["w"] == pytest.approx(3.0, abs=0.1)
    assert f"  val/acc: {summary['val/acc']}" in lines
    history = read_jsonl(run_dir / "history.jsonl")
    val_rows = [r for r in history if "val/loss" in r]
    assert [r["epoch"] for r in val_rows] == list(range(5))
    assert all(set(r["params"]) == {"w", "b"} for r in history if "params" in r)
    assert read_json(run_dir / "config.json")["epochs"] == 5
    assert read_json(run_dir / "files" / "model.json")["epoch"] == 4
    assert read_jsonl(run_dir / "alerts.jsonl")[0]["title"] == "accuracy reached 90%"
    assert read_json(run_dir / "run.json")["state"] == "finished"


def test_the_generated_stubs_are_up_to_date() -> None:
    proc = subprocess.run(
        ["bash", str(PKG / "scripts" / "check_proto.sh")],
        env={**__import__("os").environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "up to date" in proc.stdout
