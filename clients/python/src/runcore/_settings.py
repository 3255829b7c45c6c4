"""``runcore.Settings``: options of a run and of the client that sends it."""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional

# Environment variables the client reads (the sidecar reads its own RUNCORE_* ones).
ENV_ADDRESS = "RUNCORE_ADDRESS"
#: The bearer token of a sidecar started with --auth-token (sent as `authorization`).
ENV_AUTH_TOKEN = "RUNCORE_AUTH_TOKEN"
ENV_BIN = "RUNCORE_BIN"
ENV_DATA_DIR = "RUNCORE_DATA_DIR"
ENV_PROJECT = "RUNCORE_PROJECT"
ENV_ENTITY = "RUNCORE_ENTITY"
ENV_RUN_ID = "RUNCORE_RUN_ID"
ENV_RUN_GROUP = "RUNCORE_RUN_GROUP"
ENV_JOB_TYPE = "RUNCORE_JOB_TYPE"
ENV_MODE = "RUNCORE_MODE"
ENV_SILENT = "RUNCORE_SILENT"
#: What a stop request (``runcore runs stop``) does: "interrupt" (default) or "warn".
ENV_ON_STOP = "RUNCORE_ON_STOP"
#: Values of ``Settings.on_stop``.
ON_STOP = ("interrupt", "warn")


