"""The client contract: what to do when a call to the sidecar ends with a gRPC
status. One table, the one in proto/runcore/v1/runcore.proto (above
``service RunService``) and in tests/vectors/status_contract.json, which the tests
check this module against. Every place in the client that handles a failed call
asks :func:`classify`.
"""

from __future__ import annotations

import enum


class Kind(str, enum.Enum):
    """Which kind of call failed."""

    #: The Init that starts or resumes a run.
    INIT = "init"
    #: Any other unary call about an open run.
    UNARY = "unary"
    #: The end of a LogStream call.
    STREAM = "stream"
    #: A call of the public read API (``runcore.Api``): about any run, open or
    #: ended, that this client does not log to.
    API = "api"


class Action(str, enum.Enum):
    """What the client does (the contract's words for it)."""

    NONE = "none"
    #: Reconnect, make sure the run is open, call again / resend; back off; give up
    #: after the reconnect timeout without progress.
    RETRY = "retry"
    #: As RETRY, but STOP after RETRY_LIMITED_ATTEMPTS failed attempts in a row.
    RETRY_LIMITED = "retry_limited"
    #: The sidecar does not know the run: Init it again (resume="allow"), retry.
    REINIT = "reinit"
    #: The run may have ended on the sidecar: read its state; if it ended, report
    #: it and stop sending, never resume it automatically.
    ENDED = "ended"
    #: Stream: drop the oldest unacknowledged batch (reported lost), resend the rest.
    DROP_BATCH = "drop_batch"
    #: Raise to the caller; the run stays usable.
    FAIL = "fail"
    #: Raise; on a stream, give up for good.
    STOP = "stop"


#: Failed attempts in a row (the first included, no acknowledgement between them)
#: after which RETRY_LIMITED stops.
RETRY_LIMITED_ATTEMPTS = 3

_A = Action
# gRPC status code name: (init, unary, stream, api)
_TABLE: dict[str, tuple[Action, Action, Action, Action]] = {
    "OK": (_A.NONE, _A.NONE, _A.NONE, _A.NONE),
    "CANCELLED": (_A.RETRY, _A.RETRY, _A.RETRY, _A.RETRY),
    "UNKNOWN": (_A.FAIL, _A.FAIL, _A.RETRY_LIMITED, _A.FAIL),
    "INVALID_ARGUMENT": (_A.FAIL, _A.FAIL, _A.DROP_BATCH, _A.FAIL),
    "DEADLINE_EXCEEDED": (_A.FAIL, _A.FAIL, _A.RETRY, _A.FAIL),
    "NOT_FOUND": (_A.FAIL, _A.REINIT, _A.REINIT, _A.FAIL),
    "ALREADY_EXISTS": (_A.FAIL, _A.FAIL, _A.STOP, _A.FAIL),
    "PERMISSION_DENIED": (_A.FAIL, _A.STOP, _A.STOP, _A.STOP),
    "RESOURCE_EXHAUSTED": (_A.FAIL, _A.FAIL, _A.DROP_BATCH, _A.FAIL),
    "FAILED_PRECONDITION": (_A.FAIL, _A.ENDED, _A.ENDED, _A.FAIL),
    "ABORTED": (_A.FAIL, _A.FAIL, _A.RETRY, _A.FAIL),
    "OUT_OF_RANGE": (_A.FAIL, _A.FAIL, _A.DROP_BATCH, _A.FAIL),
    "UNIMPLEMENTED": (_A.FAIL, _A.STOP, _A.STOP, _A.STOP),
    "INTERNAL": (_A.FAIL, _A.FAIL, _A.RETRY_LIMITED, _A.FAIL),
    "UNAVAILABLE": (_A.RETRY, _A.RETRY, _A.RETRY, _A.RETRY),
    "DATA_LOSS": (_A.FAIL, _A.STOP, _A.STOP, _A.STOP),
    "UNAUTHENTICATED": (_A.FAIL, _A.STOP, _A.STOP, _A.STOP),
}
_INDEX = {Kind.INIT: 0, Kind.UNARY: 1, Kind.STREAM: 2, Kind.API: 3}


def classify(code: str, kind: Kind) -> Action:
    """The action for a call of ``kind`` that ended with status ``code`` (gRPC's
    name: "UNAVAILABLE", ...; FAIL or STOP for a code this table does not know)."""
    row = _TABLE.get(code)
    if row is None:
        return Action.FAIL if kind is Kind.INIT else Action.STOP
    return row[_INDEX[kind]]
