from __future__ import annotations

import os
import sys
from typing import Iterator

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fake_server import FakeServer  # noqa: E402

import akidb  # noqa: E402


@pytest.fixture
def server() -> Iterator[FakeServer]:
    s = FakeServer()
    yield s
    s.stop()


@pytest.fixture
def db(server: FakeServer) -> Iterator[akidb.AkiDB]:
    c = akidb.AkiDB(server.address, ingest_address=server.address, timeout=5.0, initial_backoff=0.01, max_backoff=0.05)
    yield c
    c.close()
