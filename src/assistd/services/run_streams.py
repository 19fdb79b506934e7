"""Relaying a run's events to one SSE client until the run ends or needs tool outputs.

A stream opened by the request that queues the run subscribes before the run is queued,
so no event can be missed; one attached later (``GET .../runs/{id}?stream=true``) reads
the run's retained log from the start, or after the ``Last-Event-ID`` the client saw.
While no event arrives the relay re-reads the run, so a stream never waits forever on a
worker that died or an event another process failed to deliver.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

from assistd.errors import InvalidRequestError
from assistd.events.base import EventBus, InvalidEventId, Subscription, run_channel
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
# Relayed events, each with its id in the run's log (None for what the relay adds itself).
Relayed = tuple[StreamEvent, str | None]
# Several at once when more were waiting: the response sends a batch as one body chunk
# (one write instead of one per token when the server is busy).
Batch = list[Relayed]


class RunStream:
    """An open subscription to a run's channel.

    ``attach`` is None for a stream whose request queues the run (it starts with the
    events published from now on); otherwise the stream joins a run already queued:
    ``"0"`` from its first retained event, or an id: after that event.
    """

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        run_id: str,
        idle_seconds: float,
        *,
        attach: str | None = None,
    ) -> None:
        self.db = db
        self.bus = bus
        self.run_id = run_id
        self.idle_seconds = idle_seconds
        self.attach = attach
        self._stack = AsyncExitStack()
        self._subscription: Subscription | None = None

    async def open(self) -> RunStream:
        try:
            self._subscription = await self._stack.enter_async_context(
                self.bus.subscribe(run_channel(self.run_id), start=self.attach)
            )
        except InvalidEventId:
            raise InvalidRequestError(
                f"Invalid Last-Event-ID '{self.attach}'.", param="Last-Event-ID"
            ) from None
        return self

    async def close(self) -> None:
        await self._stack.aclose()

    async def relay(self, *, with_content: bool = False) -> AsyncIterator[Batch]:
        """The run's events, in batches of those that were ready together; file-search
        result content only ``with_content`` (``include[]`` asked for it)."""
        subscription = self._subscription
        assert subscription is not None, "open() the stream first"
        try:
            if self.attach is not None:
                caught_up, done = await self._catch_up(subscription)
                if caught_up:
                    yield [(event_view(e, with_content), i) for e, i in caught_up]
                if done:
                    return
            while True:
                received = await subscription.get(self.idle_seconds)
                if received is None:
                    final = await self._final_state()
                    if final is None:
                        yield [(KeepAlive(), None)]
                        continue
                    # The run ended in the store, but its closing events (open message and
                    # step, then the run) are published just after that commit: wait for
                    # them once more, and only if none come say how the run ended.
                    received = await subscription.get(self.idle_seconds)
                    if received is None:
                        yield [(final, None)]
                        return
                batch: Batch = [(event_view(received.event, with_content), received.id)]
                ended = ends_run_stream(received.event)
                # Whatever else is already waiting goes along, without waiting for more.
                while not ended and (more := await subscription.get(0)) is not None:
                    batch.append((event_view(more.event, with_content), more.id))
                    ended = ends_run_stream(more.event)
                yield batch
                if ended:
                    return
        finally:
            await self.close()

    async def _catch_up(self, subscription: Subscription) -> tuple[list[Relayed], bool]:
        """What an attached stream starts with: the first retained event after the one
        the client saw last, or, when the log holds nothing and the run is over, its
        state; and whether the stream is over already."""
        first = await subscription.get(0)
        if first is not None and first.id == self.attach:
            seen_end = ends_run_stream(first.event)
            first = await subscription.get(0)
            if first is None and seen_end:
                # The client saw the run end or park: only [DONE] is left, unless the
                # run went on since (tool outputs came), which the stream then follows.
                return [], await self._final_state() is not None
        if first is not None:
            return [(first.event, first.id)], ends_run_stream(first.event)
        final = await self._final_state()
        return ([(final, None)], True) if final is not None else ([], False)

    async def _final_state(self) -> StreamEvent | None:
        async with self.db.read() as conn:
            run = await runs.get(conn, self.run_id)
        if run is None:
            return error_event("The run no longer exists.", "invalid_request_error")
        if run.status not in END_STATUSES:
            return None
        return run_event(run_to_wire(run))
