"""``runcore.init`` and the module-level functions acting on ``runcore.run``, and
the exit hooks that finish a run the program left open."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence, Union

from . import _active_run, _sidecar, _values
from ._errors import Error, UsageError
from ._contract import Kind
from ._rpc import RpcError, rpc_error, should_retry
from ._config import _as_dict, _normalized
from ._run import AlertLevel, Run
from ._settings import (
    ENV_ENTITY,
    ENV_JOB_TYPE,
    ENV_MODE,
    ENV_PROJECT,
    ENV_RUN_GROUP,
    ENV_RUN_ID,
    Settings,
)

if TYPE_CHECKING:
    from ._artifacts import Artifact
    from ._results import AlertResult, Metric

_lock = threading.RLock()
_active: Optional[Run] = None
_hooks_installed = False
#: Exit code seen by the hooks: sys.exit's argument, 1 after an uncaught exception.
_exit_code: Optional[int] = None

_RESUME = {
    None: "RESUME_NEVER",
    False: "RESUME_NEVER",
    "never": "RESUME_NEVER",
    True: "RESUME_ALLOW",
    "allow": "RESUME_ALLOW",
    "auto": "RESUME_ALLOW",
    "must": "RESUME_MUST",
}


def active() -> Optional[Run]:
    return _active


_active_run.get = active


def _client_info() -> dict[str, Any]:
    boot_id = ""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot_id = f.read().strip()
    except OSError:
        pass
    return {"pid": os.getpid(), "hostname": _hostname(), "boot_id": boot_id}


def _hostname() -> str:
    """The host's name, as socket.gethostname() gives it; from os.uname() where
    there is one, which is the same name without importing socket (issue 20)."""
    uname = getattr(os, "uname", None)
    if uname is not None:
        return str(uname().nodename)
    import socket

    return socket.gethostname()


def init(
    project: Optional[str] = None,
    entity: Optional[str] = None,
    name: Optional[str] = None,
    id: Optional[str] = None,
    group: Optional[str] = None,
    job_type: Optional[str] = None,
    tags: Optional[Sequence[str]] = None,
    notes: Optional[str] = None,
    config: Any = None,
    resume: Union[bool, str, None] = None,
    dir: Union[str, "os.PathLike[str]", None] = None,
    settings: Union[Settings, Mapping[str, Any], None] = None,
    *,
    reinit: Union[bool, str, None] = None,
    mode: Optional[str] = None,
    config_exclude_keys: Optional[Sequence[str]] = None,
    config_include_keys: Optional[Sequence[str]] = None,
    allow_val_change: Optional[bool] = None,
    save_code: Optional[bool] = None,
    tensorboard: Optional[bool] = None,
    sync_tensorboard: Optional[bool] = None,
    monitor_gym: Optional[bool] = None,
    magic: Any = None,
    anonymous: Optional[str] = None,
    force: Optional[bool] = None,
    resume_from: Optional[str] = None,
    fork_from: Optional[str] = None,
) -> Run:
    """Starts a run (or resumes one), as W&B's ``wandb.init``, and makes it
    ``runcore.run``. Arguments runcore has no use for (save_code, tensorboard,
    magic...) are accepted and ignored."""
    global _active
    s = Settings.make(settings, mode=mode or os.environ.get(ENV_MODE) or None)
    if s.mode == "disabled":
        raise UsageError('runcore: mode="disabled" is not supported; leave out the runcore calls instead')
    if resume_from or fork_from:
        raise UsageError("runcore: resume_from and fork_from are not supported")
    if resume not in _RESUME:
        raise ValueError(f'resume must be one of "allow", "must", "never", "auto", True, False or None, not {resume!r}')
    with _lock:
        if _active is not None:
            if reinit in (True, "finish_previous"):
                _active.finish()
            elif reinit == "create_new":
                raise UsageError("runcore: only one run per process can be active; finish it first")
            else:
                return _active  # W&B's default in scripts: the run already started
        cfg = _as_dict(config, "config")
        if config_include_keys:
            cfg = {k: v for k, v in cfg.items() if k in set(config_include_keys)}
        if config_exclude_keys:
            cfg = {k: v for k, v in cfg.items() if k not in set(config_exclude_keys)}
        normalized = _normalized(cfg, "config")
        base_dir = os.fspath(dir) if dir is not None else None
        if isinstance(tags, str):
            tags = [tags]
        req: dict[str, Any] = {
            "id": id or os.environ.get(ENV_RUN_ID, ""),
            "name": name or "",
            "entity": entity or os.environ.get(ENV_ENTITY, ""),
            "project": project or os.environ.get(ENV_PROJECT, ""),
            "group": group or os.environ.get(ENV_RUN_GROUP, ""),
            "job_type": job_type or os.environ.get(ENV_JOB_TYPE, ""),
            "tags": [str(t) for t in (tags or ())],
            "notes": notes or "",
            "resume": _RESUME[resume],
            "client": _client_info(),
            "working_dir": os.getcwd(),
            # This process writes the run: its seqs, liveness and system metrics are
            # its own, and a re-attach after a sidecar restart resumes it.
            # 32 random hex digits, as uuid4().hex but without importing uuid.
            "writer_id": os.urandom(16).hex(),
            "writer": {
                "shared": s.mode == "shared",
                "label": s.x_label or "",
                "primary": s.x_primary,
                "update_finish_state": s.x_update_finish_state,
            },
            "config": cfg,
        }
        if s.client_timeout is not None:
            req["client_timeout"] = float(s.client_timeout)
        metrics: dict[str, Any] = {}
        if s.stats_sampling_interval is not None:
            metrics["interval"] = float(s.stats_sampling_interval)
        if s.disable_stats:
            metrics["disabled"] = True
        if metrics:
            req["system_metrics"] = metrics
        sidecar = _sidecar.get(s, base_dir)
        resp = _init_call(sidecar, req, s)
        if resp.resumed:
            # The sidecar merged the config given now into the run's: show all of it.
            normalized = _resumed_config(sidecar, resp.run.id, s, normalized)
        # Later re-attaches resume this very run: keep what identifies it.
        del req["config"]
        run = Run(sidecar, resp, s, req, normalized, bool(allow_val_change), _forget)
        _active = run
        _install_hooks()
    if not (s.quiet or s.silent):
        verb = "resumed" if run.resumed else "started"
        print(f"runcore: run {run.name} ({run.id}) {verb} in {run._run_dir_shown()}", file=sys.stderr)
    return run


def _init_call(sidecar: "_sidecar.Sidecar", req: dict[str, Any], s: Settings) -> Any:
    """Init, retried as the client contract says (kind INIT) for up to init_timeout."""
    deadline = time.monotonic() + s.init_timeout
    retries = 0
    while True:
        gen = sidecar.generation
        try:
            return sidecar.call("Init", req, s.init_timeout)
        except RpcError as e:
            if not should_retry(e, Kind.INIT, sidecar, gen) or time.monotonic() >= deadline:
                raise rpc_error("init", e) from None
            if retries:  # back off from the second retry on
                time.sleep(min(1.0, 0.05 * 2 ** (retries - 1), max(0.0, deadline - time.monotonic())))
            retries += 1
            sidecar.recover(gen, max(0.1, deadline - time.monotonic()))


def _resumed_config(sidecar: "_sidecar.Sidecar", run_id: str, s: Settings, given: dict[str, Any]) -> dict[str, Any]:
    """A resumed run's whole config, as the sidecar holds it (InitResponse does
    not carry it; GetRun does)."""
    try:
        got = sidecar.call("GetRun", {"run_id": run_id}, s.rpc_timeout)
    except RpcError as e:
        print(
            f"runcore: run {run_id} resumed, but its config could not be read ({e.code}: {e.details}); "
            "run.config holds only the keys given to init()",
            file=sys.stderr,
        )
        return given
    config: dict[str, Any] = got.config
    return config


def _forget(run: Run) -> None:
    global _active
    with _lock:
        if _active is run:
            _active = None


def _require(what: str) -> Run:
    run = _active
    if run is None:
        raise UsageError(f"runcore: call runcore.init() before runcore.{what}")
    return run


def log(data: Mapping[str, Any], step: Optional[int] = None, commit: Optional[bool] = None) -> None:
    """``runcore.run.log(...)``."""
    _require("log").log(data, step=step, commit=commit)


def finish(exit_code: Optional[int] = None, quiet: Optional[bool] = None) -> None:
    """Finishes ``runcore.run`` if there is one (as ``wandb.finish``)."""
    run = _active
    if run is not None:
        run.finish(exit_code=exit_code, quiet=quiet)


def define_metric(name: str, *args: Any, **kwargs: Any) -> Metric:
    return _require("define_metric").define_metric(name, *args, **kwargs)


def alert(title: str, text: str, level: Union[str, AlertLevel, None] = None, wait_duration: Any = None) -> AlertResult:
    return _require("alert").alert(title, text, level=level, wait_duration=wait_duration)


def save(glob_str: Any, base_path: Any = None, policy: str = "live") -> list[str]:
    return _require("save").save(glob_str, base_path=base_path, policy=policy)


def mark_preempting() -> None:
    _require("mark_preempting").mark_preempting()


def log_artifact(artifact_or_path: Any, *args: Any, **kwargs: Any) -> Artifact:
    """``runcore.run.log_artifact(...)``."""
    return _require("log_artifact").log_artifact(artifact_or_path, *args, **kwargs)


def use_artifact(artifact_or_name: Any, *args: Any, **kwargs: Any) -> Artifact:
    """``runcore.run.use_artifact(...)``."""
    return _require("use_artifact").use_artifact(artifact_or_name, *args, **kwargs)


def log_model(path: Any, name: Optional[str] = None, aliases: Optional[list[str]] = None) -> None:
    _require("log_model").log_model(path, name=name, aliases=aliases)


def use_model(name: str) -> str:
    return _require("use_model").use_model(name)


def link_model(path: Any, registered_model_name: str, name: Optional[str] = None, aliases: Optional[list[str]] = None) -> Optional[Artifact]:
    return _require("link_model").link_model(path, registered_model_name, name=name, aliases=aliases)


def login(*args: Any, **kwargs: Any) -> bool:
    """W&B's ``wandb.login``: runcore needs no login, so this does nothing."""
    return True


