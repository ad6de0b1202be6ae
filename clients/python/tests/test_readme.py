"""The README's quick start runs: against the fake server always, and against a real stack
when AKIDB_QUERY_ADDR and AKIDB_INGEST_ADDR are set."""
from __future__ import annotations

import os
import re
from typing import Any

import pytest

import akidb
from fake_server import FakeServer

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def test_quickstart_is_the_repository_readmes() -> None:
    """The repository's README shows the same quick start (its Python tour)."""
    with open(README, encoding="utf-8") as f:
        ours = f.read()
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(README))), "README.md"), encoding="utf-8") as f:
        top = f.read()
    block = re.compile(r"<!-- quickstart -->\s*```python\n(.*?)```\s*<!-- /quickstart -->", re.S)
    m, t = block.search(ours), block.search(top)
    assert m and t and m.group(1) == t.group(1), "README.md's Python tour differs from clients/python/README.md's quick start"


def quickstart() -> str:
    with open(README, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"<!-- quickstart -->\s*```python\n(.*?)```\s*<!-- /quickstart -->", text, re.S)
    assert m, "README.md has no quick start block"
    return m.group(1)


def run(monkeypatch: pytest.MonkeyPatch, query: str, ingest: str) -> None:
    real = akidb.AkiDB

    def connect(host: str = "localhost", **kw: Any) -> akidb.AkiDB:
        return real(query, ingest_address=ingest, **kw)

    monkeypatch.setattr(akidb, "AkiDB", connect)
    exec(compile(quickstart(), README, "exec"), {"__name__": "quickstart"})


def test_quickstart_fake(server: FakeServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    run(monkeypatch, server.address, server.address)
    assert "not found:" in capsys.readouterr().out


def test_quickstart_real(monkeypatch: pytest.MonkeyPatch) -> None:
    # Under CI (scripts/test starts a stack and sets both) a missing stack is a failure.
    if not os.environ.get("AKIDB_QUERY_ADDR"):
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but AKIDB_QUERY_ADDR / AKIDB_INGEST_ADDR are not set")
        pytest.skip("AKIDB_QUERY_ADDR / AKIDB_INGEST_ADDR not set")
    run(monkeypatch, os.environ["AKIDB_QUERY_ADDR"], os.environ["AKIDB_INGEST_ADDR"])
