"""The W&B service protocol's sidecar CPU without the SDK's own noise: the frames the
unchanged wandb SDK sends for ROWS x KEYS `run.log` calls, recorded once, then replayed
into fresh sidecars at a fixed rate, the sidecar's CPU read from schedstat (ns):

    bench/.cache/venv/bin/python bench/wandb_replay.py record --rows 40000 --out frames.pkl
    bench/.cache/venv/bin/python bench/wandb_replay.py replay frames.pkl --reps 4 \\
        --variant new=bench/.cache/bin/runcore --variant old=PATH/TO/runcore \\
        --variant slow=bench/.cache/bin/runcore:RUNCORE_SOME_ENV=1

`record` puts a proxy between the SDK (offline mode, WANDB_SERVICE pointing at the proxy)
and a sidecar, and keeps what the SDK wrote. `replay` sends the frames as the SDK does
(two writes per frame: the 5-byte header, then the message), the `run.log` rows one
every `--gap-us` (busy-waiting; the SDK's own pace is 200-300 us a call on the 2-core
machine), and prints the sidecar's CPU from the first row to one second after the last
frame, per point. The recorded `inform_init` names the recording's process as the
training process (`x_stats_pid`), which is gone by then and would crash the run at
once: the replay names itself instead (with the wandb package's own protobufs), and
each result says how many rows the run recorded. Variants alternate within each
repetition. A diagnostic for the adapter's own cost; bench/wandb_ratio.py is the
figure against LogStream.
"""

import argparse
import json
import os
import pickle
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_BIN = os.path.join(HERE, ".cache", "bin", "runcore")


def sidecar(binary: str, tmp: str, env: Dict[str, str]) -> Tuple[subprocess.Popen, str]:
    """`runcore serve` with a W&B listener on a unix socket in `tmp`; its socket path."""
    sock, port_file = os.path.join(tmp, "wandb.sock"), os.path.join(tmp, "wandb.addr")
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "unix://" + os.path.join(tmp, "grpc.sock"),
         "--wandb-listen", "unix://" + sock, "--wandb-port-file", port_file,
         "--data-dir", os.path.join(tmp, "data")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, **env))
    deadline = time.monotonic() + 30
    while not os.path.exists(port_file):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{binary} did not start")
        time.sleep(0.01)
    return proc, sock


def frames_of(buf: bytearray) -> List[bytes]:
    """Takes every whole frame off the front of `buf`."""
    out = []
    while len(buf) >= 5:
        n = struct.unpack("<I", buf[1:5])[0]
        if len(buf) < 5 + n:
            break
        out.append(bytes(buf[5:5 + n]))
        del buf[:5 + n]
    return out


