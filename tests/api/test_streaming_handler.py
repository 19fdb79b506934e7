"""Streaming runs through the SDK's ``AssistantEventHandler``: driven over the golden
scenarios, its callbacks are compared with the ones recorded for the fixtures in the
reference (``stream-events.md``); outputs submitted from inside a callback; typed events.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai.types.beta import AssistantStreamEvent, Thread
from openai.types.beta.threads import (
    Message,
    MessageDeltaEvent,
    Run,
)
from openai.types.beta.threads.runs import (
    RunStep,
    RunStepDeltaEvent,
    ToolCall,
)

from assistd.backends.scripted import Reply, ScriptedCall, text_reply, tool_reply
from tests.api.stream_support import (
    INSTRUCTIONS,
    IdMap,
    Recorder,
    load_golden,
    names,
    new_thread,
    squash,
    truncated_text,
    unique_model,
    weather_assistant,
)
from tests.conftest import LiveServer


def collapse(calls: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Callbacks with the per-chunk ones folded, ids normalised.

    Runs of ``on_text_delta``/``on_message_delta`` become one ``("text_deltas", text)`` and
    runs of ``on_tool_call_delta``/``on_run_step_delta`` one ``("tool_call_deltas", args)``,
    after checking each text snapshot is the text so far. ``on_text_created`` keeps its
    annotations; its value (the first chunk) must be the first delta's.
    """
    ids = IdMap()
    out: list[tuple[Any, ...]] = []
    for i, call in enumerate(calls):
        kind = call[0]
        if kind == "on_text_created":
            following = calls[i + 1]
            assert following[0] == "on_text_delta", calls
            assert following[1] == call[1], calls
            out.append(("on_text_created", call[2]))
        elif kind in ("on_text_delta", "on_message_delta"):
            text = call[1] if kind == "on_text_delta" else ""
            if out and out[-1][0] == "text_deltas":
                text = out.pop()[1] + text
            if kind == "on_text_delta":
                assert call[2] == text, (call, text)  # the snapshot is the text so far
            out.append(("text_deltas", text))
        elif kind in ("on_tool_call_delta", "on_run_step_delta"):
            args = call[1] if kind == "on_tool_call_delta" else ""
            if out and out[-1][0] == "tool_call_deltas":
                args = out.pop()[1] + args
            out.append(("tool_call_deltas", args))
        else:
            out.append(tuple(ids(v) if isinstance(v, str) else v for v in call))
    return out


ARGS = '{"city": "Paris"}'
# Transcribed from stream-events.md ("AssistantEventHandler callbacks fired by these
# fixtures"), with on_event left out as there; argument shapes as ``Recorder`` records them.
EXPECTED_TEXT: list[tuple[Any, ...]] = [
    ("on_run_step_created", "step_msg1"),
    ("on_message_created", "msg_asst1"),
    ("on_text_created", "Hello", []),
    ("on_text_delta", "Hello", "Hello"),
    ("on_message_delta",),
    ("on_text_delta", "! How can I", "Hello! How can I"),
    ("on_message_delta",),
    ("on_text_delta", " help you today?", "Hello! How can I help you today?"),
    ("on_message_delta",),
    ("on_text_done", "Hello! How can I help you today?", []),
    ("on_message_done", "msg_asst1", "completed"),
    ("on_run_step_done", "step_msg1", "completed"),
    ("on_end",),
]
EXPECTED_FUNCTION_REQUIRES_ACTION: list[tuple[Any, ...]] = [
    ("on_run_step_created", "step_tool1"),
    ("on_tool_call_created", "call_w1", "get_weather", ""),
    ("on_run_step_delta",),
    ("on_tool_call_delta", '{"ci'),
    ("on_run_step_delta",),
    ("on_tool_call_delta", 'ty": "Par'),
    ("on_run_step_delta",),
    ("on_tool_call_delta", 'is"}'),
    ("on_run_step_delta",),
    ("on_tool_call_done", "call_w1", "get_weather", ARGS),
    ("on_end",),
]
EXPECTED_SUBMIT_TOOL_OUTPUTS: list[tuple[Any, ...]] = [
    ("on_run_step_done", "step_tool1", "completed"),
    ("on_run_step_created", "step_msg2"),
    ("on_message_created", "msg_asst2"),
    ("on_text_created", "It is 18", []),
    ("on_text_delta", "It is 18", "It is 18"),
    ("on_message_delta",),
    ("on_text_delta", "°C and sunny in Paris.", "It is 18°C and sunny in Paris."),
    ("on_message_delta",),
    ("on_text_done", "It is 18°C and sunny in Paris.", []),
    ("on_message_done", "msg_asst2", "completed"),
    ("on_run_step_done", "step_msg2", "completed"),
    ("on_end",),
]
EXPECTED_FAILED: list[tuple[Any, ...]] = [("on_end",)]
EXPECTED_INCOMPLETE: list[tuple[Any, ...]] = [
    ("on_run_step_created", "step_inc1"),
    ("on_message_created", "msg_inc1"),
    ("on_text_created", "This answer was cut", []),
    ("on_text_delta", "This answer was cut", "This answer was cut"),
    ("on_message_delta",),
    ("on_text_done", "This answer was cut", []),
    ("on_message_done", "msg_inc1", "incomplete"),
    ("on_run_step_done", "step_inc1", "completed"),
    ("on_end",),
]


