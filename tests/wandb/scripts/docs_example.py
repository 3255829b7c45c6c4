"""The W&B documentation's examples, run by the unchanged `wandb` SDK or by runcore's
client: `SDK=wandb python docs_example.py SCENARIO RUN_ID` imports `wandb`,
`SDK=runcore` imports `runcore as wandb`; nothing else differs. Scenarios:

  basic      init/config/log with steps and commit/define_metric with summaries and
             step metrics/alert/save/summary/finish
  with       the `with wandb.init(...)` form
  exception  an exception inside `with`: the run ends failed with exit code 1
  uncaught   an exception outside `with`, no finish: the process dies with it
  sigkill    logs, prints "ready", and waits to be killed
  nan        a metric with min/max/mean summaries that logs NaN (where runcore and
             wandb-core differ on purpose)
  rename     sets run.name, run.tags and run.notes after init
"""

import os
import sys
import time

if os.environ.get("SDK") == "runcore":
    import runcore as wandb
else:
    import wandb

scenario, run_id = sys.argv[1], sys.argv[2]
PROJECT = "docs"


def core_children():
    """Names of this process's child processes (wandb-core must not be one)."""
    me = str(os.getpid())
    names = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if pid.isdigit() and stat.rsplit(")", 1)[1].split()[1] == me:
            names.append(stat[stat.index("(") + 1 : stat.rindex(")")])
    return names


def basic():
    run = wandb.init(
        project=PROJECT,
        id=run_id,
        config={"lr": 0.01, "epochs": 3, "arch": {"layers": 2, "act": "relu"}},
        tags=["docs"],
        notes="the W&B docs example",
        group="examples",
        job_type="train",
    )
    print("children:", ",".join(core_children()))
    run.config.update({"batch_size": 32})
    run.config["optimizer"] = "adam"
    run.define_metric("epoch", hidden=True)
    run.define_metric("val/acc", step_metric="epoch", summary="max")
    run.define_metric("val/loss", step_metric="epoch", summary="min")
    run.define_metric("train/loss", summary="min,last")
    for epoch in range(3):
        for batch in range(5):
            run.log({"train/loss": 1.0 / (1 + epoch * 5 + batch), "lr": 0.01})
        run.log({"epoch": epoch, "val/acc": 0.5 + epoch / 10, "val/loss": 1.0 - epoch / 10})
    run.log({"custom": 1}, step=20)
    run.log({"custom2": 2.5}, step=20)
    run.log({"partial": 1.5}, commit=False)
    run.log({"partial2": 2.5})
    run.log({"late": 1.0}, step=3)
    run.log({"nested": {"a": 1, "b": [1, 2.5]}, "flag": True, "text": "hi", "count": 7})
    print("console line one")
    run.alert(title="halfway", text="3 epochs done", level=wandb.AlertLevel.WARN)
    with open("model.txt", "w") as f:
        f.write("weights")
    run.save("model.txt", policy="now")
    run.summary["best_acc"] = 0.8
    run.summary.update({"final": {"x": 1}})
    run.finish()


def with_form():
    with wandb.init(project=PROJECT, id=run_id, config={"lr": 0.1}) as run:
        for step in range(10):
            run.log({"loss": 1 / (step + 1), "step_sq": step * step})
        run.summary["done"] = True


def exception():
    with wandb.init(project=PROJECT, id=run_id) as run:
        run.log({"loss": 0.5})
        raise RuntimeError("inside with")


def uncaught():
    run = wandb.init(project=PROJECT, id=run_id)
    run.log({"loss": 0.5})
    raise ValueError("boom")


def sigkill():
    run = wandb.init(project=PROJECT, id=run_id)
    for step in range(5):
        run.log({"loss": 1 / (step + 1)})
    # A question the SDK waits on: everything before it has reached the core.
    _ = run.summary.get("loss")
    print("ready", flush=True)
    time.sleep(300)


def nan():
    with wandb.init(project=PROJECT, id=run_id) as run:
        run.define_metric("loss", summary="min,max,mean")
        for v in [0.5, float("nan"), 0.25]:
            run.log({"loss": v})


def rename():
    with wandb.init(project=PROJECT, id=run_id, name="first", tags=["a"]) as run:
        run.log({"loss": 1.0})
        run.name = "renamed"
        run.tags = ("b", "c")
        run.notes = "changed from the script"
        run.log({"loss": 0.5})


{"rename": rename, "nan": nan, "basic": basic, "with": with_form, "exception": exception, "uncaught": uncaught, "sigkill": sigkill}[scenario]()