def record(a: argparse.Namespace) -> None:
    tmp = tempfile.mkdtemp(prefix="wandb-replay-")
    proc, real = sidecar(a.bin, tmp, {})
    proxy = os.path.join(tmp, "proxy.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(proxy)
    listener.listen(1)
    frames: List[bytes] = []

    def pump(src: socket.socket, dst: socket.socket, keep: bool) -> None:
        buf = bytearray()
        while True:
            b = src.recv(65536)
            if not b:
                break
            dst.sendall(b)
            if keep:
                buf += b
                frames.extend(frames_of(buf))
        dst.shutdown(socket.SHUT_WR)

    def serve() -> None:
        sdk, _ = listener.accept()
        core = socket.socket(socket.AF_UNIX)
        core.connect(real)
        threading.Thread(target=pump, args=(core, sdk, False), daemon=True).start()
        pump(sdk, core, True)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    os.environ["WANDB_SERVICE"] = f"3-{proc.pid}-unix-{proxy}"
    import wandb

    run = wandb.init(project="bench", mode="offline", dir=tmp,
                     settings=wandb.Settings(silent=True, console="off"))
    base = [(f"metric_{k}", k * 0.1) for k in range(a.keys)]
    for step in range(a.rows):
        x = step * 1e-3
        run.log({k: v + x for k, v in base})
    run.finish()
    wandb.teardown()
    server.join(30)
    proc.terminate()
    proc.wait(60)
    with open(a.out, "wb") as f:
        pickle.dump({"keys": a.keys, "frames": frames}, f)
    print(f"{len(frames)} frames ({a.rows} rows of {a.keys} keys) in {a.out}")


def cpu_ns(pid: int) -> int:
    """The process's CPU time (its live threads' schedstat; its threads outlive the
    measurement: the runtime's workers, the connection's reader and writer)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/schedstat") as f:
            total += int(f.read().split()[0])
    return total


def as_training_process(frames: List[bytes]) -> List[bytes]:
    """The frames with this process as the one whose exit ends the run."""
    from wandb.proto import wandb_server_pb2

    out = []
    for f in frames:
        if b"metric_0" not in f:
            req = wandb_server_pb2.ServerRequest()
            req.ParseFromString(f)
            if req.HasField("inform_init"):
                req.inform_init.settings.x_stats_pid.value = os.getpid()
                f = req.SerializeToString()
        out.append(f)
    return out


def history_rows(data_dir: str) -> int:
    rows = 0
    for root, _, files in os.walk(data_dir):
        if "history.jsonl" in files:
            with open(os.path.join(root, "history.jsonl"), "rb") as f:
                rows += sum(1 for _ in f)
    return rows


def replay_once(frames: List[bytes], keys: int, gap_s: float, binary: str, env: Dict[str, str]) -> Dict:
    with tempfile.TemporaryDirectory(prefix="wandb-replay-") as tmp:
        proc, path = sidecar(binary, tmp, env)
        conn = socket.socket(socket.AF_UNIX)
        conn.connect(path)
        threading.Thread(target=lambda: [None for _ in iter(lambda: conn.recv(65536), b"")],
                         daemon=True).start()

        def send(f: bytes) -> None:
            conn.sendall(struct.pack("<cI", b"W", len(f)))
            conn.sendall(f)

        rows = [i for i, f in enumerate(frames) if b"metric_0" in f]
        first, last = rows[0], rows[-1]
        for f in frames[:first]:
            send(f)
        time.sleep(0.5)
        cpu0, t0 = cpu_ns(proc.pid), time.perf_counter()
        due = t0
        for f in frames[first:last + 1]:
            while time.perf_counter() < due:
                pass
            send(f)
            due += gap_s
        loop_s = time.perf_counter() - t0
        for f in frames[last + 1:]:
            send(f)
        time.sleep(1.0)
        cpu = (cpu_ns(proc.pid) - cpu0) / 1e9
        conn.close()
        proc.terminate()
        proc.wait(60)
        recorded = history_rows(os.path.join(tmp, "data"))
    points = (last - first + 1) * keys
    return {"loop_s": loop_s, "cpu_s": cpu, "us_per_point": cpu * 1e6 / points,
            "rows": last - first + 1, "recorded": recorded}


def replay(a: argparse.Namespace) -> None:
    with open(a.frames, "rb") as f:
        rec = pickle.load(f)
    frames = as_training_process(rec["frames"])
    variants = []
    for v in a.variant or [f"runcore={a.bin}"]:
        name, spec = v.split("=", 1)
        binary, *envs = spec.split(":")
        variants.append((name, binary, dict(e.split("=", 1) for e in envs)))
    got: Dict[str, List[float]] = {}
    for rep in range(a.reps):
        for name, binary, env in variants:
            r = replay_once(frames, rec["keys"], a.gap_us / 1e6, binary, env)
            got.setdefault(name, []).append(r["us_per_point"])
            print(f"rep {rep + 1} {name}: {r['us_per_point']:.3f} us/point "
                  f"(sidecar {r['cpu_s']:.3f} s, loop {r['loop_s']:.1f} s, "
                  f"{r['recorded']} of {r['rows']} rows recorded)", flush=True)
    print(f"load average {os.getloadavg()}")
    for name, xs in got.items():
        print(f"{name}: median {statistics.median(xs):.3f} us/point ({min(xs):.3f}-{max(xs):.3f})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("--rows", type=int, default=40000)
    r.add_argument("--keys", type=int, default=10)
    r.add_argument("--out", required=True)
    r.add_argument("--bin", default=DEFAULT_BIN)
    q = sub.add_parser("replay")
    q.add_argument("frames")
    q.add_argument("--reps", type=int, default=4)
    q.add_argument("--gap-us", type=float, default=250.0)
    q.add_argument("--bin", default=DEFAULT_BIN)
    q.add_argument("--variant", action="append", help="NAME=BINARY[:ENV=VALUE...]")
    a = p.parse_args()
    record(a) if a.cmd == "record" else replay(a)


if __name__ == "__main__":
    sys.exit(main())
