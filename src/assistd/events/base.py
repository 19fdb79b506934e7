"""The ``EventBus`` interface: an append-only log per channel, with live subscribers.

Every event published on a channel gets an id, increasing within the channel, and stays
readable for a while after the channel's last event (``retention``), so a subscriber can
start from any retained event: a client that lost its SSE connection resumes after the
last id it saw (``Last-Event-ID``), and any process can relay any run's stream. Kept
narrow so each implementation is one class: in memory (one process) and Redis (many).

Channels used: ``run:<run_id>`` (stream events of a run) and ``control:<run_id>``
(requests to the worker executing that run, e.g. cancel).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import ClassVar, Protocol

from assistd.protocol.events import StreamEvent

# What the bus carries: the typed stream events of protocol/events.py on run channels, and
# requests to a run's worker on control channels.
Event = StreamEvent


@dataclass(frozen=True, slots=True)
class CancelRequest(StreamEvent):
    """Asks the worker executing the run to stop it (``control:<run_id>``)."""

    event: ClassVar[str] = "cancel"
    data: None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event as a subscriber receives it, with its id in the channel's log."""

    id: str
    event: Event


class InvalidEventId(ValueError):
    """A ``start`` that is not an id this bus hands out."""


class Subscription(Protocol):
    async def get(self, wait: float | None = None) -> Delivery | None:
        """The next event, or None when ``wait`` seconds pass without one."""
        ...


class EventBus(Protocol):
    async def publish(self, channel: str, event: Event) -> str:
        """Append ``event`` to ``channel``'s log and deliver it to every current
        subscriber; returns its id."""
        ...

    def subscribe(
        self, channel: str, *, start: str | None = None
    ) -> AbstractAsyncContextManager[Subscription]:
        """Receive ``channel``'s events until the context exits: those published from now
        on, or with ``start`` every retained one from the event with that id (or the
        first after it, if it is gone) onwards; ``"0"`` means the whole retained log.
        Raises ``InvalidEventId`` for an id this bus could not have handed out."""
        ...

    async def aclose(self) -> None:
        """Release connections and background tasks."""
        ...


def run_channel(run_id: str) -> str:
    return f"run:{run_id}"


def control_channel(run_id: str) -> str:
    return f"control:{run_id}"