def assert_callbacks(
    recorder: Recorder,
    expected: list[tuple[Any, ...]],
    golden: str,
    *,
    text: str | None = None,
    thread_created: bool = True,
) -> None:
    """Same callbacks as recorded for the fixture; ``text`` replaces the fixture's text.

    ``on_event`` saw the fixture's events (deltas aside); ``thread_created=False`` for a
    ``runs.stream`` of the ``text_create_thread`` scenario, which has no ``thread.created``.
    """
    got = collapse(recorder.calls)
    want = collapse(expected)
    if text is not None:
        want = [
            (c[0], text, *c[2:]) if c[0] in ("text_deltas", "on_text_done") else c for c in want
        ]
    assert got == want
    golden_events = names(load_golden(golden))[:-1]
    if not thread_created:
        assert golden_events[0] == "thread.created"
        golden_events = golden_events[1:]
    assert squash(recorder.events) == squash(golden_events)


def test_handler_text_create_and_run_stream(client: openai.OpenAI, server: LiveServer) -> None:
    model = unique_model()
    server.scripted.queue(text_reply("Hello! How can I help you today?"), model=model)
    assistant = client.beta.assistants.create(model=model, instructions=INSTRUCTIONS)
    recorder = Recorder()
    with client.beta.threads.create_and_run_stream(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "Hi"}]},
        event_handler=recorder,
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
        messages = stream.get_final_messages()
    assert_callbacks(recorder, EXPECTED_TEXT, "text_create_thread")
    assert run.status == "completed"
    assert recorder.current_run is not None
    assert recorder.current_run.status == "completed"
    assert run.usage is not None
    assert run.usage.total_tokens > 0
    (message,) = messages
    assert message.status == "completed"
    assert message.run_id == run.id
    assert message.content[0].type == "text"
    assert message.content[0].text.value == "Hello! How can I help you today?"
    stored = client.beta.threads.messages.retrieve(message.id, thread_id=run.thread_id)
    assert stored.content == message.content


def test_handler_text_runs_stream_text_deltas(client: openai.OpenAI, server: LiveServer) -> None:
    model = unique_model()
    server.scripted.queue(text_reply("Hello! How can I help you today?"), model=model)
    assistant = client.beta.assistants.create(model=model, instructions=INSTRUCTIONS)
    thread_id = new_thread(client)
    recorder = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant.id, event_handler=recorder
    ) as stream:
        pieces = list(stream.text_deltas)
    # One delta per scripted word, in order.
    assert pieces == ["Hello! ", "How ", "can ", "I ", "help ", "you ", "today?"]
    assert_callbacks(recorder, EXPECTED_TEXT, "text_create_thread", thread_created=False)
    assert recorder.get_final_run().status == "completed"


