"""Fixtures of the multi-process tests: a throwaway PostgreSQL database, and the list
of processes a test starts, each stopped by its PID afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import _postgres_database
from tests.scale.cluster import Process


@pytest.fixture
def postgres_url() -> Iterator[str]:
    gen = _postgres_database()
    url = next(gen)
    try:
        yield url
    finally:
        gen.close()


@pytest.fixture
def started() -> Iterator[list[Process]]:
    """Everything a test starts goes here; stopped by PID at the end, whatever happens."""
    procs: list[Process] = []
    try:
        yield procs
    finally:
        for proc in reversed(procs):
            proc.stop()
