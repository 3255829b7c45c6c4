"""``Run``: W&B's ``wandb.Run`` over the runcore sidecar (its ``config`` and
``summary`` objects are in ``_config``).

``log()`` is the hot path, and all of it runs in the native core
(``runcore._native.Sender``): it checks and converts the values in one pass, mirrors
the sidecar's step rules to keep ``run.step`` current, and queues one row, which
Rust threads batch and stream to the sidecar (acks, resends, reconnects,
heartbeats). The sender knows its run only through a :class:`_Link`. Every other
method is one unary RPC through the native channel. Calls that
change what later rows mean (define_metric, summary updates, mark_preempting,
finish) first wait until the rows logged before them are acknowledged, so the
sidecar applies everything in the order the program did it.

A failed call is handled as the client contract says (``_run_calls``, by
``_contract.classify``): the
sidecar unreachable -> reconnect and retry; the run unknown to it -> Init it again;
the run ended by it (crashed, killed, ...) -> ``RunEndedError`` and a warning,
never a silent resume. A stop request (``runcore runs stop``) interrupts the main
thread (``Settings.on_stop``).
"""

from __future__ import annotations

import enum
import os
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Optional, Union

from . import _enums
from ._config import Config, Summary, _checked_keys
from ._errors import CommError, Error, RunEndedError, UsageError
from ._native import Channel, Sender
from ._run_artifacts import ArtifactMethods
from ._run_calls import _OPEN_STATES
from ._settings import Settings

if TYPE_CHECKING:
    import datetime
    import pathlib

    from ._results import AlertResult, Metric, RunStatus
    from ._sidecar import Sidecar

_POLICIES = ("live", "now", "end")
MAX_ALERT_TITLE = 64
#: A single non-scalar value larger than this is refused by log() (the sidecar
#: accepts messages up to 16 MiB by default).
MAX_VALUE_BYTES = 8 << 20


class AlertLevel(str, enum.Enum):
    """Alert levels, as W&B's ``wandb.AlertLevel``."""

    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


state_name = _enums.state_name


