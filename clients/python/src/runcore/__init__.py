"""runcore: the W&B ``Run`` API over the runcore sidecar.

``import runcore as wandb`` runs the common W&B examples unchanged::

    import runcore as wandb

    with wandb.init(project="demo", config={"lr": 0.01}) as run:
        for step in range(100):
            run.log({"loss": 1 / (step + 1)})

``log()`` returns in microseconds: the native core (``runcore._native``, Rust)
converts the row under the GIL in one pass and queues it; Rust threads batch and
stream the rows to the sidecar, never taking the GIL. ``import runcore`` and the
run path (init, log, finish...) load neither grpc nor protobuf: the read API
(``runcore.Api``) and the artifact calls import them on first use. The sidecar is
found through ``RUNCORE_ADDRESS``, or spawned from ``RUNCORE_BIN`` / ``runcore``
on PATH (see ``runcore._sidecar``).

Layout: ``_api`` (init, module functions, exit hooks), ``_run`` (Run and the link
the native sender knows its run by), ``_config`` (``run.config``, ``run.summary``
and the checks of the values given to them), ``_native`` (the
compiled core: the channel to the sidecar, the sender, the value conversion of
``log``), ``_enums`` (proto enum values, from the native core), ``_contract``
(what a failed call means: retry, re-Init, run ended, ...), ``_rpc`` (what a
failed call becomes), ``_sidecar`` (finding, spawning and reconnecting to the
sidecar), ``_values`` (values and data types), ``_settings``, ``_errors``,
``_proto`` (generated stubs, for the read API), ``_artifacts`` (``Artifact``),
``_run_artifacts`` (the run's artifact methods), ``_run_calls`` (its unary calls
under the client contract: reconnect, re-attach, ended and stopped runs), ``_media`` (``Table``, ``Html``,
``Object3D``, ``Audio``, ``Video``), ``plot`` (charts on tables); ``public``
(``runcore.Api``: W&B's public read API, reading and editing runs) with ``_query``
(its filters, ordering and history downsampling); ``_active_run`` (how
``_artifacts`` finds the active run without importing ``_api``); ``_results``
(``AlertResult``, ``Metric``, ``RunStatus``: what alert, define_metric and status
return).

The run path needs none of ``public``, ``_artifacts``, ``_media``, ``plot`` or
``_results``, so ``import runcore`` loads them on first use of a name they define
(``runcore.Api``, ``runcore.Table``, ``runcore.plot``, ``runcore.Metric``...; PEP 562
``__getattr__`` below), and the run itself on first use of a call that needs them:
init stays cheap (issue 20). Nor does it import ``dataclasses`` (with ``inspect``),
``pathlib``, ``datetime``, ``uuid`` or ``socket``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Optional

from ._api import (
    _PreInit,
    active as _active,
    alert,
    define_metric,
    finish,
    init,
    link_model,
    log,
    log_artifact,
    log_model,
    login,
    mark_preempting,
    save,
    teardown,
    use_artifact,
    use_model,
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
from ._config import Config, Summary
from ._run import AlertLevel, Run
from ._settings import Settings
from ._values import Histogram, Image

if TYPE_CHECKING:
    from . import plot
    from ._artifacts import Artifact, ArtifactManifestEntry
    from ._media import Audio, Html, Object3D, Table, Video
    from ._results import AlertResult, Metric, RunStatus
    from .public import Api

__version__ = "0.1.0"

__all__ = [
    "Api",
    "Artifact",
    "ArtifactManifestEntry",
    "Audio",
    "AlertLevel",
    "AlertResult",
    "CommError",
    "Config",
    "ConfigError",
    "Error",
    "Histogram",
    "Html",
    "Image",
    "Metric",
    "Object3D",
    "Run",
    "RunEndedError",
    "RunStatus",
    "RuncoreWarning",
    "Settings",
    "SidecarNotFoundError",
    "Summary",
    "Table",
    "UsageError",
    "Video",
    "alert",
    "config",
    "define_metric",
    "finish",
    "init",
    "link_model",
    "log",
    "log_artifact",
    "log_model",
    "login",
    "mark_preempting",
    "plot",
    "run",
    "save",
    "summary",
    "teardown",
    "use_artifact",
    "use_model",
]

_PRE_INIT = {"config": _PreInit("config"), "summary": _PreInit("summary")}

#: The public names loaded on first use, and the module that defines each
#: (``plot`` is the module itself).
_LAZY = {
    "AlertResult": "._results",
    "Metric": "._results",
    "RunStatus": "._results",
    "Api": ".public",
    "Artifact": "._artifacts",
    "ArtifactManifestEntry": "._artifacts",
    "Audio": "._media",
    "Html": "._media",
    "Object3D": "._media",
    "Table": "._media",
    "Video": "._media",
    "plot": ".plot",
}


def _load(name: str) -> Any:
    """Imports the module behind a lazy name and keeps the value in this module's
    namespace, so the next lookup does not come back here."""
    module = importlib.import_module(_LAZY[name], __name__)
    value = module if name == "plot" else getattr(module, name)
    globals()[name] = value
    return value


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return _load(name)
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


def __dir__() -> list[str]:
    # The lazy names are listed before they are loaded, as they were when eager.
    return sorted(set(globals()) | set(_LAZY))
