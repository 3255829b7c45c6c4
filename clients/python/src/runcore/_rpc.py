"""What a failed call to the sidecar becomes: the exception raised to the caller
(:func:`rpc_error`) and whether it is retried after a reconnect
(:func:`should_retry`, the client contract's ``retry``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from ._contract import Action, Kind, classify
from ._errors import CommError, Error, UsageError

if TYPE_CHECKING:
    from ._sidecar import Sidecar


def rpc_error(what: str, e: grpc.RpcError) -> Exception:
    """The exception a failed unary call becomes."""
    code, details = e.code(), e.details() or ""
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return ValueError(details)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return CommError(f"runcore: {what}: the sidecar is unreachable: {code.name}: {details}")
    if code in (grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
        return UsageError(f"runcore: {what}: {details}")
    return Error(f"runcore: {what}: {code.name}: {details}")


def should_retry(e: grpc.RpcError, kind: Kind, sidecar: "Sidecar", generation: int) -> bool:
    """Whether a failed call is retried after a reconnect: the contract says
    retry, and it was not this client that cancelled it (a CANCELLED call is
    retried only when another thread replaced the channel under it)."""
    code = e.code()
    if classify(code, kind) is not Action.RETRY:
        return False
    return code != grpc.StatusCode.CANCELLED or sidecar.generation != generation
