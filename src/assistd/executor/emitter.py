"""Publishing a run's wire events, on its channel, once the changes they show committed."""

from __future__ import annotations

from assistd.events.base import EventBus, run_channel
from assistd.protocol.events import (
    StreamEvent,
    message_delta,
    message_event,
    run_event,
    step_delta,
    step_event,
)
from assistd.store.records import JsonObject, Message, Run, RunStep
from assistd.store.run_state import Changes
from assistd.store.wire import message_to_wire, run_to_wire, step_to_wire


class Emitter:
    """Publishes wire events for committed changes, on the run's channel."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    async def send(self, run_id: str, event: StreamEvent) -> None:
        await self.bus.publish(run_channel(run_id), event)

    async def run(self, run: Run) -> None:
        await self.send(run.id, run_event(run_to_wire(run)))

    async def step(self, step: RunStep, status: str | None = None) -> None:
        await self.send(step.run_id, step_event(step_to_wire(step), status))

    async def step_opened(self, step: RunStep) -> None:
        """A new step's ``created`` and ``in_progress`` events, one wire object for both."""
        wire = step_to_wire(step)
        await self.send(step.run_id, step_event(wire, "created"))
        await self.send(step.run_id, step_event(wire, "in_progress"))

    async def message_opened(self, message: Message) -> None:
        """A new message's ``created`` and ``in_progress`` events, one wire object for both."""
        wire = message_to_wire(message)
        await self.send(str(message.run_id), message_event(wire, "created"))
        await self.send(str(message.run_id), message_event(wire, "in_progress"))

    async def message(self, message: Message, status: str | None = None) -> None:
        await self.send(str(message.run_id), message_event(message_to_wire(message), status))

    async def message_delta(self, run_id: str, message_id: str, part: JsonObject) -> None:
        """One piece of a message's content (``part`` carries its ``index``)."""
        await self.send(run_id, message_delta(message_id, part))

    async def step_delta(self, run_id: str, step_id: str, call: JsonObject) -> None:
        """One piece of a tool step's call (``call`` carries its ``index``)."""
        await self.send(run_id, step_delta(step_id, call))

    async def changes(self, changes: Changes) -> None:
        """Children first (message, then step), then the run: the order clients expect."""
        for message in changes.messages:
            await self.message(message)
        for step in changes.steps:
            await self.step(step)
        await self.run(changes.run)
