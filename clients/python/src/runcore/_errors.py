"""Exceptions and warnings raised by runcore."""

from __future__ import annotations


class Error(Exception):
    """Base class of runcore's errors (W&B's ``wandb.Error``)."""


class UsageError(Error):
    """The API was used in a way it does not support (e.g. ``log`` before ``init``)."""


class CommError(Error):
    """The sidecar could not be reached, or it refused a request."""


class SidecarNotFoundError(CommError):
    """No sidecar could be found or started; the message says what was tried."""


class ConfigError(Error):
    """A config key was changed without ``allow_val_change=True`` (as in W&B)."""


class RunEndedError(Error):
    """The sidecar ended the run without this client finishing it: ``state`` says
    how (``crashed``: no sign of life from the client within its client timeout;
    ``killed``: the sidecar shut down with the run open; ``preempted``; or
    ``finished``/``failed`` by another client). runcore never resumes such a run by
    itself: ``runcore.init(id=run_id, resume="allow")`` continues it."""

    def __init__(self, run_id: str, state: str, message: str) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.state = state


class RuncoreWarning(UserWarning):
    """Something was not recorded as asked (a dropped row, a rejected batch...).

    Each kind is warned about once per run; ``Run.status()`` has the counts.
    """
