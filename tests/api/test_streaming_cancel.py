"""Streams cut short: a run cancelled while it streams (raw and from the SDK's handler),
and a client that disconnects mid-stream without stopping the run.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import openai
from openai.types.beta.threads import (
    Text,
    TextDelta,
)

from assistd.backends.scripted import text_reply
from tests.api.stream_support import (
    Recorder,
    check_order,
    last,
    names,
    new_thread,
    parse_sse,
    stream_post,
    text_deltas,
    unique_model,
)
from tests.conftest import LiveServer

# ==== cancel during a stream ================================================================


def test_cancel_during_stream(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    model = unique_model()
    words = " ".join(f"w{i}" for i in range(200))
    server.scripted.queue(text_reply(words, delay=0.05), model=model)
    assistant = client.beta.assistants.create(model=model)
    thread_id = new_thread(client)
    cancelled: list[Any] = []
    errors: list[BaseException] = []

    def cancel(run_id: str) -> None:
        try:
            cancelled.append(client.beta.threads.runs.cancel(run_id, thread_id=thread_id))
        except BaseException as exc:
            errors.append(exc)

    lines: list[str] = []
    canceller: threading.Thread | None = None
    with http.stream(
        "POST", f"/threads/{thread_id}/runs", json={"assistant_id": assistant.id, "stream": True}
    ) as response:
        run_id = ""
        for line in response.iter_lines():
            lines.append(line)
            if line.startswith("data: {") and not run_id:
                run_id = json.loads(line[6:])["id"]
            if line == "event: thread.message.delta" and canceller is None:
                canceller = threading.Thread(target=cancel, args=(run_id,))
                canceller.start()
    assert canceller is not None
    canceller.join(timeout=30)
    assert not errors, errors
    assert cancelled
    assert cancelled[0].status == "cancelling"
    frames, _ = parse_sse(iter(lines))
    check_order(frames)
    events = names(frames)
    at = events.index("thread.run.cancelling")
    # Deltas already on their way may still arrive; then the open message, step and run end.
    tail = [e for e in events[at:] if e != "thread.message.delta"]
    assert tail == [
        "thread.run.cancelling",
        "thread.message.incomplete",
        "thread.run.step.cancelled",
        "thread.run.cancelled",
        "done",
    ]
    message = last(frames, "thread.message.incomplete")
    assert message["incomplete_details"] == {"reason": "run_cancelled"}
    step = last(frames, "thread.run.step.cancelled")
    assert step["status"] == "cancelled"
    assert isinstance(step["cancelled_at"], int)
    run = last(frames, "thread.run.cancelled")
    assert run["status"] == "cancelled"
    assert isinstance(run["cancelled_at"], int)
    streamed = "".join(d["value"] for d in text_deltas(frames))
    assert 0 < len(streamed) < len(words)
    # The store agrees with the stream; the partial text is kept.
    stored = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
    assert stored.status == "cancelled"
    kept = client.beta.threads.messages.retrieve(message["id"], thread_id=thread_id)
    assert kept.status == "incomplete"
    assert kept.content[0].type == "text"
    assert kept.content[0].text.value == streamed
    steps = client.beta.threads.runs.steps.list(run_id, thread_id=thread_id)
    assert [s.status for s in steps.data] == ["cancelled"]


def test_cancel_from_the_sdk_handler(client: openai.OpenAI, server: LiveServer) -> None:
    model = unique_model()
    server.scripted.queue(
        text_reply(" ".join(f"w{i}" for i in range(200)), delay=0.05), model=model
    )
    assistant = client.beta.assistants.create(model=model)
    thread_id = new_thread(client)

    class CancelOnFirstDelta(Recorder):
        def on_text_delta(self, delta: TextDelta, snapshot: Text) -> None:
            super().on_text_delta(delta, snapshot)
            run = self.current_run
            if len([c for c in self.calls if c[0] == "on_text_delta"]) == 1 and run:
                client.beta.threads.runs.cancel(run.id, thread_id=thread_id)

    handler = CancelOnFirstDelta()
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant.id, event_handler=handler
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
        (message,) = stream.get_final_messages()
    assert run.status == "cancelled"
    assert message.status == "incomplete"
    assert message.incomplete_details is not None
    assert message.incomplete_details.reason == "run_cancelled"
    assert ("on_run_step_done", handler.calls[0][1], "cancelled") in handler.calls
    assert handler.calls[-1] == ("on_end",)


# ==== client disconnect =====================================================================


def test_client_disconnect_does_not_stop_the_run(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    model = unique_model()
    words = " ".join(f"token{i}" for i in range(15))
    server.scripted.queue(text_reply(words, delay=0.03), model=model)
    assistant = client.beta.assistants.create(model=model)
    thread_id = new_thread(client)
    run_id = ""
    with http.stream(
        "POST", f"/threads/{thread_id}/runs", json={"assistant_id": assistant.id, "stream": True}
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: {") and not run_id:
                run_id = json.loads(line[6:])["id"]
            if line == "event: thread.message.delta":
                break  # leaving the block closes the connection mid-stream
    assert run_id
    run = client.beta.threads.runs.poll(run_id, thread_id=thread_id, poll_interval_ms=20)
    assert run.status == "completed"
    messages = client.beta.threads.messages.list(thread_id, order="desc")
    reply = messages.data[0]
    assert reply.run_id == run_id
    assert reply.status == "completed"
    assert reply.content[0].type == "text"
    assert reply.content[0].text.value == words


def test_stream_after_disconnect_new_run_on_same_thread(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    # The abandoned stream leaves nothing behind that blocks the thread's next run.
    model = unique_model()
    server.scripted.queue(
        text_reply("first answer with several words", delay=0.02),
        text_reply("second answer"),
        model=model,
    )
    assistant = client.beta.assistants.create(model=model)
    thread_id = new_thread(client)
    with http.stream(
        "POST", f"/threads/{thread_id}/runs", json={"assistant_id": assistant.id, "stream": True}
    ) as response:
        first = json.loads(
            next(line for line in response.iter_lines() if line.startswith("data:"))[6:]
        )
    client.beta.threads.runs.poll(first["id"], thread_id=thread_id, poll_interval_ms=20)
    frames = stream_post(http, f"/threads/{thread_id}/runs", {"assistant_id": assistant.id})
    check_order(frames)
    assert "".join(d["value"] for d in text_deltas(frames)) == "second answer"
