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


class RuncoreWarning(UserWarning):
    """Something was not recorded as asked (a dropped row, a rejected batch...).

    Each kind is warned about once per run; ``Run.status()`` has the counts.
    """
