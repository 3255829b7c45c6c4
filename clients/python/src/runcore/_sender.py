"""The background sender: packs queued rows into ``LogBatch`` messages and streams
them to the sidecar over ``LogStream``.

- ``put()`` (called by ``Run.log``) appends a row tuple to a deque; nothing else
  happens on the caller's thread unless the queue is full, when it blocks (rows are
  never dropped for lack of room).
- The sender thread wakes every ``batch_interval`` seconds, or at once when a batch
  worth of rows is queued or someone flushes, and sends everything queued in
  batches of at most ``batch_rows`` rows: one key table per batch, floats in the
  packed scalar fields, each batch numbered with the next ``seq``.
- An ack thread per stream reads ``LogAck`` messages in order and retires batches.
  Batches stay in ``unacked`` until acknowledged; when the stream breaks because
  the sidecar went away, the run re-attaches (``RunLink.attach``) and every
  unacknowledged batch is sent again on a new stream. The sidecar keeps the highest
  seq it applied and acknowledges a resent one as a duplicate without applying it
  again, so each row lands exactly once.
- What a broken stream means is the client contract's (``_contract.classify``,
  kind STREAM): reconnect and resend (UNAVAILABLE, ABORTED, ...; INTERNAL and
  UNKNOWN: RETRY_LIMITED_ATTEMPTS attempts in a row at most), drop the refused batch
  with a warning and resend the rest (INVALID_ARGUMENT, RESOURCE_EXHAUSTED), re-Init
  a run the sidecar does not know (NOT_FOUND), report a run the sidecar ended
  (FAILED_PRECONDITION: crashed, killed, ...) and never resume it, or give up
  (UNAUTHENTICATED, PERMISSION_DENIED, ...).

The sender knows its run only through a :class:`RunLink` (the few things it needs:
re-attach, heartbeat, report), which the ``Run`` hands it; this module does not
import the one that defines ``Run``.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from typing import TYPE_CHECKING, Any, Iterator, Optional, Protocol

import grpc

from ._contract import RETRY_LIMITED_ATTEMPTS, Action, Kind, classify
from ._errors import CommError, RunEndedError
from ._proto import runcore_pb2 as pb
from ._settings import Settings

if TYPE_CHECKING:
    from ._sidecar import Sidecar


class RunLink(Protocol):
    """What the sender needs from the run it sends for."""

    @property
    def run_id(self) -> str: ...

    @property
    def writer_id(self) -> str:
        """This process's writer id for the run (batch seqs are per writer)."""
        ...

    def attach(self, force: bool) -> None:
        """Makes sure the run is open on the sidecar: after a reconnect (or always,
        with ``force``) asks the sidecar, re-Inits a run it does not know, and
        raises :class:`RunEndedError` for a run it ended (which is never resumed).
        Raises ``grpc.RpcError`` when the sidecar cannot be asked."""
        ...

    def heartbeat(self) -> None:
        """Shows a sign of life and handles what the reply says (should_stop)."""
        ...

    def on_dropped(self, row: pb.DroppedRow) -> None:
        """A row the sidecar did not apply (a smaller step the client did not foresee...)."""
        ...

    def warn(self, kind: str, message: str) -> None:
        """Reports something not recorded as asked (once per kind)."""
        ...
#: Largest batch the sender builds; the sidecar's default limit is 16 MiB.
MAX_BATCH_BYTES = 4 << 20

# A queued row: scalar keys, their float values, other values (or None), step,
# commit, client timestamp.
Row = tuple[list[str], list[float], Optional[dict[str, Any]], Optional[int], Optional[bool], float]


class _Stream:
    """One LogStream call: a request queue feeding grpc, and a thread reading acks."""

    def __init__(self, sender: "Sender", stub: Any, metadata: Any, generation: int) -> None:
        self.generation = generation
        self._sender = sender
        self._requests: "queue.SimpleQueue[Optional[pb.LogBatch]]" = queue.SimpleQueue()
        self.call = stub.LogStream(self._iterate(), metadata=metadata)
        self.reader = threading.Thread(target=self._read, name="runcore-acks", daemon=True)

    def start(self) -> None:
        """Starts reading acks (after the sender made this its current stream, so
        that an immediate failure is not mistaken for an old stream's)."""
        self.reader.start()

    def _iterate(self) -> Iterator[pb.LogBatch]:
        while True:
            batch = self._requests.get()
            if batch is None:
                return
            yield batch

    def send(self, batch: pb.LogBatch) -> None:
        self._requests.put(batch)

    def close(self) -> None:
        """Half-closes: the sidecar acks what it has and ends the stream."""
        self._requests.put(None)

    def cancel(self) -> None:
        self._requests.put(None)
        self.call.cancel()

    def _read(self) -> None:
        error: Optional[grpc.RpcError] = None
        try:
            for ack in self.call:
                self._sender._on_ack(ack)
        except grpc.RpcError as e:
            error = e
        except Exception as e:  # noqa: BLE001 - reported to the sender, never lost
            error = _LocalError(e)
        self._sender._on_stream_end(self, error)


