"""The runcore.v1 enum values the client uses, read from the native core's copy of
the proto (``_native.enum_values``) rather than retyped, so they cannot drift."""

from __future__ import annotations

from ._native import enum_values

#: RunState name -> number ("RUN_STATE_RUNNING": 1, ...).
RUN_STATE: dict[str, int] = enum_values("runcore.v1.RunState")
#: MediaKind name -> number ("MEDIA_KIND_IMAGE": 1, ...).
MEDIA_KIND: dict[str, int] = enum_values("runcore.v1.MediaKind")

RUNNING = RUN_STATE["RUN_STATE_RUNNING"]
PREEMPTING = RUN_STATE["RUN_STATE_PREEMPTING"]
FINISHED = RUN_STATE["RUN_STATE_FINISHED"]
FAILED = RUN_STATE["RUN_STATE_FAILED"]


def state_name(state: int) -> str:
    """A RunState number as the client shows it ("running", "crashed", ...)."""
    for name, number in RUN_STATE.items():
        if number == state and number != 0:
            return name[len("RUN_STATE_") :].lower()
    return "unknown"


def media_kind(name: str) -> int:
    """The MediaKind number of ``name`` ("IMAGE", "TABLE", ...)."""
    return MEDIA_KIND["MEDIA_KIND_" + name]
