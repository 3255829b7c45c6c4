"""What a failed call to the sidecar becomes: the exception raised to the caller
(:func:`rpc_error`) and whether it is retried after a reconnect
(:func:`should_retry`, the client contract's ``retry``).

A failed call is a :class:`RpcError` from the native core (``.code``: gRPC's name
of the status, ``.details``); the read API's grpc errors are turned into one by
:func:`from_grpc`, so both are handled alike."""

from __future__ import annotations

from typing import Any, Protocol

from ._contract import Action, Kind, classify
from ._errors import CommError, Error, UsageError
from ._native import RpcError

__all__ = ["RpcError", "from_grpc", "grpc_error", "pb", "rpc_error", "should_retry"]


def pb() -> Any:
    """The generated protobuf messages (runcore_pb2), imported on first use: only
    the read API and the artifact calls build them."""
    from ._proto import runcore_pb2

    return runcore_pb2


def grpc_error() -> Any:
    """``grpc.RpcError``, for an ``except`` clause of a grpc call (evaluated only
    when an exception is raised, after the call imported grpc)."""
    import grpc

    return grpc.RpcError


def from_grpc(e: Any) -> RpcError:
    """A ``grpc.RpcError`` (the read API, artifacts) as the native core's RpcError."""
    return RpcError(e.code().name, e.details() or "")


def rpc_error(what: str, e: RpcError) -> Exception:
    """The exception a failed unary call becomes."""
    code, details = e.code, e.details or ""
    if code == "INVALID_ARGUMENT":
        return ValueError(details)
    if code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
        return CommError(f"runcore: {what}: the sidecar is unreachable: {code}: {details}")
    if code in ("ALREADY_EXISTS", "NOT_FOUND", "FAILED_PRECONDITION"):
        return UsageError(f"runcore: {what}: {details}")
    return Error(f"runcore: {what}: {code}: {details}")


class Reconnecting(Protocol):
    """A connection that counts its reconnects (``_sidecar.Sidecar``)."""

    generation: int


def should_retry(e: RpcError, kind: Kind, sidecar: Reconnecting, generation: int) -> bool:
    """Whether a failed call is retried after a reconnect: the contract says
    retry, and it was not this client that cancelled it (a CANCELLED call is
    retried only when another thread replaced the channel under it)."""
    if classify(e.code, kind) is not Action.RETRY:
        return False
    return e.code != "CANCELLED" or sidecar.generation != generation