def test_handler_function_requires_action_then_submit(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = unique_model()
    server.scripted.queue(
        tool_reply(("get_weather", {"city": "Paris"})),
        text_reply("It is 18°C and sunny in Paris."),
        model=model,
    )
    assistant_id = weather_assistant(client, model)
    thread_id = new_thread(client, "What is the weather in Paris?")
    first = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant_id, event_handler=first
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
        with pytest.raises(RuntimeError, match="No messages found"):
            stream.get_final_messages()  # the SDK's way of saying none were streamed
    assert_callbacks(first, EXPECTED_FUNCTION_REQUIRES_ACTION, "function_requires_action")
    assert run.status == "requires_action"
    assert run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    assert (call.function.name, call.function.arguments) == ("get_weather", ARGS)
    assert call.id == first.calls[-2][1]  # on_tool_call_done got the same call

    second = Recorder()
    with client.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread_id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "18C and sunny"}],
        event_handler=second,
    ) as stream:
        stream.until_done()
        final = stream.get_final_run()
        (message,) = stream.get_final_messages()
    assert_callbacks(second, EXPECTED_SUBMIT_TOOL_OUTPUTS, "submit_tool_outputs")
    assert second.calls[0][1] == first.calls[0][1]  # the waiting tool step completes
    assert final.id == run.id
    assert final.status == "completed"
    assert message.content[0].type == "text"
    assert message.content[0].text.value == "It is 18°C and sunny in Paris."
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id, order="asc")
    assert [s.type for s in steps.data] == ["tool_calls", "message_creation"]
    tool_details = steps.data[0].step_details
    assert tool_details.type == "tool_calls"
    stored_call = tool_details.tool_calls[0]
    assert stored_call.type == "function"
    assert stored_call.function.output == "18C and sunny"


def test_handler_failed(client: openai.OpenAI, server: LiveServer) -> None:
    model = unique_model()
    server.scripted.queue(Reply(error="Sorry, something went wrong.", fail_after=0), model=model)
    assistant = client.beta.assistants.create(model=model, instructions=INSTRUCTIONS)
    recorder = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=new_thread(client), assistant_id=assistant.id, event_handler=recorder
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
        with pytest.raises(RuntimeError, match="No messages found"):
            stream.get_final_messages()  # the SDK's way of saying none were streamed
    assert_callbacks(recorder, EXPECTED_FAILED, "failed")
    assert run.status == "failed"
    assert run.last_error is not None
    assert run.last_error.code == "server_error"
    assert run.last_error.message == "Sorry, something went wrong."


def test_handler_incomplete(client: openai.OpenAI, server: LiveServer) -> None:
    model = unique_model()
    text, kept = truncated_text(260)
    server.scripted.queue(text_reply(text), model=model)
    assistant = client.beta.assistants.create(model=model, instructions=INSTRUCTIONS)
    recorder = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=new_thread(client),
        assistant_id=assistant.id,
        max_completion_tokens=256,
        event_handler=recorder,
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
        (message,) = stream.get_final_messages()
    assert_callbacks(recorder, EXPECTED_INCOMPLETE, "incomplete", text=kept)
    assert run.status == "incomplete"
    assert run.incomplete_details is not None
    assert run.incomplete_details.reason == "max_completion_tokens"
    assert message.status == "incomplete"
    assert message.incomplete_details is not None
    assert message.incomplete_details.reason == "max_tokens"


