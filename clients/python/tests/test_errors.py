"""Every gRPC status code is raised as its own exception class, with the server's message."""
from __future__ import annotations

import asyncio

import grpc
import pytest

import akidb
from akidb import errors
from fake_server import FakeServer

CODES = [c for c in grpc.StatusCode if c is not grpc.StatusCode.OK]


def test_one_class_per_code() -> None:
    classes = {errors.error_for_code(c) for c in CODES}
    assert len(classes) == len(CODES) and errors.AkiDBError not in classes
    for c in CODES:
        cls = errors.error_for_code(c)
        assert cls.status_code is c and cls.__name__ in errors.__all__ and getattr(akidb, cls.__name__) is cls
    assert issubclass(errors.InvalidArgumentError, ValueError)
    assert issubclass(errors.NotFoundError, LookupError)
    assert issubclass(errors.DeadlineExceededError, TimeoutError)


def test_message_and_code() -> None:
    e = errors.NotFoundError("collection `x` not found")
    assert e.code is grpc.StatusCode.NOT_FOUND and e.message == "collection `x` not found"
    assert str(e) == "NOT_FOUND: collection `x` not found"


@pytest.mark.parametrize("code", CODES, ids=[c.name for c in CODES])
def test_raised_for_server_code(server: FakeServer, db: akidb.AkiDB, code: grpc.StatusCode) -> None:
    server.fake.fail["Flush"] = [(code, f"the server says {code.name}")]
    with pytest.raises(errors.error_for_code(code)) as info:
        db.flush("c")
    assert info.value.code is code and info.value.message == f"the server says {code.name}"
    assert isinstance(info.value, akidb.AkiDBError)


def test_raised_for_server_code_async(server: FakeServer) -> None:
    async def main() -> None:
        async with akidb.AsyncAkiDB(server.address, ingest_address=server.address) as db:
            for code in CODES:
                server.fake.fail["Flush"] = [(code, code.name)]
                with pytest.raises(errors.error_for_code(code)) as info:
                    await db.flush("c")
                assert info.value.message == code.name

    asyncio.run(main())


class _FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def test_server_timeout_cancel_is_a_deadline() -> None:
    """A server whose timer fires first answers CANCELLED "Timeout expired": past the deadline,
    that is a DeadlineExceededError; before it, a CancelledError."""
    import time

    e = _FakeRpcError(grpc.StatusCode.CANCELLED, "Timeout%20expired")
    late = errors.call_error(e, 0.02, time.monotonic() - 0.05)
    assert isinstance(late, errors.DeadlineExceededError) and "Timeout expired" in late.message
    early = errors.call_error(e, 10.0, time.monotonic())
    assert type(early) is errors.CancelledError
    assert type(errors.call_error(e, None, 0.0)) is errors.CancelledError
    other = errors.call_error(_FakeRpcError(grpc.StatusCode.NOT_FOUND, "x"), 0.01, 0.0)
    assert type(other) is errors.NotFoundError
