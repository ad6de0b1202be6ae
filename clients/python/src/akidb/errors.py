"""Typed exceptions: one class per gRPC status code, each carrying the code and the server's
message.

Every error a call gets from the server is raised as the subclass of :class:`AkiDBError` for
its code, e.g. :class:`NotFoundError` for ``NOT_FOUND``::

    try:
        db.get_collection("nope")
    except akidb.NotFoundError as e:
        print(e.code, e.message)   # StatusCode.NOT_FOUND collection `nope` not found

A few also derive from the matching built-in exception: :class:`InvalidArgumentError` is a
``ValueError``, :class:`NotFoundError` a ``LookupError``, :class:`DeadlineExceededError` a
``TimeoutError``. Mistakes the client catches before sending anything (a vector that is not
1-dimensional, a payload value that is not JSON-like) raise plain ``ValueError`` /
``TypeError``.
"""
from __future__ import annotations

import time
from typing import Dict, Optional, Type
from urllib.parse import unquote

import grpc

__all__ = [
    "AkiDBError",
    "CancelledError",
    "UnknownError",
    "InvalidArgumentError",
    "DeadlineExceededError",
    "NotFoundError",
    "AlreadyExistsError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "FailedPreconditionError",
    "AbortedError",
    "OutOfRangeError",
    "UnimplementedError",
    "InternalError",
    "UnavailableError",
    "DataLossError",
    "UnauthenticatedError",
    "error_for_code",
    "from_rpc_error",
    "call_error",
]


class AkiDBError(Exception):
    """An AkiDB call failed. `code` is the gRPC status code, `message` the server's message."""

    #: The status code this class stands for (None on the base class).
    status_code: Optional[grpc.StatusCode] = None

    def __init__(self, message: str, code: Optional[grpc.StatusCode] = None, *, debug: Optional[str] = None) -> None:
        super().__init__(message)
        self.message: str = message
        self.code: grpc.StatusCode = code or self.status_code or grpc.StatusCode.UNKNOWN
        #: gRPC's debug string for the failed call, when there was one.
        self.debug: Optional[str] = debug

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class CancelledError(AkiDBError):
    """CANCELLED: the call was cancelled, typically by the caller."""

    status_code = grpc.StatusCode.CANCELLED


class UnknownError(AkiDBError):
    """UNKNOWN: an error with no better code."""

    status_code = grpc.StatusCode.UNKNOWN


class InvalidArgumentError(AkiDBError, ValueError):
    """INVALID_ARGUMENT: the request is wrong (a bad dimension, name, filter, ...)."""

    status_code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceededError(AkiDBError, TimeoutError):
    """DEADLINE_EXCEEDED: the call's timeout passed before it completed."""

    status_code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFoundError(AkiDBError, LookupError):
    """NOT_FOUND: no such collection, alias, point or snapshot."""

    status_code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(AkiDBError):
    """ALREADY_EXISTS: a collection or alias of that name exists."""

    status_code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDeniedError(AkiDBError):
    """PERMISSION_DENIED: the API key may not make this call or see this collection."""

    status_code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhaustedError(AkiDBError):
    """RESOURCE_EXHAUSTED: a limit was hit (batch size, rate limit, writes in flight)."""

    status_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPreconditionError(AkiDBError):
    """FAILED_PRECONDITION: the system is not in a state for the call (e.g. demoting a pinned
    collection)."""

    status_code = grpc.StatusCode.FAILED_PRECONDITION


class AbortedError(AkiDBError):
    """ABORTED: the call was aborted, e.g. by a concurrency conflict."""

    status_code = grpc.StatusCode.ABORTED


class OutOfRangeError(AkiDBError):
    """OUT_OF_RANGE: a value is past the valid range."""

    status_code = grpc.StatusCode.OUT_OF_RANGE


class UnimplementedError(AkiDBError):
    """UNIMPLEMENTED: the server does not serve this call."""

    status_code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(AkiDBError):
    """INTERNAL: a server invariant broke."""

    status_code = grpc.StatusCode.INTERNAL


class UnavailableError(AkiDBError):
    """UNAVAILABLE: the service cannot be reached or is not ready (reads are retried on it
    until their deadline)."""

    status_code = grpc.StatusCode.UNAVAILABLE


class DataLossError(AkiDBError):
    """DATA_LOSS: data the server recorded is lost or corrupt."""

    status_code = grpc.StatusCode.DATA_LOSS


class UnauthenticatedError(AkiDBError):
    """UNAUTHENTICATED: no API key, or a key the server does not know."""

    status_code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: Dict[grpc.StatusCode, Type[AkiDBError]] = {
    cls.status_code: cls
    for cls in (
        CancelledError,
        UnknownError,
        InvalidArgumentError,
        DeadlineExceededError,
        NotFoundError,
        AlreadyExistsError,
        PermissionDeniedError,
        ResourceExhaustedError,
        FailedPreconditionError,
        AbortedError,
        OutOfRangeError,
        UnimplementedError,
        InternalError,
        UnavailableError,
        DataLossError,
        UnauthenticatedError,
    )
    if cls.status_code is not None
}


def error_for_code(code: grpc.StatusCode) -> Type[AkiDBError]:
    """The exception class raised for a status code (:class:`AkiDBError` for one not listed)."""
    return _BY_CODE.get(code, AkiDBError)


def from_rpc_error(e: grpc.RpcError) -> AkiDBError:
    """The typed exception for a failed gRPC call (sync or asyncio)."""
    code_fn = getattr(e, "code", None)
    code: grpc.StatusCode = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
    details_fn = getattr(e, "details", None)
    message = details_fn() if callable(details_fn) else None
    debug_fn = getattr(e, "debug_error_string", None)
    debug = debug_fn() if callable(debug_fn) else None
    return error_for_code(code)(message or code.name, code, debug=debug)


def call_error(e: grpc.RpcError, timeout: Optional[float], start: float) -> AkiDBError:
    """The typed exception for a failed call that started at ``time.monotonic()`` `start`
    with deadline `timeout`. A server whose own timer fires first answers CANCELLED ("Timeout
    expired", tonic's timeout layer) rather than DEADLINE_EXCEEDED; once the deadline has
    passed, that is a :class:`DeadlineExceededError` too."""
    err = from_rpc_error(e)
    if err.code is grpc.StatusCode.CANCELLED and timeout is not None and time.monotonic() - start >= 0.9 * timeout:
        return DeadlineExceededError(
            f"deadline of {timeout:g}s exceeded (the server cancelled the call: {unquote(err.message)})",
            grpc.StatusCode.DEADLINE_EXCEEDED,
            debug=err.debug,
        )
    return err
