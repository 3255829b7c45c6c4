"""Prints what wandb-core's own transaction log (`run-<id>.wandb`, written by an
offline run with the real wandb-core) holds, as one JSON object: the history rows,
the final summary and the config, each with W&B's internal keys (`_wandb`,
`_runtime`, `_timestamp`) left out. Reads the log with the wandb package's own
reader (wandb.sdk.internal.datastore, shipped by wandb 0.21), so it runs under the
0.21 venv whatever release wrote the file; the log format is the same.

    python read_wandb_log.py RUN_DIR      # the offline-run-... directory
"""

import glob
import json
import sys

from wandb.proto import wandb_internal_pb2 as pb
from wandb.sdk.internal import datastore

SKIP = ("_wandb", "_runtime", "_timestamp")


def path_of(item):
    return list(item.nested_key) if item.nested_key else [item.key]


def put(target, path, value):
    for k in path[:-1]:
        target = target.setdefault(k, {})
    target[path[-1]] = value


def drop(target, path):
    for k in path[:-1]:
        target = target.get(k, {})
    target.pop(path[-1], None)


def main(run_dir):
    log = glob.glob(run_dir + "/*.wandb")[0]
    store = datastore.DataStore()
    store.open_for_scan(log)
    history, summary, config = [], {}, {}
    while True:
        data = store.scan_data()
        if data is None:
            break
        rec = pb.Record()
        rec.ParseFromString(data)
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            row = {}
            for item in rec.history.item:
                put(row, path_of(item), json.loads(item.value_json))
            history.append(row)
        elif kind == "summary":
            for item in rec.summary.update:
                put(summary, path_of(item), json.loads(item.value_json))
            for item in rec.summary.remove:
                drop(summary, path_of(item))
        elif kind in ("run", "config"):
            items = rec.run.config if kind == "run" else rec.config
            for item in items.update:
                put(config, path_of(item), json.loads(item.value_json))
            for item in items.remove:
                drop(config, path_of(item))
    strip = lambda d: {k: v for k, v in d.items() if k not in SKIP}  # noqa: E731
    out = {"history": [strip(r) for r in history], "summary": strip(summary), "config": strip(config)}
    json.dump(out, sys.stdout)


main(sys.argv[1])
