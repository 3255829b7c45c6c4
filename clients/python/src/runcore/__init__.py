"""runcore: the W&B ``Run`` API over the runcore sidecar.

``import runcore as wandb`` runs the common W&B examples unchanged::

    import runcore as wandb

    with wandb.init(project="demo", config={"lr": 0.01}) as run:
        for step in range(100):
            run.log({"loss": 1 / (step + 1)})

``log()`` returns in microseconds: a background thread streams the rows to the
sidecar in batches (see ``runcore._sender``). The sidecar is found through
``RUNCORE_ADDRESS``, or spawned from ``RUNCORE_BIN`` / ``runcore`` on PATH (see
``runcore._sidecar``).

Layout: ``_api`` (init, module functions, exit hooks), ``_run`` (Run, config,
summary), ``_sender`` (the LogStream sender; it knows its run only through a
``RunLink``), ``_steps`` (the client's mirror of the step rules), ``_contract``
(what a failed call means: retry, re-Init, run ended, ...), ``_sidecar`` (finding,
spawning and reconnecting to the sidecar), ``_values`` (values and data types),
``_settings``, ``_errors``, ``_proto`` (generated stubs); ``public`` (``runcore.Api``:
W&B's public read API, reading and editing runs) with ``_query`` (its filters,
ordering and history downsampling).
"""

from __future__ import annotations

from typing import Any, Optional

from ._api import (
    _PreInit,
    active as _active,
    alert,
    define_metric,
    finish,
    init,
    log,
    login,
    mark_preempting,
    save,
    teardown,
)
from ._errors import (
    CommError,
    ConfigError,
    Error,
    RunEndedError,
    RuncoreWarning,
    SidecarNotFoundError,
    UsageError,
)
from ._run import AlertLevel, AlertResult, Config, Metric, Run, RunStatus, Summary
from ._settings import Settings
from ._values import Audio, Histogram, Image, Video
from .public import Api

__version__ = "0.1.0"

__all__ = [
    "Api",
    "Audio",
    "AlertLevel",
    "AlertResult",
    "CommError",
    "Config",
    "ConfigError",
    "Error",
    "Histogram",
    "Image",
    "Metric",
    "Run",
    "RunEndedError",
    "RunStatus",
    "RuncoreWarning",
    "Settings",
    "SidecarNotFoundError",
    "Summary",
    "UsageError",
    "Video",
    "alert",
    "config",
    "define_metric",
    "finish",
    "init",
    "log",
    "login",
    "mark_preempting",
    "run",
    "save",
    "summary",
    "teardown",
]

_PRE_INIT = {"config": _PreInit("config"), "summary": _PreInit("summary")}


def __getattr__(name: str) -> Any:
    # runcore.run / runcore.config / runcore.summary follow the active run, as
    # wandb.run / wandb.config / wandb.summary do.
    if name == "run":
        return _active()
    if name in ("config", "summary"):
        r: Optional[Run] = _active()
        if r is None:
            return _PRE_INIT[name]
        return getattr(r, name)
    raise AttributeError(f"module 'runcore' has no attribute {name!r}")
