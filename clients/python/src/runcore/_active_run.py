"""The active run (``runcore.run``) for a module below the run's modules, which
cannot import them (modules import one way): ``_api`` sets :data:`get` when it is
loaded; ``_artifacts`` (``Artifact.save`` and ``link``) calls it. ``_api`` loads
``_artifacts`` only when an artifact is used (issue 20), so it cannot set a
variable there."""

from __future__ import annotations

from typing import Any, Callable


def _no_run() -> Any:
    return None


#: Returns the active run, or None.
get: Callable[[], Any] = _no_run