class _LocalError(grpc.RpcError):  # type: ignore[misc]
    """An unexpected client-side failure of a stream, shaped like an RpcError."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNKNOWN

    def details(self) -> str:
        return f"client error: {self.cause!r}"


class Sender:
    def __init__(
        self, link: RunLink, sidecar: "Sidecar", settings: Settings, client_timeout: float, first_seq: int
    ) -> None:
        s = settings
        self._link = link
        self._sidecar = sidecar
        self._settings = settings
        self._run_id = link.run_id
        self._writer_id = link.writer_id
        self._interval = float(s.batch_interval)
        self._batch_rows = int(s.batch_rows)
        self._max_queue = int(s.queue_size)
        self._max_in_flight = int(s.max_in_flight)
        # Any RPC is a sign of life; an idle run heartbeats well inside its timeout.
        timeout = float(client_timeout or 0.0)
        self._heartbeat_every = min(float(s.heartbeat_interval), timeout / 3) if timeout > 0 else float(s.heartbeat_interval)
        self._rows: "collections.deque[Row]" = collections.deque()
        self._wake = threading.Event()
        # Guards _unacked, the counters and _broken; waiters: full queue, flush, close.
        self._cond = threading.Condition()
        self._unacked: "collections.OrderedDict[int, tuple[pb.LogBatch, int]]" = collections.OrderedDict()
        self._next_seq = first_seq
        self._stream: Optional[_Stream] = None
        self._broken: Optional[tuple[_Stream, Optional[grpc.RpcError]]] = None
        self._closing = False
        #: The sender gave up (the sidecar stayed away): rows are no longer sent.
        self.dead: Optional[str] = None
        self.rows_queued = 0
        self.rows_acked = 0
        self.rows_lost = 0
        self.batches_sent = 0
        self.batches_acked = 0
        self.batches_resent = 0
        self.last_ack_time = 0.0
        # Since when streams break without an ack in between (None: all is well).
        self._failing_since: Optional[float] = None
        self._failures = 0
        # Stream failures in a row whose action is RETRY_LIMITED.
        self._limited = 0
        # Since when (and at which ack count and stream) batches wait for acks.
        self._waiting_since: Optional[float] = None
        self._waiting_mark: Any = None
        self._last_heartbeat = time.monotonic()
        self._thread = threading.Thread(target=self._main, name="runcore-sender", daemon=True)
        self._thread.start()

    # -- caller's side ------------------------------------------------------------

    def put(self, row: Row) -> None:
        """Queues a row (the caller holds the run's log lock, so rows keep order)."""
        rows = self._rows
        if len(rows) >= self._max_queue:
            self._wait_for_room()
        if self.dead is not None:
            with self._cond:
                self.rows_queued += 1
                self.rows_lost += 1
            return
        rows.append(row)
        self.rows_queued += 1
        if len(rows) == self._batch_rows:
            self._wake.set()

    def _wait_for_room(self) -> None:
        with self._cond:
            while len(self._rows) >= self._max_queue and self.dead is None:
                self._wake.set()
                self._cond.wait(0.5)

    def pending(self) -> int:
        """Rows logged and not yet acknowledged (or given up on)."""
        return self.rows_queued - self.rows_acked - self.rows_lost

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Waits until every row queued so far is acknowledged (or given up on)."""
        target = self.rows_queued
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        with self._cond:
            while self.rows_acked + self.rows_lost < target and self.dead is None:
                if not self._thread.is_alive():
                    return False
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                self._cond.wait(0.05)
        return self.rows_acked + self.rows_lost >= target

    def close(self, timeout: Optional[float] = None) -> None:
        """Sends everything queued, waits for the acks, and ends the stream."""
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)

    # -- sender thread ------------------------------------------------------------

    def _main(self) -> None:
        try:
            while True:
                self._wake.wait(self._interval)
                self._wake.clear()
                self._pump()
                if self._closing and not self._rows:
                    self._drain()
                    return
                self._maybe_heartbeat()
        except _GiveUp as e:
            self._give_up(str(e))
        except Exception as e:  # noqa: BLE001 - a bug here must not hang finish()
            self._give_up(f"the sender failed: {e!r}")

    def _give_up(self, why: str) -> None:
        with self._cond:
            lost = len(self._rows) + sum(n for _, n in self._unacked.values())
            self._rows.clear()
            self._unacked.clear()
            self.rows_lost += lost
            self.dead = why
            self._cond.notify_all()
        if self._stream is not None:
            self._stream.cancel()
        self._link.warn(
            "sender-gave-up",
            f"runcore: run {self._run_id}: {why}; {lost} logged rows could not be delivered "
            "and later rows are discarded",
        )

    def _pump(self) -> None:
        rows = self._rows
        while True:
            self._ensure_stream()
            if not rows:
                return
            with self._cond:
                if len(self._unacked) >= self._max_in_flight:
                    if self._broken is None:
                        self._cond.wait(0.1)
                        self._check_progress()
                    continue
            batch_rows: list[Row] = []
            size = 0
            while rows and len(batch_rows) < self._batch_rows and size < MAX_BATCH_BYTES:
                row = rows.popleft()
                batch_rows.append(row)
                if row[2]:
                    size += sum(v.ByteSize() for v in row[2].values() if isinstance(v, pb.Value))
            with self._cond:
                self._cond.notify_all()  # room in the queue
            batch = self._build(batch_rows)
            with self._cond:
                batch.seq = self._next_seq
                self._next_seq += 1
                self._unacked[batch.seq] = (batch, len(batch_rows))
                self.batches_sent += 1
            assert self._stream is not None
            self._stream.send(batch)

    def _build(self, rows: list[Row]) -> pb.LogBatch:
        batch = pb.LogBatch(run_id=self._run_id, writer_id=self._writer_id)
        keys: dict[str, int] = {}
        index = keys.setdefault
        add = batch.rows.add
        Value = pb.Value
        for skeys, svals, values, step, commit, ts in rows:
            r = add()
            if skeys:
                r.scalar_keys.extend([index(k, len(keys)) for k in skeys])
                r.scalar_values.extend(svals)
            if values:
                rv = r.values
                for k, v in values.items():
                    t = type(v)
                    if t is int:
                        rv[k].int_value = v
                    elif t is str:
                        rv[k].string_value = v
                    elif t is bool:
                        rv[k].bool_value = v
                    elif v is None:
                        rv[k].null_value = True
                    elif t is Value:
                        rv[k].CopyFrom(v)
                    else:  # a float that normalize() kept out of the scalars
                        rv[k].double_value = float(v)
            if step is not None:
                r.step = step
            if commit is not None:
                r.commit = commit
            r.timestamp = ts
        batch.keys.extend(keys)
        return batch

    def _ensure_stream(self) -> None:
        """Opens the stream, or after a break, handles the error and reopens it."""
        with self._cond:
            broken = self._broken
            self._broken = None
        if broken is None and self._stream is not None:
            return
        recover = False  # the first stream: the connection is fresh
        if broken is not None:
            stream, error = broken
            stream.cancel()
            self._stream = None
            self._back_off(error)
            recover = self._handle_break(error)
        self._open(recover)

    def _back_off(self, error: Optional[grpc.RpcError]) -> None:
        """Spaces out reconnects that make no progress, and gives up after
        reconnect_timeout without an acknowledgement."""
        now = time.monotonic()
        with self._cond:
            if self._failing_since is None:
                self._failing_since = now
                self._failures = 0
            self._failures += 1
            failing_for = now - self._failing_since
            failures = self._failures
        what = "the stream ended" if error is None else f"{error.code().name}: {error.details()}"
        if failing_for > self._settings.reconnect_timeout:
            raise _GiveUp(f"the log stream kept failing for {failing_for:.0f} s ({what})")
        if failures > 1:
            time.sleep(min(2.0, 0.05 * 2 ** (failures - 2)))

    def _handle_break(self, error: Optional[grpc.RpcError]) -> bool:
        """Decides what a broken stream means (the contract's action for its
        status); True when the sidecar must be re-reached (and the run
        re-attached) before resending."""
        if error is None:
            return True  # the sidecar ended the stream without an error: reconnect
        code = error.code()
        details = error.details() or ""
        action = classify(code, Kind.STREAM)
        if action is Action.RETRY:
            return True
        if action is Action.RETRY_LIMITED:
            with self._cond:
                self._limited += 1
                failures = self._limited
            if failures >= RETRY_LIMITED_ATTEMPTS:
                raise _GiveUp(f"the log stream failed {failures} times in a row ({code.name}: {details})")
            return True
        if action in (Action.REINIT, Action.ENDED):
            # Ask the sidecar about the run now: a run it does not know is Init-ed
            # again (and the batches resent); one it ended raises RunEndedError.
            try:
                self._link.attach(force=True)
            except RunEndedError as e:
                raise _GiveUp(str(e).replace("runcore: ", "", 1)) from e
            except grpc.RpcError:
                return True  # the sidecar cannot be asked: reconnect first
            if action is Action.REINIT:
                return False
            raise _GiveUp(f"the sidecar refused the log stream: {code.name}: {details}")
        if action is Action.DROP_BATCH:
            with self._cond:
                if not self._unacked:
                    return False
                seq, (_, n) = self._unacked.popitem(last=False)
                self.rows_lost += n
                self._cond.notify_all()
            self._link.warn(
                f"rejected-{code.name}",
                f"runcore: the sidecar refused a batch of {n} logged rows (seq {seq}) and they were "
                f"not recorded: {code.name}: {details}",
            )
            return False
        raise _GiveUp(f"the sidecar refused the log stream: {code.name}: {details}")

    def _open(self, recover: bool) -> None:
        deadline = time.monotonic() + self._settings.reconnect_timeout
        sidecar = self._sidecar
        while True:
            gen = sidecar.generation
            try:
                if recover:
                    sidecar.recover(gen, max(0.1, deadline - time.monotonic()))
                self._link.attach(force=False)
                stream = _Stream(self, sidecar.stub, sidecar.metadata, sidecar.generation)
            except CommError as e:
                raise _GiveUp(f"the sidecar at {sidecar.describe()} could not be reached again: {e}") from e
            except RunEndedError as e:
                raise _GiveUp(str(e).replace("runcore: ", "", 1)) from e
            except grpc.RpcError as e:
                if classify(e.code(), Kind.UNARY) is Action.RETRY and time.monotonic() < deadline:
                    recover = True
                    continue
                raise _GiveUp(f"re-attaching the run failed: {e.code().name}: {e.details()}") from e
            break
        with self._cond:
            pending = [b for b, _ in self._unacked.values()]
            self._stream = stream
        for b in pending:
            stream.send(b)
        stream.start()
        if pending and recover:
            self.batches_resent += len(pending)

    def _drain(self) -> None:
        """At close: waits for every batch's ack, then half-closes the stream."""
        while True:
            self._ensure_stream()
            with self._cond:
                if not self._unacked and self._broken is None:
                    break
                self._cond.wait(0.05)
                self._check_progress()
        stream = self._stream
        if stream is not None:
            stream.close()
            stream.reader.join(5.0)
            self._stream = None

    def _check_progress(self) -> None:
        """Gives up when batches wait for acks that do not come (a hung sidecar)
        for reconnect_timeout. Called with _cond held."""
        if not self._unacked:
            self._waiting_since = None
            return
        now = time.monotonic()
        mark = (self.batches_acked, self._stream)
        if self._waiting_since is None or self._waiting_mark != mark:
            self._waiting_since, self._waiting_mark = now, mark
        elif now - self._waiting_since > self._settings.reconnect_timeout:
            raise _GiveUp(
                f"the sidecar acknowledged nothing for {now - self._waiting_since:.0f} s "
                f"({len(self._unacked)} batches waiting)"
            )

    def _maybe_heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._last_heartbeat >= self._heartbeat_every:
            self._last_heartbeat = now
            self._link.heartbeat()

    # -- ack thread ---------------------------------------------------------------

    def _on_ack(self, ack: pb.LogAck) -> None:
        # Report drops before the batch is retired: a flush that returns has seen them.
        for d in ack.dropped:
            self._link.on_dropped(d)
        with self._cond:
            entry = self._unacked.pop(ack.seq, None)
            if entry is not None:
                self.rows_acked += entry[1]
                self.batches_acked += 1
            self.last_ack_time = time.time()
            self._failing_since = None
            self._limited = 0
            self._cond.notify_all()

    def _on_stream_end(self, stream: _Stream, error: Optional[grpc.RpcError]) -> None:
        with self._cond:
            if stream is not self._stream:
                return  # an old stream we replaced or cancelled
            if error is None and not self._unacked and self._closing:
                return  # the normal end after close()
            self._broken = (stream, error)
            self._cond.notify_all()
        self._wake.set()


class _GiveUp(Exception):
    pass