class Run(ArtifactMethods):
    """A run being logged to the sidecar. Made by ``runcore.init()``."""

    def __init__(
        self,
        sidecar: "Sidecar",
        resp: Any,
        settings: Settings,
        init_request: dict[str, Any],
        config: dict[str, Any],
        allow_val_change: bool,
        on_finish: Any,
    ) -> None:
        info = resp.run
        self._sidecar = sidecar
        self._info = info
        self.settings = settings
        self._init_request = init_request
        self._on_finish = on_finish
        self.id: str = info.id
        self._name: str = info.name
        self.entity: str = info.entity
        self.project: str = info.project
        self._group: str = info.group
        self._job_type: str = info.job_type
        self._tags: tuple[str, ...] = tuple(info.tags)
        self._notes: str = info.notes
        self.path: str = info.path
        self.dir: str = info.dir
        self.start_time: float = info.start_time
        self.starting_step: int = int(resp.starting_step)
        self.resumed: bool = bool(resp.resumed)
        #: This process as a writer of the run (its batch seqs are its own).
        self._writer_id: str = resp.writer_id or init_request["writer_id"]
        self.offline: bool = settings.mode in ("offline", "dryrun")
        self.disabled = False
        self.sweep_id: Optional[str] = None
        self.config = Config(self, dict(config), allow_val_change)
        self.summary = Summary(self)
        self._attach_lock = threading.Lock()
        self._attached_gen = sidecar.generation
        self._warned: set[str] = set()
        self._dropped = 0
        self._finished = False
        self._final_state = "running"
        self._final_summary: Optional[dict[str, Any]] = None
        self._final_info: Any = None
        self._should_stop = False
        #: How the sidecar ended the run without this client finishing it.
        self._ended: Optional[str] = None
        self._sender = _start_sender(self, float(info.client_timeout or 0.0), int(resp.last_seq) + 1)
        # While the run is open, run.log is the native log itself: the instance
        # attribute shadows the method below, and saves the caller a Python frame
        # per row (log() is the hot path). finish() removes it.
        self.__dict__["log"] = self._sender.log

    # -- attributes -----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._edit(name=str(value))
        self._name = str(value)

    @property
    def notes(self) -> str:
        return self._notes

    @notes.setter
    def notes(self, value: str) -> None:
        self._edit(notes=str(value))
        self._notes = str(value)

    @property
    def tags(self) -> tuple[str, ...]:
        return self._tags

    @tags.setter
    def tags(self, value: Any) -> None:
        tags = tuple(str(t) for t in ([value] if isinstance(value, str) else value))
        self._edit(tags=tags)
        self._tags = tags

    @property
    def group(self) -> str:
        return self._group

    @property
    def job_type(self) -> str:
        return self._job_type

    def _edit(self, name: Optional[str] = None, notes: Optional[str] = None, tags: Optional[tuple[str, ...]] = None) -> None:
        """Sends a change of name, notes or tags to the sidecar (UpdateRun: a
        record in the run's log, forwarded to its backend); works after finish too."""
        req: dict[str, Any] = {"run_id": self.id, "name": name, "notes": notes}
        if tags is not None:
            req["tags"] = {"tags": list(tags)}
        resp = self._call("run update", "UpdateRun", req)
        self._info = resp.run

    @property
    def step(self) -> int:
        """The step the next committed row gets."""
        step: int = self._sender.step
        return step

    @property
    def url(self) -> Optional[str]:
        """The run's directory in the local store, as a file:// URL."""
        return self.get_url()

    @property
    def project_url(self) -> Optional[str]:
        return self.get_project_url()

    @property
    def sweep_url(self) -> Optional[str]:
        return self.get_sweep_url()

    def _run_dir(self) -> Optional[pathlib.Path]:
        if not self.dir:
            return None
        import pathlib  # here, not at import: only the URLs need it

        return pathlib.Path(self.dir).parent

    def _run_dir_shown(self) -> Optional[str]:
        """``str(_run_dir())`` for init's and finish's messages, without importing
        pathlib (the same text unless ``dir`` had a ``..`` in it, which the
        sidecar's absolute run dirs do not)."""
        if not self.dir:
            return None
        return os.path.dirname(os.path.normpath(self.dir))

    def get_url(self) -> Optional[str]:
        d = self._run_dir()
        return d.as_uri() if d is not None and d.is_absolute() else None

    def get_project_url(self) -> Optional[str]:
        d = self._run_dir()
        return d.parent.as_uri() if d is not None and d.is_absolute() else None

    def get_sweep_url(self) -> Optional[str]:
        return None

    def __repr__(self) -> str:
        state = self._final_state if self._finished else (self._ended or "running")
        return f"<runcore.Run {self.path} name={self._name!r} state={state}>"

    # -- log --------------------------------------------------------------------------

    def log(self, data: Mapping[str, Any], step: Optional[int] = None, commit: Optional[bool] = None) -> None:
        """Logs a row, as W&B's ``run.log``: without ``step`` the row is committed
        at the current step (unless ``commit=False``); with ``step``, a larger step
        commits the pending row and jumps, the same step merges, a smaller one is
        dropped with a warning. Returns at once; the native core sends it."""
        # An open run's ``log`` is its native sender's (see __init__): this method
        # runs once the run has finished, or when called through the class.
        if self._finished:
            raise UsageError(f"runcore: run {self.id} has finished; call runcore.init() to start another")
        self._sender.log(data, step, commit)

    def _log_dropped(self, step: int, current_step: int) -> None:
        """A row log() dropped (its step smaller than the run's), reported by the
        native log on the caller's thread: the warning points at the caller's line
        (frames: this, _Link.log_dropped, the caller)."""
        self._dropped += 1
        self._warn_once(
            "dropped-smaller-step",
            f"runcore: run.log(step={step}) is smaller than the run's current step "
            f"{current_step}; as in W&B, such rows are dropped. Log with a step >= "
            f"{current_step} or without one. (Warned once; run.status().rows_dropped counts them.)",
            stacklevel=4,
        )

    def _on_dropped(self, step: int, current_step: int, reason: str) -> None:
        """A row the sidecar dropped (the client's mirror did not foresee it)."""
        self._dropped += 1
        kind = "dropped-smaller-step" if step < current_step else "dropped-row"
        self._warn_once(kind, f"runcore: the sidecar dropped a logged row: {reason}")

    # -- RPCs (the calls themselves: _run_calls.CallMethods) ---------------------------

    def _ensure_open(self, what: str) -> None:
        if self._finished:
            raise UsageError(f"runcore: {what}: run {self.id} has finished")
        if self._ended is not None:
            raise self._ended_error()

    def _flush(self) -> None:
        """Waits until every row logged so far is acknowledged by the sidecar."""
        self._sender.flush()

    def _summary_now(self) -> dict[str, Any]:
        if self._finished:
            if self._final_summary is not None:
                try:
                    summary: dict[str, Any] = self._call("summary", "GetRun", {"run_id": self.id}).summary
                    return summary
                except (CommError, Error):
                    return dict(self._final_summary)
            return {}
        self._flush()
        now: dict[str, Any] = self._call("summary", "GetRun", {"run_id": self.id}).summary
        return now

    def _summary_change(self, values: dict[str, Any], remove: list[str]) -> None:
        self._ensure_open("summary update")
        req = {"run_id": self.id, "summary": _checked_keys(values, "summary"), "remove": remove}
        self._flush()
        self._call("summary update", "UpdateSummary", req)

    def define_metric(
        self,
        name: str,
        step_metric: Union[str, Metric, None] = None,
        step_sync: Optional[bool] = None,
        hidden: Optional[bool] = None,
        summary: Optional[str] = None,
        goal: Optional[str] = None,
        overwrite: Optional[bool] = None,
        **kwargs: Any,
    ) -> Metric:
        """Customizes a metric, as W&B's ``run.define_metric``: its x axis
        (``step_metric``, a glob name such as ``"val/*"`` covers many), its summary
        (``"min"``, ``"max"``, ``"mean"``, ``"first"``, ``"last"``, ``"best"`` with
        ``goal``, ``"none"``, comma-separated), and whether it is hidden."""
        self._ensure_open("define_metric")
        if not isinstance(name, str) or not name.strip():
            raise ValueError("define_metric: name must be a non-empty str")
        from ._results import Metric

        if isinstance(step_metric, Metric):
            step_metric = step_metric.name
        if kwargs:
            self._warn_once("define-metric-kwargs", f"runcore: define_metric ignores {sorted(kwargs)}")
        req: dict[str, Any] = {
            "run_id": self.id,
            "name": name,
            "step_metric": step_metric or "",
            "goal": str(goal) if goal else "",
            "step_sync": None if step_sync is None else bool(step_sync),
            "hidden": None if hidden is None else bool(hidden),
            "overwrite": None if overwrite is None else bool(overwrite),
        }
        if summary:
            parts = [p.strip().lower() for p in str(summary).split(",") if p.strip()]
            # W&B's deprecated "copy" is its default: the last value.
            req["summary"] = ",".join(p for p in parts if p != "copy")
        self._flush()
        m = self._call("define_metric", "DefineMetric", req).metric
        return Metric(
            name=m.name,
            step_metric=m.step_metric or None,
            step_sync=m.step_sync,
            hidden=m.hidden,
            summary=tuple(m.summary),
            goal=m.goal or None,
        )

    def alert(
        self,
        title: str,
        text: str,
        level: Union[str, AlertLevel, None] = None,
        wait_duration: Union[int, float, datetime.timedelta, None] = None,
    ) -> AlertResult:
        """Sends an alert, as W&B's ``run.alert``. The sidecar throttles an alert
        whose title was sent within ``wait_duration`` seconds (default 60)."""
        self._ensure_open("alert")
        title = str(title)
        if not 1 <= len(title) <= MAX_ALERT_TITLE:
            raise ValueError(f"alert title must be 1..{MAX_ALERT_TITLE} characters, got {len(title)}")
        if isinstance(level, AlertLevel):
            level_name = level.value
        elif level is None:
            level_name = "INFO"
        else:
            level_name = str(level).upper()
            if level_name.startswith("ALERTLEVEL."):
                level_name = level_name[len("ALERTLEVEL.") :]
            if level_name == "WARNING":
                level_name = "WARN"
            if level_name not in ("INFO", "WARN", "ERROR"):
                raise ValueError(f"alert level {level!r} is not one of INFO, WARN, ERROR")
        req: dict[str, Any] = {"run_id": self.id, "title": title, "text": str(text), "level": level_name}
        if wait_duration is not None:
            if isinstance(wait_duration, (int, float)) and not isinstance(wait_duration, bool):
                seconds = float(wait_duration)
            else:
                import datetime  # here, not at import: only a timedelta needs it

                if not isinstance(wait_duration, datetime.timedelta):
                    raise ValueError(f"alert wait_duration must be seconds or a timedelta, not {wait_duration!r}")
                seconds = wait_duration.total_seconds()
            if not seconds >= 0:
                raise ValueError(f"alert wait_duration must be >= 0, got {seconds}")
            req["wait_duration"] = seconds
        resp = self._call("alert", "Alert", req)
        from ._results import AlertResult

        return AlertResult(sent=resp.sent, throttled=resp.throttled, throttled_until=resp.throttled_until)

    def save(
        self,
        glob_str: Union[str, "os.PathLike[str]"],
        base_path: Union[str, "os.PathLike[str]", None] = None,
        policy: str = "live",
    ) -> list[str]:
        """Saves files into the run, as W&B's ``run.save``: the glob expands now
        (relative to the current directory); with ``base_path`` the layout keeps the
        path below it, else a relative glob keeps its path and an absolute one its
        last directory. ``policy``: ``live`` (copied again when the file changes and
        at the end), ``now`` (once), ``end`` (at finish). Returns the paths of the
        copies under ``run.dir``."""
        self._ensure_open("save")
        if policy not in _POLICIES:
            raise ValueError(f'save: policy must be "live", "now" or "end", not {policy!r}')
        glob_s = os.fspath(glob_str)
        if not isinstance(glob_s, str) or not glob_s:
            raise ValueError("save: glob_str must be a non-empty path or pattern")
        req = {
            "run_id": self.id,
            "glob": glob_s,
            "base_path": os.fspath(base_path) if base_path is not None else "",
            "policy": policy,
            "working_dir": os.getcwd(),
        }
        resp = self._call("save", "SaveFiles", req)
        return [os.path.join(self.dir, name) for name in resp.saved]

    def mark_preempting(self) -> None:
        """Marks the run as preempting (W&B's ``run.mark_preempting``): if the
        process then disappears, the run ends ``preempted`` rather than crashed."""
        self._ensure_open("mark_preempting")
        self._flush()
        self._call("mark_preempting", "MarkPreempting", {"run_id": self.id})

    def status(self) -> RunStatus:
        """The run's state as the sidecar has it, and the client's delivery counts."""
        s = self._sender.stats()
        state = self._final_state if self._finished else (self._ended or self._final_state)
        rows = 0
        try:
            req = {"run_id": self.id}
            resp = self._call("status", "GetRun", req, timeout=min(10.0, self.settings.rpc_timeout), retry=False)
            state = state_name(resp.run.state)
            rows = int(resp.run.history_rows)
        except Error:
            if self._final_info is not None:
                rows = int(self._final_info.history_rows)
        from ._results import RunStatus

        return RunStatus(
            state=state,
            step=self._sender.step,
            history_rows=rows,
            rows_logged=s["rows_queued"],
            rows_acked=s["rows_acked"],
            rows_pending=self._sender.pending(),
            rows_lost=s["rows_lost"],
            rows_dropped=self._dropped,
            batches_sent=s["batches_sent"],
            batches_resent=s["batches_resent"],
            sync_time=s["last_ack_time"],
            should_stop=self._should_stop,
        )

    def finish(self, exit_code: Optional[int] = None, quiet: Optional[bool] = None) -> None:
        """Ends the run (W&B's ``run.finish``): sends every logged row, then marks it
        finished (exit code 0) or failed (any other). Calling it again does nothing."""
        if self._finished:
            return
        code = 0 if exit_code is None else int(exit_code)
        self._finished = True
        self.__dict__.pop("log", None)  # run.log is the method again, which refuses
        self._sender.finish_steps()  # the pending row is committed (run.step follows)
        try:
            self._sender.close()
            stats = self._sender.stats()
            if stats["dead"] is not None and stats["rows_lost"]:
                print(
                    f"runcore: run {self.id}: {stats['rows_lost']} rows were not delivered ({stats['dead']})",
                    file=sys.stderr,
                )
            try:
                # Finish of a run the sidecar ended answers with how it ended.
                resp = self._call(
                    "finish", "Finish", {"run_id": self.id, "exit_code": code, "writer_id": self._writer_id}
                )
            except RunEndedError as e:
                # Found ended after a reconnect: reported by _mark_ended already.
                self._final_state = e.state
                return
            except Error as e:
                self._final_state = "unknown"
                print(f"runcore: run {self.id} could not be finished: {e}", file=sys.stderr)
                raise
            self._final_info = resp.run
            self._final_state = state_name(resp.run.state)
            self._final_summary = dict(resp.summary)
            alone = resp.writer is not None and resp.run.state in _OPEN_STATES
            if alone:
                # A shared run's writer that does not end the run finished alone.
                self._final_state = state_name(resp.writer.state)
            elif resp.run.state not in (_enums.FINISHED, _enums.FAILED) or self._ended is not None:
                # The sidecar had ended it (e.g. this client stalled past its client
                # timeout): report how, and do not resume it.
                self._mark_ended(self._final_state)
            if not (quiet or self.settings.quiet or self.settings.silent):
                print(
                    f"runcore: run {self._name} ({self.id}) {self._final_state}; "
                    f"{resp.run.history_rows} history rows in {self._run_dir_shown()}",
                    file=sys.stderr,
                )
        finally:
            self._on_finish(self)

    def join(self, exit_code: Optional[int] = None) -> None:
        """Deprecated alias of ``finish``, as in W&B."""
        self.finish(exit_code)

    def watch(self, *args: Any, **kwargs: Any) -> None:
        """W&B's model watching needs its own backend; here it does nothing."""
        self._warn_once("watch", "runcore: run.watch() is not supported and does nothing")

    def unwatch(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.finish(exit_code=0 if exc_type is None else 1)


def _start_sender(run: Run, client_timeout: float, first_seq: int) -> Sender:
    """The native sender of ``run``'s rows, which runs from now until finish."""
    s = run.settings
    # Any RPC is a sign of life; an idle run heartbeats well inside its timeout.
    every = float(s.heartbeat_interval)
    if client_timeout > 0:
        every = min(every, client_timeout / 3)
    return Sender(
        run._sidecar.channel,
        run.id,
        run._writer_id,
        first_seq,
        run.starting_step,
        _Link(run),
        batch_interval=float(s.batch_interval),
        batch_rows=int(s.batch_rows),
        queue_size=int(s.queue_size),
        max_in_flight=int(s.max_in_flight),
        heartbeat_every=every,
        reconnect_timeout=float(s.reconnect_timeout),
        max_value_bytes=MAX_VALUE_BYTES,
    )


class _Link:
    """What the native sender may do with its run; called on its threads, rarely
    (a reconnect, a dropped row, a warning, a stop request); ``log_dropped`` on
    the thread that called ``run.log``."""

    __slots__ = ("_run", "_generation")

    def __init__(self, run: Run) -> None:
        self._run = run
        #: The sidecar generation of the channel the sender uses now.
        self._generation = run._sidecar.generation

    def attach(self, force: bool) -> None:
        """Raises RunEndedError for a run the sidecar ended, RpcError when it
        cannot be asked."""
        self._run._attach(force)

    def recover(self, timeout: float) -> Channel:
        """Waits for the sidecar (restarting a spawned one) unless another caller
        did since the sender got its channel; the channel to use from now on.
        Raises CommError when it does not come back in time."""
        sidecar = self._run._sidecar
        sidecar.recover(self._generation, timeout)
        self._generation = sidecar.generation
        return sidecar.channel

    def on_dropped(self, step: int, current_step: int, reason: str) -> None:
        self._run._on_dropped(step, current_step, reason)

    def log_dropped(self, step: int, current_step: int) -> None:
        self._run._log_dropped(step, current_step)

    def warn(self, kind: str, message: str) -> None:
        self._run._warn_once(kind, message)

    def should_stop(self) -> None:
        self._run._stop_requested()
