"""Deleting a thread whose run is active: the run is cancelled first (its streams see it
cancelled and end, its worker stops), then the thread goes with its messages and runs.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from typing import Any

import openai
import pytest
from openai.types.beta.threads import Text, TextDelta

from assistd.backends.scripted import Reply
from assistd.events.base import run_channel
from tests.api.run_support import new_model, thread_with, wait_until, waiting_run
from tests.api.stream_support import Recorder
from tests.conftest import LiveServer

# Held open far longer than any wait below: only a stop request ends it early.
ENDLESS = Reply(text=" ".join(f"w{i}" for i in range(2000)), delay=0.05)


def executing(server: LiveServer, run_id: str) -> bool:
    """Whether the server's worker still holds the run (queued for it or executing)."""

    async def held() -> bool:
        return run_id in server.services.worker.owned

    return server.call(held())


def faults(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Errors and tracebacks the server logged during the test."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def assert_gone(client: openai.OpenAI, thread_id: str, run_id: str) -> None:
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.retrieve(thread_id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)


def test_delete_cancels_a_streaming_run_then_deletes(
    client: openai.OpenAI, server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    model = new_model()
    server.scripted.queue(ENDLESS, model=model)
    assistant = client.beta.assistants.create(model=model)
    thread_id = thread_with(client, "Talk forever.")
    deleted: list[Any] = []

    class DeleteOnFirstDelta(Recorder):
        def on_text_delta(self, delta: TextDelta, snapshot: Text) -> None:
            super().on_text_delta(delta, snapshot)
            if not deleted:
                deleted.append(client.beta.threads.delete(thread_id))

    handler = DeleteOnFirstDelta()
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant.id, event_handler=handler
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
    # DELETE answers as before.
    (answer,) = deleted
    assert (answer.id, answer.object, answer.deleted) == (thread_id, "thread.deleted", True)
    # The stream saw the run cancelled, as a cancel shows it, then ended.
    assert run.status == "cancelled"
    assert run.cancelled_at is not None
    ending = [e for e in handler.events if e != "thread.message.delta"][-4:]
    assert ending == [
        "thread.run.cancelling",
        "thread.message.incomplete",
        "thread.run.step.cancelled",
        "thread.run.cancelled",
    ]
    assert handler.calls[-1] == ("on_end",)
    done = [c[2] for c in handler.calls if c[0] in ("on_message_done", "on_run_step_done")]
    assert done == ["incomplete", "cancelled"]
    assert_gone(client, thread_id, run.id)
    # Its worker stopped (the model would stream for minutes more), quietly.
    wait_until(lambda: executing(server, run.id), lambda held: not held)
    assert faults(caplog) == []


def test_delete_cancels_a_run_waiting_for_tool_outputs(
    client: openai.OpenAI, server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    _, run = waiting_run(client, server)
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    # No stream is open for a run waiting for outputs: listen on its channel directly.
    stack = AsyncExitStack()

    async def subscribe() -> Any:
        return await stack.enter_async_context(server.services.bus.subscribe(run_channel(run.id)))

    subscription = server.call(subscribe())
    try:
        answer = client.beta.threads.delete(run.thread_id)
        assert (answer.id, answer.deleted) == (run.thread_id, True)
        seen: list[Any] = []
        while not seen or seen[-1].event != "thread.run.cancelled":
            received = server.call(subscription.get(10))
            assert received is not None, [e.event for e in seen]
            seen.append(received.event)
    finally:
        server.call(stack.aclose())
    assert [e.event for e in seen] == [
        "thread.run.cancelling",
        "thread.run.step.cancelled",
        "thread.run.cancelled",
    ]
    step = seen[1].data.model_dump(mode="json")
    assert step["type"] == "tool_calls"
    assert isinstance(step["cancelled_at"], int)
    final = seen[-1].data.model_dump(mode="json")
    assert final["status"] == "cancelled"
    assert final["required_action"] is None
    assert final["expires_at"] is None
    assert_gone(client, run.thread_id, run.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.submit_tool_outputs(
            run.id,
            thread_id=run.thread_id,
            tool_outputs=[{"tool_call_id": call.id, "output": "too late"}],
        )
    assert faults(caplog) == []


def test_delete_after_the_run_finished(client: openai.OpenAI) -> None:
    model = new_model()
    assistant = client.beta.assistants.create(model=model)
    thread_id = thread_with(client, "Hi")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant.id)
    assert run.status == "completed"
    assert client.beta.threads.delete(thread_id).deleted
    assert_gone(client, thread_id, run.id)
