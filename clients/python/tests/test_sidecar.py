"""Finding the sidecar, and surviving the death of the sidecar or of the client."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import runcore
from conftest import BIN, PATIENCE, Sidecar, read_json, read_jsonl, run_script, wait_for


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNCORE_")}
    env.update(PYTHONUNBUFFERED="1", RUNCORE_SILENT="1")
    env.update(extra)
    return env


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


SPAWN_SCRIPT = textwrap.dedent(
    """
    import json, os, runcore
    from runcore import _sidecar
    first = runcore.init(project="p")
    sc = _sidecar._registry["<spawned>"]
    info = {
        "address": sc.address,
        "pid": sc.spawned.process.pid,
        "tmpdir": sc.spawned.tmpdir,
        "mode": os.stat(sc.spawned.tmpdir).st_mode & 0o777,
        "args": sc.spawned.args,
        "first": first.id,
    }
    first.log({"x": 1})
    first.finish()
    second = runcore.init(project="p")
    second.log({"x": 2})
    info["pid2"] = _sidecar._registry["<spawned>"].spawned.process.pid
    info["second"] = second.id
    print(json.dumps(info))
    # second is left open: the exit hook finishes it, then stops the sidecar.
    """
)


def test_spawns_a_private_sidecar_and_reuses_it(tmp_path: pathlib.Path) -> None:
    proc = run_script(SPAWN_SCRIPT, clean_env(RUNCORE_BIN=BIN), tmp_path)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["address"] == f"unix://{info['tmpdir']}/sidecar.sock"
    assert info["mode"] == 0o700
    assert info["pid"] == info["pid2"], "the second run did not reuse the sidecar"
    assert "--port-file" in info["args"]
    if "--parent-pid" in subprocess.run([BIN, "serve", "--help"], capture_output=True, text=True).stdout:
        assert "--parent-pid" in info["args"]
    # The data dir defaults to ./runcore-data; both runs are there.
    data = tmp_path / "runcore-data" / "p"
    for run_id, x in ((info["first"], 1), (info["second"], 2)):
        assert read_json(data / run_id / "run.json")["state"] == "finished"
        assert [r["x"] for r in read_jsonl(data / run_id / "history.jsonl")] == [x]
    # At exit the client stopped its sidecar and removed its private directory.
    wait_for(lambda: not pid_alive(info["pid"]), "the spawned sidecar to exit")
    assert not os.path.exists(info["tmpdir"])


def test_an_older_binary_is_started_again_with_the_flags_it_has(tmp_path: pathlib.Path) -> None:
    # A spawn passes every optional flag, and asks `serve --help` only when the
    # sidecar exits before listening: this stand-in for an older binary has no
    # --parent-pid (refused, and missing from its help), like the real one otherwise.
    old = tmp_path / "old-runcore"
    old.write_text(
        textwrap.dedent(
            f"""\
            #!/bin/sh
            for a in "$@"; do
              if [ "$a" = --parent-pid ]; then echo "error: unexpected argument '--parent-pid' found" >&2; exit 2; fi
            done
            if [ "$1 $2" = "serve --help" ]; then "{BIN}" serve --help | grep -v -e --parent-pid; exit 0; fi
            exec "{BIN}" "$@"
            """
        )
    )
    old.chmod(0o755)
    proc = run_script(SPAWN_SCRIPT, clean_env(RUNCORE_BIN=str(old)), tmp_path)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "--parent-pid" not in info["args"] and "--shared-data-dir" in info["args"], info["args"]
    assert info["pid"] == info["pid2"], "the second run did not reuse the sidecar"
    data = tmp_path / "runcore-data" / "p"
    for run_id, x in ((info["first"], 1), (info["second"], 2)):
        assert [r["x"] for r in read_jsonl(data / run_id / "history.jsonl")] == [x]
    wait_for(lambda: not pid_alive(info["pid"]), "the spawned sidecar to exit")


def test_finds_runcore_on_path(tmp_path: pathlib.Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "runcore").symlink_to(BIN)
    env = clean_env(PATH=f"{bindir}:{os.environ.get('PATH', '')}")
    # init(dir=...) places a spawned sidecar's data dir, as W&B's dir places ./wandb.
    code = "import runcore; r = runcore.init(project='p', dir='out'); r.log({'x': 1}); r.finish(); print(r.id)"
    proc = run_script(code, env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.strip()
    assert [r["x"] for r in read_jsonl(tmp_path / "out" / "runcore-data" / "p" / run_id / "history.jsonl")] == [1]
    code = "import runcore; r = runcore.init(project='p', settings=runcore.Settings(data_dir='d')); r.finish(); print(r.id)"
    proc = run_script(code, env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert read_json(tmp_path / "d" / "p" / proc.stdout.strip() / "run.json")["state"] == "finished"


def test_says_what_it_tried_when_there_is_no_sidecar(tmp_path: pathlib.Path) -> None:
    code = "import runcore\ntry:\n    runcore.init(project='p')\nexcept runcore.SidecarNotFoundError as e:\n    print(e)\n"
    proc = run_script(code, clean_env(PATH=str(tmp_path)), tmp_path)
    assert proc.returncode == 0, proc.stderr
    msg = proc.stdout
    assert "RUNCORE_ADDRESS is not set" in msg
    assert "RUNCORE_BIN is not set" in msg
    assert f"no 'runcore' on PATH ({tmp_path})" in msg
    proc = run_script(code, clean_env(RUNCORE_BIN=str(tmp_path / "missing")), tmp_path)
    assert f"RUNCORE_BIN={tmp_path / 'missing'} is not an executable file" in proc.stdout
    # A sidecar that cannot start: its own error is in the message.
    (tmp_path / "taken").mkdir()
    fake = tmp_path / "data-is-a-file"
    fake.write_text("")
    proc = run_script(code, clean_env(RUNCORE_BIN=BIN, RUNCORE_DATA_DIR=str(fake)), tmp_path)
    assert "exited with code" in proc.stdout and str(fake) in proc.stdout, proc.stdout + proc.stderr


def test_a_spawned_sidecar_that_dies_is_restarted(tmp_path: pathlib.Path) -> None:
    code = textwrap.dedent(
        """
        import os, signal, runcore
        from runcore import _sidecar
        run = runcore.init(project="p", id="respawn")
        for i in range(500):
            run.log({"i": i})
        sp = _sidecar._registry["<spawned>"].spawned
        old = sp.process.pid
        os.kill(old, signal.SIGKILL)
        sp.process.wait()
        for i in range(500, 1000):
            run.log({"i": i})
        run.finish()
        assert sp.process.pid != old
        print(run.status().batches_resent)
        """
    )
    proc = run_script(code, clean_env(RUNCORE_BIN=BIN), tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = read_jsonl(tmp_path / "runcore-data" / "p" / "respawn" / "history.jsonl")
    assert [r["i"] for r in rows] == list(range(1000))
    assert [r["_step"] for r in rows] == list(range(1000))


def test_the_sidecar_restarted_mid_run_loses_and_duplicates_nothing(sidecar: Sidecar) -> None:
    # A SIGKILLed sidecar recovers the open run from its log. (A SIGTERMed one ends
    # it as killed, which the client reports and does not resume: test_contract.py.)
    run = runcore.init(project="p", id="restart", settings=sidecar.settings(batch_rows=50, max_in_flight=4))
    n = 6000
    logged = threading.Event()
    progress = [0]

    def writer() -> None:
        for i in range(n):
            run.log({"i": i, "sq": float(i * i)})
            progress[0] = i
        logged.set()

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    wait_for(lambda: progress[0] >= 1500, "the writer to get going")
    sidecar.kill(signal.SIGKILL)
    stopped_at = progress[0]
    wait_for(lambda: progress[0] >= stopped_at + 500 or logged.is_set(), "rows queued while the sidecar is down")
    sidecar.start()
    assert logged.wait(PATIENCE)
    run.log({"i": n, "sq": float(n * n)})
    run.finish()
    rows = sidecar.history(run)
    assert [r["i"] for r in rows] == list(range(n + 1)), "rows lost or duplicated"
    assert [r["_step"] for r in rows] == list(range(n + 1))
    assert all(r["sq"] == float(r["i"] ** 2) for r in rows)
    status = run.status()
    assert status.rows_lost == 0 and status.rows_acked == n + 1
    assert status.state == "finished"
    assert sidecar.run_json(run)["state"] == "finished"


def test_unary_calls_wait_for_a_restarted_sidecar(sidecar: Sidecar) -> None:
    run = runcore.init(project="p", settings=sidecar.settings())
    run.log({"x": 1})
    sidecar.kill()
    restarter = threading.Timer(0.3, sidecar.start)
    restarter.start()
    try:
        run.config.update({"after": "restart"})  # blocks until the sidecar is back
        run.summary["best"] = 1.0
    finally:
        restarter.join()
    run.log({"x": 2})
    run.finish()
    assert [r["x"] for r in sidecar.history(run)] == [1, 2]
    assert read_json(sidecar.run_dir(run) / "config.json") == {"after": "restart"}
    assert sidecar.summary_json(run)["best"] == 1.0


KILLED_CLIENT = textwrap.dedent(
    """
    import runcore
    run = runcore.init(project="p", id="killed")
    i = 0
    while True:
        run.log({"i": i, "loss": 1.0 / (i + 1)})
        i += 1
        if i % 250 == 0:
            print("acked", run.status().rows_acked, flush=True)
    """
)


def test_a_killed_client_keeps_every_acknowledged_row(sidecar: Sidecar, tmp_path: pathlib.Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_CLIENT],
        env=sidecar.env(),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acked = 0
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + PATIENCE
        for line in child.stdout:
            acked = int(line.split()[1])
            if acked >= 3000 or time.monotonic() > deadline:
                break
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert acked >= 3000, child.stderr.read() if child.stderr else ""
    # Everything the client had acknowledged is in the history once the sidecar
    # flushed it, and nothing twice.
    rows = wait_for(lambda: (r := sidecar.history("killed", "p")) and len(r) >= acked and r, "the acked rows in history.jsonl")
    assert [r["i"] for r in rows] == list(range(len(rows)))
    assert rows[acked - 1]["loss"] == 1.0 / acked
    # The crashed state needs the sidecar's liveness checks (pid watch / heartbeat).
    deadline = time.monotonic() + 5
    state = sidecar.run_json("killed", "p")["state"]
    while state == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
        state = sidecar.run_json("killed", "p")["state"]
    if state == "running":
        pytest.skip(
            "the sidecar does not mark a run whose client was SIGKILLed as crashed yet "
            "(liveness: client pid watch / heartbeat timeout): still 'running' 5 s later"
        )
    assert state == "crashed"


def test_a_hung_sidecar_does_not_hang_finish(sidecar: Sidecar) -> None:
    run = runcore.init(project="p", settings=sidecar.settings(reconnect_timeout=1.0, rpc_timeout=1.0))
    run.log({"x": 1})
    run._flush()
    assert sidecar.proc is not None
    sidecar.proc.send_signal(signal.SIGSTOP)
    try:
        run.log({"x": 2})
        started = time.monotonic()
        with pytest.warns(runcore.RuncoreWarning, match="acknowledged nothing.*1 logged rows could not be delivered"):
            with pytest.raises(runcore.CommError, match="DEADLINE_EXCEEDED"):
                run.finish()
        assert time.monotonic() - started < 10
        assert run.status().rows_lost == 1
        assert runcore.run is None
    finally:
        sidecar.proc.send_signal(signal.SIGCONT)


def test_a_token_protected_sidecar_is_reached_with_runcore_auth_token(tmp_path: pathlib.Path) -> None:
    token = "tok-" + "x" * 28
    sc = Sidecar(tmp_path, extra=("--auth-token", token))
    script = "import runcore\nrun = runcore.init(project='p', id='authed')\nrun.log({'x': 1.0})\nrun.finish()\n"
    try:
        ok = subprocess.run(
            [sys.executable, "-c", script], env=sc.env(RUNCORE_AUTH_TOKEN=token), capture_output=True, timeout=60
        )
        assert ok.returncode == 0, ok.stderr.decode()
        assert [r["x"] for r in sc.history("authed", "p")] == [1.0]
        refused = subprocess.run([sys.executable, "-c", script], env=sc.env(), capture_output=True, timeout=60)
        assert refused.returncode != 0
        assert "authorization" in refused.stderr.decode(), refused.stderr.decode()
    finally:
        sc.kill(signal.SIGTERM)
