"""Relaying a run's events to one SSE client until the run ends or needs tool outputs.

The subscription is opened before the run is queued, so no event can be missed. While no
event arrives the relay re-reads the run, so a stream never waits forever on a worker that
died or an event another process failed to deliver.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack

from assistd.events.base import EventBus, Subscription, run_channel
from assistd.protocol.events import (
    KeepAlive,
    StreamEvent,
    ends_run_stream,
    error_event,
    run_event,
)
from assistd.protocol.runs import TERMINAL_STATUSES
from assistd.services.run_steps import event_view
from assistd.store import runs
from assistd.store.database import Database
from assistd.store.wire import run_to_wire

END_STATUSES = (*TERMINAL_STATUSES, "requires_action")


class RunStream:
    """An open subscription to a run's channel, to be relayed once the run is queued."""

    def __init__(self, db: Database, bus: EventBus, run_id: str, idle_seconds: float) -> None:
        self.db = db
        self.bus = bus
        self.run_id = run_id
        self.idle_seconds = idle_seconds
        self._stack = AsyncExitStack()
        self._subscription: Subscription | None = None
        # What the request that opened the stream produced itself (the new thread and
        # run), sent before the worker's events.
        self.opening: Sequence[StreamEvent] = ()

    async def open(self) -> RunStream:
        self._subscription = await self._stack.enter_async_context(
            self.bus.subscribe(run_channel(self.run_id))
        )
        return self

    async def close(self) -> None:
        await self._stack.aclose()

    async def relay(self, *, with_content: bool = False) -> AsyncIterator[StreamEvent]:
        """``opening`` first, then the run's events; file-search result content only
        ``with_content`` (``include[]`` asked for it)."""
        async for event in self._relay():
            yield event_view(event, with_content)

    async def _relay(self) -> AsyncIterator[StreamEvent]:
        assert self._subscription is not None, "open() the stream first"
        try:
            for event in self.opening:
                yield event
                if ends_run_stream(event):
                    return
            while True:
                received = await self._subscription.get(self.idle_seconds)
                if received is None:
                    final = await self._final_state()
                    if final is None:
                        yield KeepAlive()
                        continue
                    # The run ended in the store, but its closing events (open message and
                    # step, then the run) are published just after that commit: wait for
                    # them once more, and only if none come say how the run ended.
                    received = await self._subscription.get(self.idle_seconds)
                    if received is None:
                        yield final
                        return
                yield received
                if ends_run_stream(received):
                    return
        finally:
            await self.close()

    async def _final_state(self) -> StreamEvent | None:
        async with self.db.read() as conn:
            run = await runs.get(conn, self.run_id)
        if run is None:
            return error_event("The run no longer exists.", "invalid_request_error")
        if run.status not in END_STATUSES:
            return None
        return run_event(run_to_wire(run))
