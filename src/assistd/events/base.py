"""The ``EventBus`` interface: publish to a channel, subscribe to a channel.

Kept narrow (two methods) so a Redis implementation is a new class, not a rewrite.
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


class Subscription(Protocol):
    async def get(self, wait: float | None = None) -> Event | None:
        """The next event, or None when ``wait`` seconds pass without one."""
        ...


class EventBus(Protocol):
    async def publish(self, channel: str, event: Event) -> None:
        """Deliver ``event`` to every current subscriber of ``channel``."""
        ...

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]:
        """Receive every event published on ``channel`` from now until the context exits."""
        ...


def run_channel(run_id: str) -> str:
    return f"run:{run_id}"


def control_channel(run_id: str) -> str:
    return f"control:{run_id}"
