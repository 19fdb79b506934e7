"""The ``RunQueue`` interface: put a run id, take the next one."""

from __future__ import annotations

from typing import Protocol


class RunQueue(Protocol):
    async def put(self, run_id: str) -> None:
        """Make ``run_id`` available to a worker (at least once; workers claim by CAS)."""
        ...

    async def get(self) -> str:
        """Wait for the next run id."""
        ...
