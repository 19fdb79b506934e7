"""A new run's claim in flight while its first turn starts.

A run created in this process is handed to the executor as stored; the executor reads its
context and sends its upstream request while the claim (``queued`` to ``in_progress``, a
commit) goes on, instead of before: on PostgreSQL the claim's round trip and WAL flush
then overlap with the wait for the model's first token. A run handed over before its
creation committed (``RunQueue.start_now``) is stored ``in_progress`` by that creation: its
claim is that commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from assistd.executor.emitter import Emitter
from assistd.store.records import Message, Run


class NotClaimed(Exception):
    """The run was not queued any more when claimed: cancelled before, or taken by another
    worker (at least once delivery)."""


class Claim:
    """A new run's claim, in flight while its first turn is prepared and its completion
    requested: the claim's commit, and the run's ``in_progress`` event, overlap with the
    wait for the model's first token instead of coming before the request. Nothing else
    of the run is stored or published before it settles: its first chunk, the
    completion's end or a failure waits for it."""

    def __init__(self, emit: Emitter, claiming: Coroutine[Any, Any, Run | None]) -> None:
        self._emit = emit
        self._task = asyncio.ensure_future(self._claim(claiming))

    async def _claim(self, claiming: Coroutine[Any, Any, Run | None]) -> bool:
        run = await claiming
        if run is None:
            return False
        await self._emit.run(run)
        return True

    async def settle(self) -> bool:
        """Whether the run was claimed (and its ``in_progress`` published)."""
        # Shielded: a cancel of the run's task must not cut the statement off.
        return await asyncio.shield(self._task)


@dataclass
class FirstTurn:
    """What a run execution's first completion alone uses: when the run was taken up
    (for its time to first token), its claim still in flight, and the thread's messages
    when its creation handed them over (no read for its context)."""

    taken_at: float
    claim: Claim | None = None
    thread: Sequence[Message] | None = None


async def settled(claim: Claim) -> None:
    """Wait for ``claim``; raise ``NotClaimed`` when the run was not ours."""
    if not await claim.settle():
        raise NotClaimed