class SubmitOnRequiresAction(Recorder):
    """Submits the outputs from inside a callback, while the first stream is still open."""

    def __init__(self, client: openai.OpenAI, thread_id: str, *, hook: str) -> None:
        super().__init__()
        self.client = client
        self.thread_id = thread_id
        self.hook = hook
        self.stored_status: str | None = None
        self.inner: Recorder | None = None
        self.final_text = ""

    def on_event(self, event: AssistantStreamEvent) -> None:
        super().on_event(event)
        if self.hook == "on_event" and event.event == "thread.run.requires_action":
            self._submit(event.data.id)

    def on_tool_call_done(self, tool_call: ToolCall) -> None:
        super().on_tool_call_done(tool_call)
        run = self.current_run
        if self.hook == "on_tool_call_done" and self.inner is None and run is not None:
            assert run.status == "requires_action"
            self._submit(run.id)

    def _submit(self, run_id: str) -> None:
        # The run must already be stored as requires_action when the event arrives.
        stored = self.client.beta.threads.runs.retrieve(run_id, thread_id=self.thread_id)
        self.stored_status = stored.status
        assert stored.required_action is not None
        outputs = [
            {"tool_call_id": c.id, "output": f"18C and sunny ({c.function.arguments})"}
            for c in stored.required_action.submit_tool_outputs.tool_calls
        ]
        self.inner = Recorder()
        with self.client.beta.threads.runs.submit_tool_outputs_stream(
            thread_id=self.thread_id,
            run_id=run_id,
            tool_outputs=outputs,  # type: ignore[arg-type]
            event_handler=self.inner,
        ) as stream:
            self.final_text = "".join(stream.text_deltas)


@pytest.mark.parametrize("hook", ["on_event", "on_tool_call_done"])
def test_submit_from_inside_the_first_stream(
    client: openai.OpenAI, server: LiveServer, hook: str
) -> None:
    model = unique_model()
    server.scripted.queue(
        tool_reply(("get_weather", {"city": "Paris"})),
        text_reply("It is 18°C and sunny in Paris."),
        model=model,
    )
    assistant_id = weather_assistant(client, model)
    thread_id = new_thread(client, "What is the weather in Paris?")
    handler = SubmitOnRequiresAction(client, thread_id, hook=hook)
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant_id, event_handler=handler
    ) as stream:
        stream.until_done()
        first_run = stream.get_final_run()
    assert handler.stored_status == "requires_action"
    assert first_run.status == "requires_action"  # the first stream ended there
    assert handler.events[-1] == "thread.run.requires_action"
    assert handler.inner is not None
    assert_callbacks(handler.inner, EXPECTED_SUBMIT_TOOL_OUTPUTS, "submit_tool_outputs")
    assert handler.final_text == "It is 18°C and sunny in Paris."
    assert handler.inner.get_final_run().status == "completed"
    run = client.beta.threads.runs.retrieve(first_run.id, thread_id=thread_id)
    assert run.status == "completed"
    # The model saw the output submitted from inside the callback.
    second = server.scripted.requests_for(model)[1]
    assert second.messages[-1]["role"] == "tool"
    assert second.messages[-1]["content"] == f"18C and sunny ({ARGS})"


def test_sdk_strict_stream_yields_typed_events(client: openai.OpenAI, server: LiveServer) -> None:
    # client is strict: every event is validated against the SDK's AssistantStreamEvent union.
    model = unique_model()
    server.scripted.queue(
        Reply(text="Let me check.", tool_calls=[ScriptedCall("get_weather", {"city": "Oslo"})]),
        model=model,
    )
    assistant_id = weather_assistant(client, model)
    stream = client.beta.threads.create_and_run(
        assistant_id=assistant_id,
        thread={"messages": [{"role": "user", "content": "Weather in Oslo?"}]},
        stream=True,
    )
    with stream:
        events = list(stream)
    kinds = squash([e.event for e in events])
    assert kinds == [
        "thread.created",
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
        "thread.message.delta",
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.step.delta",
        "thread.run.requires_action",
    ]
    # Each event's data was parsed into its own model, not left as a loose object.
    for event in events:
        data_type = {
            "thread.created": Thread,
            "thread.run.step.delta": RunStepDeltaEvent,
            "thread.message.delta": MessageDeltaEvent,
        }.get(event.event)
        if data_type is None:
            data_type = (
                RunStep
                if event.event.startswith("thread.run.step.")
                else Message
                if event.event.startswith("thread.message.")
                else Run
            )
        assert type(event.data) is data_type, event
    end = events[-1]
    assert end.event == "thread.run.requires_action"
    assert end.data.required_action is not None
    (call,) = end.data.required_action.submit_tool_outputs.tool_calls
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
