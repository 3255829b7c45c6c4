"""Measures the Python cost of run.log({10 floats}) against a real sidecar.

Usage: python scripts/bench_log.py [N]   (sidecar from RUNCORE_ADDRESS, else spawned
from RUNCORE_BIN / PATH, with its data under a temporary directory).

Prints, per call: the wall time of log() on the calling thread, that thread's CPU
time, and the CPU time of the whole Python process (the caller plus the native
core's Rust threads that pack and stream the rows) from the first log() until
finish() has every row acknowledged. The sidecar's own CPU is not counted. Build the
native core with `scripts/native.sh --release` for numbers worth comparing.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import runcore


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    keys = [f"metric_{i}" for i in range(10)]
    with tempfile.TemporaryDirectory() as tmp:
        settings = runcore.Settings(data_dir=os.path.join(tmp, "data"), quiet=True)
        run = runcore.init(project="bench", settings=settings)
        # Warm up (first-use costs: key interning, stream start).
        for i in range(2000):
            run.log({k: i * 0.5 for k in keys})
        run._sender.flush()
        rows = [{k: (i + j) * 0.001 for j, k in enumerate(keys)} for i in range(n)]
        cpu0, thread0, wall0 = time.process_time(), time.thread_time(), time.perf_counter()
        for data in rows:
            run.log(data)
        wall1, thread1 = time.perf_counter(), time.thread_time()
        run.finish()
        cpu1 = time.process_time()
        stats = run._sender.stats()
        status_rows, batches = stats["rows_acked"], stats["batches_sent"]
        runcore.teardown()
    us = 1e6 / n
    print(f"rows: {n} (+2000 warm-up), acked {status_rows} in {batches} LogStream batches")
    print(f"log() wall time on the caller:        {(wall1 - wall0) * us:6.2f} us/call")
    print(f"log() CPU time of the calling thread: {(thread1 - thread0) * us:6.2f} us/call")
    print(f"Python process CPU, log..finish:      {(cpu1 - cpu0) * us:6.2f} us/call (caller + native sender)")


if __name__ == "__main__":
    main()