class Settings:
    """Options of a run. Unknown W&B settings are accepted and kept in ``extra``.

    ``runcore.Settings(address="unix:///tmp/rc.sock")`` is the same as setting
    ``RUNCORE_ADDRESS``; an explicit setting wins over the environment.

    Immutable, compared and shown field by field, as a frozen dataclass would be;
    it is a plain class because ``dataclasses`` (with ``inspect``) costs more to
    import than the rest of ``import runcore`` (issue 20). The fields and their
    defaults are the annotated class attributes below (``_FIELDS``).
    """

    #: Sidecar address (``unix:///path`` or ``tcp://127.0.0.1:PORT``); else
    #: $RUNCORE_ADDRESS; else a private sidecar is spawned.
    address: Optional[str] = None
    #: The ``runcore`` binary to spawn; else $RUNCORE_BIN; else ``runcore`` on PATH.
    binary: Optional[str] = None
    #: Data dir of a spawned sidecar; else $RUNCORE_DATA_DIR; else
    #: ``<init dir or cwd>/runcore-data``.
    data_dir: Optional[str] = None
    #: W&B's mode: "online" and "offline" both log to the sidecar (offline only sets
    #: ``Run.offline``); "disabled" is not supported.
    mode: str = "online"
    #: No "runcore:" lines on stderr.
    quiet: bool = False
    silent: bool = False
    #: Seconds to wait for a sidecar to start and answer its health check.
    init_timeout: float = 30.0
    #: Most seconds one call to the sidecar (other than the log stream) may take.
    rpc_timeout: float = 300.0
    #: Seconds the client keeps trying to reach a vanished sidecar before it gives
    #: up on the rows it holds (they are then reported lost, loudly).
    reconnect_timeout: float = 120.0
    #: Most seconds a logged row waits in the client before it is sent.
    batch_interval: float = 0.02
    #: Most rows per LogStream message.
    batch_rows: int = 512
    #: Rows ``log()`` may queue before it blocks (it never drops them).
    queue_size: int = 10_000
    #: Batches sent but not acknowledged before the sender waits.
    max_in_flight: int = 32
    #: Seconds between heartbeats to the sidecar while the run is open.
    heartbeat_interval: float = 15.0
    #: Seconds without a sign of life from this client after which the sidecar
    #: marks the run crashed; the sidecar's --client-timeout when None. The client
    #: sends a heartbeat every ``heartbeat_interval`` seconds while the run is open.
    client_timeout: Optional[float] = None
    #: Seconds between system-metric samples (W&B: x_stats_sampling_interval);
    #: the sidecar's default (15 s) when None.
    stats_sampling_interval: Optional[float] = None
    #: No system metrics for this run (W&B: x_disable_stats).
    disable_stats: bool = False
    #: What the client does when an operator asks the run to stop (``runcore runs
    #: stop ID``; the heartbeat reply says should_stop): "interrupt" raises
    #: KeyboardInterrupt in the main thread, as W&B does, after a warning saying
    #: why; "warn" only warns (``run.status().should_stop`` turns True). When
    #: None: $RUNCORE_ON_STOP, else "interrupt".
    on_stop: Optional[str] = None
    #: W&B's shared mode (``mode="shared"``): this process's label, shown on its
    #: system metrics (``system.cpu/l:<label>``); e.g. "rank-3".
    x_label: Optional[str] = None
    #: Shared mode: whether this process's finish (or death) ends the run for every
    #: writer (W&B's x_primary).
    x_primary: bool = True
    #: Shared mode: whether this process's finish sets the run's final state
    #: (W&B's x_update_finish_state). A writer with both False ends only itself.
    x_update_finish_state: bool = True
    #: Everything else passed (W&B settings runcore does not use).
    extra: Mapping[str, Any]

    __hash__ = None  # type: ignore[assignment]  # equal settings compare equal; extra is a dict

    @classmethod
    def make(cls, value: "Settings | Mapping[str, Any] | None" = None, **overrides: Any) -> "Settings":
        """Settings from a Settings, a dict of settings, or None, plus overrides
        (those that are not None)."""
        if value is None:
            merged: dict[str, Any] = {}
        elif isinstance(value, Settings):
            merged = {name: getattr(value, name) for name in _FIELDS}
            merged.update(value.extra)
        elif isinstance(value, Mapping):
            merged = dict(value)
        else:
            raise TypeError(f"settings must be a runcore.Settings or a dict, not {type(value).__name__}")
        merged.update({k: v for k, v in overrides.items() if v is not None})
        if os.environ.get(ENV_SILENT, "").lower() in ("1", "true", "yes"):
            merged.setdefault("silent", True)
        if merged.get("on_stop") is None and os.environ.get(ENV_ON_STOP):
            merged["on_stop"] = os.environ[ENV_ON_STOP].strip().lower()
        return cls(**merged)

    def __init__(self, **kwargs: Any) -> None:  # noqa: D107 - accepts W&B's many settings
        extra = dict(kwargs.pop("extra", None) or {})
        # W&B's names for the system-metric settings.
        for wandb_name, name in (("x_stats_sampling_interval", "stats_sampling_interval"), ("x_disable_stats", "disable_stats")):
            if wandb_name in kwargs and name not in kwargs:
                kwargs[name] = kwargs[wandb_name]
        for k in list(kwargs):
            if k not in _FIELDS:
                extra[k] = kwargs.pop(k)
        for name in _FIELDS:
            object.__setattr__(self, name, kwargs.get(name, getattr(Settings, name)))
        object.__setattr__(self, "extra", extra)
        self._check()

    def _check(self) -> None:
        if self.mode not in ("online", "offline", "disabled", "run", "dryrun", "shared"):
            raise ValueError(f"settings mode {self.mode!r} is not one of online, offline, disabled")
        if self.x_label is not None and not isinstance(self.x_label, str):
            raise ValueError(f"settings x_label must be a str, got {self.x_label!r}")
        for name in ("x_primary", "x_update_finish_state"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"settings {name} must be True or False, got {getattr(self, name)!r}")
        if self.on_stop is not None and self.on_stop not in ON_STOP:
            raise ValueError(f"settings on_stop {self.on_stop!r} is not one of {', '.join(ON_STOP)}")
        for name in ("init_timeout", "rpc_timeout", "reconnect_timeout", "batch_interval", "heartbeat_interval"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or v <= 0:
                raise ValueError(f"settings {name} must be a number of seconds > 0, got {v!r}")
        for name in ("client_timeout", "stats_sampling_interval"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0):
                raise ValueError(f"settings {name} must be a number of seconds > 0, got {v!r}")
        for name in ("batch_rows", "queue_size", "max_in_flight"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"settings {name} must be an int >= 1, got {v!r}")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _FIELDS) + (self.extra,)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settings) or other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in (*_FIELDS, "extra"))
        return f"{type(self).__qualname__}({fields})"

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: runcore.Settings is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: runcore.Settings is immutable")

    def __getattr__(self, name: str) -> Any:
        # W&B code reads settings such as run.settings.x_label: unknown ones are None.
        if name.startswith("__"):
            raise AttributeError(name)
        extra = object.__getattribute__(self, "extra")
        return extra.get(name)


#: The names of Settings' fields other than ``extra``, in order; each one's default
#: is the class attribute of that name.
_FIELDS: tuple[str, ...] = tuple(name for name in Settings.__annotations__ if name != "extra")