def teardown(exit_code: Optional[int] = None) -> None:
    """Finishes the active run and stops the sidecar this process spawned (as
    ``wandb.teardown``); the next init starts afresh."""
    run = _active
    try:
        if run is not None:
            run.finish(exit_code=exit_code)
    finally:
        _sidecar.close_all()


class _PreInit:
    """``runcore.config`` / ``runcore.summary`` before init: any use says so."""

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise UsageError(f"runcore: call runcore.init() before using runcore.{self._name}")

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        self._fail()

    __setattr__ = _fail
    __getitem__ = _fail
    __setitem__ = _fail
    __contains__ = _fail
    __iter__ = _fail
    __len__ = _fail

    def __repr__(self) -> str:
        return f"<runcore.{self._name}: no active run>"


# -- exit hooks ------------------------------------------------------------------------


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    previous_hook = sys.excepthook

    def excepthook(exc_type: Any, exc: Any, tb: Any) -> None:
        global _exit_code
        if _exit_code is None and not issubclass(exc_type, SystemExit):
            _exit_code = 1
        previous_hook(exc_type, exc, tb)

    sys.excepthook = excepthook
    previous_exit: Callable[..., Any] = sys.exit

    def exit(code: Any = None) -> Any:
        global _exit_code
        if code is None:
            _exit_code = 0
        elif isinstance(code, int):
            _exit_code = code
        else:
            _exit_code = 1
        return previous_exit(code)

    sys.exit = exit
    # threading's exit callbacks run before interpreter finalization starts, while
    # new threads can still be started; atexit is the fallback.
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(_at_exit)
            return
        except RuntimeError:
            pass
    import atexit

    atexit.register(_at_exit)


def _at_exit() -> None:
    run = _active
    try:
        if run is not None:
            run.finish(exit_code=_exit_code or 0)
    except Error as e:
        print(f"runcore: at exit: {e}", file=sys.stderr)
    finally:
        _sidecar.close_all()
        _values.remove_staging()
