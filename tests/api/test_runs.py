"""Runs through the SDK: lifecycle, overrides reaching the model, function calling, the
thread lock, cancellation, failures, token budgets and truncation, expiry, and recovery
after a restart.

Every test scripts its own model name, so the shared scripted backend never hands one
test's replies to another; what the model was sent is read back with ``requests_for``.
"""

from __future__ import annotations

import concurrent.futures
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai
import pytest

from assistd.backends.base import ChatRequest, Usage
from assistd.backends.scripted import Reply, ScriptedCall, text_reply, tool_reply
from assistd.tokenizer import count_tokens
from tests.conftest import ClientFactory, LiveServer, assert_error, make_settings

T = TypeVar("T")

FILE_SEARCH_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"
TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete"}


# ---- helpers ---------------------------------------------------------------------------


def new_model() -> str:
    return f"m-{secrets.token_hex(5)}"


def fn_tool(name: str, **properties: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"The {name} function.",
            "parameters": {
                "type": "object",
                "properties": {k: {"type": v} for k, v in properties.items()},
            },
        },
    }


def wait_until(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float = 15.0) -> T:
    """Fetch until ``done`` holds; fail with the last value after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not reached within {timeout}s; last value: {value!r}")
        time.sleep(0.05)


def wait_run(client: openai.OpenAI, run: Any, statuses: set[str], timeout: float = 15.0) -> Any:
    return wait_until(
        lambda: client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id),
        lambda r: r.status in statuses,
        timeout,
    )


def error_body(exc: pytest.ExceptionInfo[openai.APIStatusError]) -> dict[str, Any]:
    body = exc.value.body
    assert isinstance(body, dict), body
    return body


def text_of(message: Any) -> str:
    assert len(message.content) == 1, message.content
    assert message.content[0].type == "text"
    return str(message.content[0].text.value)


def run_messages(client: openai.OpenAI, thread_id: str, run_id: str) -> list[Any]:
    return list(client.beta.threads.messages.list(thread_id, run_id=run_id, order="asc"))


def thread_with(client: openai.OpenAI, *texts: str) -> str:
    messages: list[Any] = [{"role": "user", "content": t} for t in texts]
    return client.beta.threads.create(messages=messages).id


def model_contents(request: ChatRequest) -> list[tuple[str, Any]]:
    return [(m["role"], m.get("content")) for m in request.messages]


# ---- create and poll -------------------------------------------------------------------


def test_create_and_poll_completes_with_defaults_echoed(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = new_model()
    server.scripted.queue(
        text_reply("Hello there.", usage=Usage(prompt_tokens=11, completion_tokens=7)),
        model=model,
    )
    tools = [fn_tool("lookup", query="string")]
    assistant = client.beta.assistants.create(
        model=model,
        instructions="Be nice.",
        tools=tools,
    )
    thread_id = thread_with(client, "hi")

    created = client.beta.threads.runs.create(thread_id, assistant_id=assistant.id)
    assert created.id.startswith("run_")
    assert created.object == "thread.run"
    assert created.status == "queued"
    assert created.thread_id == thread_id
    assert created.assistant_id == assistant.id
    assert created.started_at is None
    assert created.completed_at is None
    assert created.expires_at is not None
    assert created.expires_at > created.created_at
    assert created.usage is None
    assert created.required_action is None

    run = client.beta.threads.runs.poll(created.id, thread_id=thread_id)
    assert run.status == "completed", run
    assert run.started_at is not None
    assert run.started_at >= run.created_at
    assert run.completed_at is not None
    assert run.completed_at >= run.started_at
    assert run.expires_at is None
    assert run.failed_at is None
    assert run.cancelled_at is None
    assert run.last_error is None
    assert run.incomplete_details is None
    assert run.required_action is None
    assert run.usage is not None
    assert (run.usage.prompt_tokens, run.usage.completion_tokens) == (11, 7)
    assert run.usage.total_tokens == 18
    # Snapshot of the assistant and the documented defaults.
    assert run.model == model
    assert run.instructions == "Be nice."
    assert [t.to_dict() for t in run.tools] == tools
    assert run.temperature == 1.0
    assert run.top_p == 1.0
    assert run.response_format == "auto"
    assert run.tool_choice == "auto"
    assert run.parallel_tool_calls is True
    assert run.truncation_strategy is not None
    assert run.truncation_strategy.to_dict() == {"type": "auto", "last_messages": None}
    assert run.max_prompt_tokens is None
    assert run.max_completion_tokens is None
    assert run.metadata == {}

    # The model saw the assistant's instructions, the thread and the assistant's tools.
    (request,) = server.scripted.requests_for(model)
    assert model_contents(request) == [("system", "Be nice."), ("user", "hi")]
    assert request.tools == [{"type": "function", "function": tools[0]["function"]}]
    assert request.tool_choice == "auto"
    assert request.parallel_tool_calls is True
    assert request.temperature == 1.0
    assert request.top_p == 1.0
    assert request.max_tokens is None
    assert request.response_format is None

    listed = client.beta.threads.runs.list(thread_id)
    assert [r.id for r in listed.data] == [run.id]
    assert listed.data[0].status == "completed"


def test_status_progression_and_poll_after_header(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    model = new_model()
    words = " ".join(f"w{i}" for i in range(12))
    server.scripted.queue(Reply(text=words, delay=0.25), model=model)
    assistant = client.beta.assistants.create(model=model)
    thread_id = thread_with(client, "go")
    run = client.beta.threads.runs.create(thread_id, assistant_id=assistant.id)

    def get() -> httpx.Response:
        return http.get(f"/threads/{thread_id}/runs/{run.id}")

    first = get()
    assert first.status_code == 200
    assert first.json()["status"] in ("queued", "in_progress")
    assert first.headers["openai-poll-after-ms"] == "20"

    seen = wait_until(get, lambda r: r.json()["status"] != "queued")
    body = seen.json()
    assert body["status"] == "in_progress", body
    assert seen.headers["openai-poll-after-ms"] == "20"
    assert body["started_at"] is not None
    assert body["expires_at"] is not None
    assert body["usage"] is None
    assert body["completed_at"] is None

    done = wait_until(get, lambda r: r.json()["status"] in TERMINAL)
    body = done.json()
    assert body["status"] == "completed"
    assert "openai-poll-after-ms" not in done.headers
    assert body["expires_at"] is None
    assert body["usage"] is not None
    assert body["usage"]["total_tokens"] == (
        body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    )
    (message,) = run_messages(client, thread_id, run.id)
    assert text_of(message) == words


def test_overrides_are_echoed_and_reach_the_model(
    client: openai.OpenAI, server: LiveServer
) -> None:
    assistant_model, run_model = new_model(), new_model()
    server.scripted.queue(text_reply('{"ok": true}'), model=run_model)
    assistant = client.beta.assistants.create(
        model=assistant_model,
        instructions="Assistant instructions.",
        tools=[fn_tool("assistant_fn")],
        temperature=1.5,
    )
    thread_id = thread_with(client, "one", "two", "three")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id,
        assistant_id=assistant.id,
        model=run_model,
        instructions="Run instructions.",
        additional_instructions="Answer in JSON.",
        tools=[fn_tool("run_fn", x="string")],
        temperature=0.3,
        top_p=0.7,
        response_format={"type": "json_object"},
        tool_choice={"type": "function", "function": {"name": "run_fn"}},
        parallel_tool_calls=False,
        truncation_strategy={"type": "last_messages", "last_messages": 2},
        max_prompt_tokens=5000,
        max_completion_tokens=4000,
        metadata={"purpose": "override-test"},
    )
    assert run.status == "completed", run
    assert run.model == run_model
    assert run.instructions == "Run instructions.\n\nAnswer in JSON."
    assert [t.to_dict() for t in run.tools] == [fn_tool("run_fn", x="string")]
    assert run.temperature == 0.3
    assert run.top_p == 0.7
    assert run.response_format is not None
    assert not isinstance(run.response_format, str)
    assert run.response_format.to_dict() == {"type": "json_object"}
    assert not isinstance(run.tool_choice, str)
    assert run.tool_choice is not None
    assert run.tool_choice.to_dict() == {"type": "function", "function": {"name": "run_fn"}}
    assert run.parallel_tool_calls is False
    assert run.truncation_strategy is not None
    assert run.truncation_strategy.to_dict() == {"type": "last_messages", "last_messages": 2}
    assert run.max_prompt_tokens == 5000
    assert run.max_completion_tokens == 4000
    assert run.metadata == {"purpose": "override-test"}

    assert server.scripted.requests_for(assistant_model) == []
    (request,) = server.scripted.requests_for(run_model)
    assert model_contents(request) == [
        ("system", "Run instructions.\n\nAnswer in JSON."),
        ("user", "two"),
        ("user", "three"),
    ]
    assert request.tools == [
        {"type": "function", "function": fn_tool("run_fn", x="string")["function"]}
    ]
    assert request.tool_choice == {"type": "function", "function": {"name": "run_fn"}}
    assert request.parallel_tool_calls is False
    assert request.temperature == 0.3
    assert request.top_p == 0.7
    assert request.response_format == {"type": "json_object"}
    assert request.max_tokens == 4000

    # The assistant itself is unchanged by a run's overrides.
    again = client.beta.assistants.retrieve(assistant.id)
    assert again.model == assistant_model
    assert again.instructions == "Assistant instructions."
    assert again.temperature == 1.5


def test_json_schema_response_format_reaches_the_model(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = new_model()
    server.scripted.queue(text_reply('{"city": "Paris"}'), model=model)
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "place", "schema": schema, "strict": True},
    }
    assistant = client.beta.assistants.create(model=model)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_with(client, "where?"),
        assistant_id=assistant.id,
        response_format=fmt,
    )
    assert run.status == "completed"
    assert run.response_format is not None
    assert not isinstance(run.response_format, str)
    echoed = run.response_format.to_dict()
    assert echoed["type"] == "json_schema"
    assert echoed["json_schema"]["name"] == "place"
    assert echoed["json_schema"]["schema"] == schema
    assert echoed["json_schema"]["strict"] is True
    (request,) = server.scripted.requests_for(model)
    assert request.response_format is not None
    assert request.response_format["type"] == "json_schema"
    assert request.response_format["json_schema"]["schema"] == schema
    assert request.response_format["json_schema"]["strict"] is True


@pytest.mark.sdk3
def test_reasoning_effort_is_echoed_and_sent(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    server.scripted.queue(text_reply("Thought about it."), model=model)
    assistant = client.beta.assistants.create(model=model)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_with(client, "think"),
        assistant_id=assistant.id,
        reasoning_effort="low",
    )
    assert run.status == "completed"
    assert run.reasoning_effort == "low"
    (request,) = server.scripted.requests_for(model)
    assert request.reasoning_effort == "low"


def test_additional_messages_join_the_thread_before_the_run(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = new_model()
    server.scripted.queue(text_reply("Noted both."), model=model)
    assistant = client.beta.assistants.create(model=model, instructions="Sys.")
    thread_id = thread_with(client, "first")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id,
        assistant_id=assistant.id,
        additional_messages=[
            {"role": "user", "content": "second", "metadata": {"n": "2"}},
            {"role": "assistant", "content": "an earlier answer"},
        ],
    )
    assert run.status == "completed"
    (request,) = server.scripted.requests_for(model)
    assert model_contents(request) == [
        ("system", "Sys."),
        ("user", "first"),
        ("user", "second"),
        ("assistant", "an earlier answer"),
    ]
    messages = list(client.beta.threads.messages.list(thread_id, order="asc"))
    assert [(m.role, text_of(m)) for m in messages] == [
        ("user", "first"),
        ("user", "second"),
        ("assistant", "an earlier answer"),
        ("assistant", "Noted both."),
    ]
    assert messages[1].metadata == {"n": "2"}
    assert all(m.created_at <= run.created_at + 1 for m in messages[:3])


def test_invalid_additional_message_creates_nothing(client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model=new_model())
    thread_id = thread_with(client, "first")
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.create(
            thread_id,
            assistant_id=assistant.id,
            additional_messages=[
                {"role": "user", "content": "fine"},
                {"role": "system", "content": "not allowed"},
            ],
        )
    assert str(error_body(exc)["param"]).startswith("additional_messages[1]")
    assert client.beta.threads.runs.list(thread_id).data == []
    assert [text_of(m) for m in client.beta.threads.messages.list(thread_id)] == ["first"]


def test_assistant_message_links_run_and_list_filters_by_run(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = new_model()
    server.scripted.queue(text_reply("Answer one."), text_reply("Answer two."), model=model)
    assistant = client.beta.assistants.create(model=model)
    thread_id = thread_with(client, "q1")
    first = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant.id)
    client.beta.threads.messages.create(thread_id, role="user", content="q2")
    second = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant.id
    )
    assert (first.status, second.status) == ("completed", "completed")

    (one,) = run_messages(client, thread_id, first.id)
    (two,) = run_messages(client, thread_id, second.id)
    for message, run, text in ((one, first, "Answer one."), (two, second, "Answer two.")):
        assert message.role == "assistant"
        assert message.assistant_id == assistant.id
        assert message.run_id == run.id
        assert message.thread_id == thread_id
        assert message.status == "completed"
        assert message.completed_at is not None
        assert message.incomplete_details is None
        assert text_of(message) == text
        assert message.content[0].text.annotations == []

    everything = list(client.beta.threads.messages.list(thread_id, order="asc"))
    assert [text_of(m) for m in everything] == ["q1", "Answer one.", "q2", "Answer two."]
    assert [m.run_id for m in everything] == [None, first.id, None, second.id]
    # The second run's model saw the first run's answer in the thread.
    second_request = server.scripted.requests_for(model)[1]
    assert model_contents(second_request) == [
        ("user", "q1"),
        ("assistant", "Answer one."),
        ("user", "q2"),
    ]
    runs = client.beta.threads.runs.list(thread_id)
    assert [r.id for r in runs.data] == [second.id, first.id]
    assert [r.id for r in client.beta.threads.runs.list(thread_id, order="asc")] == [
        first.id,
        second.id,
    ]


def test_run_steps_list_and_retrieve(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    server.scripted.queue(
        text_reply("Stepping.", usage=Usage(prompt_tokens=5, completion_tokens=3)), model=model
    )
    assistant = client.beta.assistants.create(model=model)
    thread_id = thread_with(client, "hi")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant.id)
    assert run.status == "completed"
    (message,) = run_messages(client, thread_id, run.id)

    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id)
    assert len(steps.data) == 1
    step = steps.data[0]
    assert step.id.startswith("step_")
    assert step.object == "thread.run.step"
    assert step.type == "message_creation"
    assert step.status == "completed"
    assert step.run_id == run.id
    assert step.thread_id == thread_id
    assert step.assistant_id == assistant.id
    assert step.completed_at is not None
    assert step.cancelled_at is None
    assert step.failed_at is None
    assert step.expired_at is None
    assert step.last_error is None
    assert step.step_details.type == "message_creation"
    assert step.step_details.message_creation.message_id == message.id
    assert step.usage is not None
    assert (step.usage.prompt_tokens, step.usage.completion_tokens) == (5, 3)
    assert step.usage.total_tokens == 8

    fetched = client.beta.threads.runs.steps.retrieve(step.id, thread_id=thread_id, run_id=run.id)
    assert fetched.to_dict() == step.to_dict()

    # The one supported include[] value is accepted on list and retrieve.
    included = client.beta.threads.runs.steps.list(
        run.id, thread_id=thread_id, include=[FILE_SEARCH_CONTENT]
    )
    assert [s.id for s in included.data] == [step.id]
    got = client.beta.threads.runs.steps.retrieve(
        step.id, thread_id=thread_id, run_id=run.id, include=[FILE_SEARCH_CONTENT]
    )
    assert got.id == step.id

    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.steps.retrieve("step_nope", thread_id=thread_id, run_id=run.id)


def test_include_rejects_unknown_values(client: openai.OpenAI, http: httpx.Client) -> None:
    model = new_model()
    assistant = client.beta.assistants.create(model=model)
    thread_id = thread_with(client, "hi")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant.id)
    bad = "step_details.bogus"
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.steps.list(
            run.id,
            thread_id=thread_id,
            include=[bad],
        )
    assert error_body(exc)["param"] == "include[0]"
    assert FILE_SEARCH_CONTENT in error_body(exc)["message"]
    steps = http.get(f"/threads/{thread_id}/runs/{run.id}/steps")
    step_id = steps.json()["data"][0]["id"]
    assert_error(
        http.get(
            f"/threads/{thread_id}/runs/{run.id}/steps/{step_id}",
            params={"include[]": [FILE_SEARCH_CONTENT, bad]},
        ),
        400,
        param="include[1]",
        code="invalid_value",
    )
    # On create, a bad include is refused before any run exists.
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.create(
            thread_id,
            assistant_id=assistant.id,
            include=[bad],
        )
    assert error_body(exc)["param"] == "include[0]"
    assert [r.id for r in client.beta.threads.runs.list(thread_id)] == [run.id]
    ok = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant.id, include=[FILE_SEARCH_CONTENT]
    )
    assert ok.status == "completed"


def test_modify_run_metadata(client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model=new_model())
    thread_id = thread_with(client, "hi")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant.id, metadata={"a": "1"}
    )
    updated = client.beta.threads.runs.update(run.id, thread_id=thread_id, metadata={"b": "2"})
    assert updated.id == run.id
    assert updated.metadata == {"b": "2"}
    assert updated.status == "completed"
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread_id).metadata == {"b": "2"}


# ---- create thread and run -------------------------------------------------------------


def test_create_and_run_poll(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    server.scripted.queue(text_reply("Welcome aboard."), model=model)
    assistant = client.beta.assistants.create(model=model, instructions="Greet.")
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={
            "messages": [
                {"role": "user", "content": "hello", "metadata": {"m": "1"}},
                {"role": "user", "content": "anyone?"},
            ],
            "metadata": {"origin": "test"},
        },
        metadata={"kind": "onboarding"},
        temperature=0.5,
    )
    assert run.status == "completed", run
    assert run.thread_id.startswith("thread_")
    assert run.metadata == {"kind": "onboarding"}
    assert run.temperature == 0.5
    thread = client.beta.threads.retrieve(run.thread_id)
    assert thread.metadata == {"origin": "test"}
    messages = list(client.beta.threads.messages.list(run.thread_id, order="asc"))
    assert [(m.role, text_of(m)) for m in messages] == [
        ("user", "hello"),
        ("user", "anyone?"),
        ("assistant", "Welcome aboard."),
    ]
    assert messages[0].metadata == {"m": "1"}
    assert messages[2].run_id == run.id
    (request,) = server.scripted.requests_for(model)
    assert model_contents(request) == [
        ("system", "Greet."),
        ("user", "hello"),
        ("user", "anyone?"),
    ]
    assert request.temperature == 0.5


def test_create_and_run_without_thread_makes_an_empty_one(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = new_model()
    server.scripted.queue(text_reply("Nothing to answer."), model=model)
    assistant = client.beta.assistants.create(model=model, instructions="Speak first.")
    run = client.beta.threads.create_and_run_poll(assistant_id=assistant.id)
    assert run.status == "completed"
    (request,) = server.scripted.requests_for(model)
    assert model_contents(request) == [("system", "Speak first.")]
    messages = list(client.beta.threads.messages.list(run.thread_id))
    assert [text_of(m) for m in messages] == ["Nothing to answer."]


def test_post_threads_runs_is_not_a_thread_update(
    client: openai.OpenAI, http: httpx.Client
) -> None:
    assistant = client.beta.assistants.create(model=new_model())
    response = http.post("/threads/runs", json={"assistant_id": assistant.id})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "thread.run"
    assert body["assistant_id"] == assistant.id
    assert body["status"] == "queued"
    assert response.headers["openai-poll-after-ms"] == "20"
    run = wait_run(
        client, client.beta.threads.runs.retrieve(body["id"], thread_id=body["thread_id"]), TERMINAL
    )
    assert run.status == "completed"
    # Updating a thread still works at POST /threads/{thread_id}.
    updated = http.post(f"/threads/{body['thread_id']}", json={"metadata": {"x": "y"}})
    assert updated.status_code == 200
    assert updated.json()["object"] == "thread"
    assert updated.json()["metadata"] == {"x": "y"}
    assert_error(http.post("/threads/runs", json={}), 400, param="assistant_id")


# ---- function calling ------------------------------------------------------------------


def weather_assistant(client: openai.OpenAI, model: str, **kwargs: Any) -> Any:
    return client.beta.assistants.create(
        model=model,
        tools=[
            fn_tool("get_weather", city="string"),
            fn_tool("get_time", zone="string"),
        ],
        **kwargs,
    )


def test_function_call_requires_action_then_completes(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = new_model()
    server.scripted.queue(
        tool_reply(("get_weather", {"city": "Paris"})),
        text_reply("It is sunny in Paris."),
        model=model,
    )
    assistant = weather_assistant(client, model)
    thread_id = thread_with(client, "Weather in Paris?")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant.id)
    assert run.status == "requires_action", run
    assert run.usage is None
    assert run.expires_at is not None
    assert run.completed_at is None
    action = run.required_action
    assert action is not None
    assert action.type == "submit_tool_outputs"
    (call,) = action.submit_tool_outputs.tool_calls
    assert call.id.startswith("call_")
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    # No message was written, and the tool step waits with no output.
    assert run_messages(client, thread_id, run.id) == []
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
    assert step.type == "tool_calls"
    assert step.status == "in_progress"
    assert step.completed_at is None
    details = step.step_details
    assert details.type == "tool_calls"
    (step_call,) = details.tool_calls
    assert step_call.id == call.id
    assert step_call.type == "function"
    assert step_call.function.name == "get_weather"
    assert json.loads(step_call.function.arguments) == {"city": "Paris"}
    assert step_call.function.output is None

    submitted = client.beta.threads.runs.submit_tool_outputs(
        run.id, thread_id=thread_id, tool_outputs=[{"tool_call_id": call.id, "output": "22C"}]
    )
    assert submitted.status == "queued"
    assert submitted.required_action is None
    final = client.beta.threads.runs.poll(run.id, thread_id=thread_id)
    assert final.status == "completed", final
    assert final.required_action is None
    assert final.expires_at is None
    assert final.usage is not None
    assert final.usage.total_tokens > 0

    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id, order="asc").data
    assert [(s.type, s.status) for s in steps] == [
        ("tool_calls", "completed"),
        ("message_creation", "completed"),
    ]
    done_call = steps[0].step_details.tool_calls[0]
    assert done_call.id == call.id
    assert done_call.function.output == "22C"
    assert steps[0].completed_at is not None
    (message,) = run_messages(client, thread_id, run.id)
    assert text_of(message) == "It is sunny in Paris."
    assert steps[1].step_details.message_creation.message_id == message.id

    first, second = server.scripted.requests_for(model)
    assert model_contents(first) == [("user", "Weather in Paris?")]
    assert second.messages == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "22C"},
    ]


def test_parallel_calls_need_all_outputs_in_one_request(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    model = new_model()
    server.scripted.queue(
        tool_reply(("get_weather", {"city": "Oslo"}), ("get_time", {"zone": "CET"})),
        text_reply("Cold, and it is noon."),
        model=model,
    )
    assistant = weather_assistant(client, model)
    thread_id = thread_with(client, "Weather and time in Oslo?")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant.id)
    assert run.status == "requires_action"
    assert run.required_action is not None
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Oslo"}, {"zone": "CET"}]
    assert len({c.id for c in calls}) == 2
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
    assert [c.id for c in step.step_details.tool_calls] == [c.id for c in calls]
    before = http.get(f"/threads/{thread_id}/runs/{run.id}").json()
    url = f"/threads/{thread_id}/runs/{run.id}/submit_tool_outputs"
    weather, clock_call = calls

    partial = assert_error(
        http.post(url, json={"tool_outputs": [{"tool_call_id": weather.id, "output": "-3C"}]}),
        400,
        param="tool_outputs",
    )
    assert clock_call.id in partial["message"]
    assert "single request" in partial["message"]

    unknown = assert_error(
        http.post(
            url,
            json={
                "tool_outputs": [
                    {"tool_call_id": weather.id, "output": "-3C"},
                    {"tool_call_id": "call_unknown", "output": "?"},
                ]
            },
        ),
        400,
        param="tool_outputs[1].tool_call_id",
        code="invalid_value",
    )
    assert "call_unknown" in unknown["message"]

    duplicate = assert_error(
        http.post(
            url,
            json={
                "tool_outputs": [
                    {"tool_call_id": weather.id, "output": "-3C"},
                    {"tool_call_id": weather.id, "output": "-4C"},
                    {"tool_call_id": clock_call.id, "output": "12:00"},
                ]
            },
        ),
        400,
        param="tool_outputs[1].tool_call_id",
    )
    assert "duplicate" in duplicate["message"]

    # None of the refused submissions changed the run or its step.
    assert http.get(f"/threads/{thread_id}/runs/{run.id}").json() == before
    (unchanged,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
    assert unchanged.status == "in_progress"
    assert all(c.function.output is None for c in unchanged.step_details.tool_calls)
    assert len(server.scripted.requests_for(model)) == 1

    final = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread_id,
        tool_outputs=[
            {"tool_call_id": clock_call.id, "output": "12:00"},
            {"tool_call_id": weather.id, "output": "-3C"},
        ],
    )
    assert final.status == "completed", final
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id, order="asc").data
    outputs = {c.id: c.function.output for c in steps[0].step_details.tool_calls}
    assert outputs == {weather.id: "-3C", clock_call.id: "12:00"}
    second = server.scripted.requests_for(model)[1]
    assert [m["role"] for m in second.messages] == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in second.messages[1]["tool_calls"]] == [weather.id, clock_call.id]
    assert second.messages[2:] == [
        {"role": "tool", "tool_call_id": weather.id, "content": "-3C"},
        {"role": "tool", "tool_call_id": clock_call.id, "content": "12:00"},
    ]


def test_text_then_tool_call_in_one_reply(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    server.scripted.queue(
        Reply(text="Let me check.", tool_calls=[ScriptedCall("get_weather", {"city": "Turin"})]),
        text_reply("Foggy."),
        model=model,
    )
    assistant = weather_assistant(client, model)
    thread_id = thread_with(client, "Turin?")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant.id)
    assert run.status == "requires_action"
    assert run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id, order="asc").data
    assert [(s.type, s.status) for s in steps] == [
        ("message_creation", "completed"),
        ("tool_calls", "in_progress"),
    ]
    (message,) = run_messages(client, thread_id, run.id)
    assert (message.status, text_of(message)) == ("completed", "Let me check.")
    final = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread_id,
        tool_outputs=[{"tool_call_id": call.id, "output": "fog"}],
    )
    assert final.status == "completed"
    assert [text_of(m) for m in run_messages(client, thread_id, run.id)] == [
        "Let me check.",
        "Foggy.",
    ]
    second = server.scripted.requests_for(model)[1]
    # The text and the call the model produced together go back as one assistant turn.
    assert [(m["role"], m.get("content")) for m in second.messages] == [
        ("user", "Turin?"),
        ("assistant", "Let me check."),
        ("tool", "fog"),
    ]
    assert [c["id"] for c in second.messages[1]["tool_calls"]] == [call.id]


def test_empty_tools_override_removes_the_assistants_tools(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = new_model()
    assistant = weather_assistant(client, model)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_with(client, "?"), assistant_id=assistant.id, tools=[]
    )
    assert run.status == "completed"
    assert run.tools == []
    (request,) = server.scripted.requests_for(model)
    assert request.tools == []
    assert request.tool_choice is None


def test_submit_when_not_requires_action(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    assistant = client.beta.assistants.create(model=model)
    thread_id = thread_with(client, "hi")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant.id)
    assert run.status == "completed"
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread_id, tool_outputs=[{"tool_call_id": "call_x", "output": "1"}]
        )
    assert error_body(exc)["message"] == 'Runs in status "completed" do not accept tool outputs.'
    after = client.beta.threads.runs.retrieve(run.id, thread_id=thread_id)
    assert after.status == "completed"
    assert after.completed_at == run.completed_at


def test_parallel_tool_calls_false_keeps_one_call(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = new_model()
    server.scripted.queue(
        tool_reply(("get_weather", {"city": "Rome"}), ("get_time", {"zone": "CET"})),
        text_reply("Warm."),
        model=model,
    )
    assistant = weather_assistant(client, model)
    thread_id = thread_with(client, "Rome?")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant.id, parallel_tool_calls=False
    )
    assert run.status == "requires_action"
    assert run.parallel_tool_calls is False
    assert run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    assert call.function.name == "get_weather"
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
    assert [c.id for c in step.step_details.tool_calls] == [call.id]
    (request,) = server.scripted.requests_for(model)
    assert request.parallel_tool_calls is False
    final = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread_id,
        tool_outputs=[{"tool_call_id": call.id, "output": "25C"}],
    )
    assert final.status == "completed"
    second = server.scripted.requests_for(model)[1]
    assert [c["id"] for c in second.messages[1]["tool_calls"]] == [call.id]
    assert second.messages[2] == {"role": "tool", "tool_call_id": call.id, "content": "25C"}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("none", "none"),
        ("required", "required"),
        ("auto", "auto"),
        (
            {"type": "function", "function": {"name": "get_time"}},
            {"type": "function", "function": {"name": "get_time"}},
        ),
    ],
)
def test_tool_choice_is_passed_to_the_model(
    client: openai.OpenAI, server: LiveServer, choice: Any, expected: Any
) -> None:
    model = new_model()
    server.scripted.queue(text_reply("Fine."), model=model)
    assistant = weather_assistant(client, model)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_with(client, "?"), assistant_id=assistant.id, tool_choice=choice
    )
    assert run.status == "completed"
    echoed = run.tool_choice if isinstance(run.tool_choice, str) else run.tool_choice.to_dict()
    assert echoed == expected
    (request,) = server.scripted.requests_for(model)
    assert request.tool_choice == expected
    assert [t["function"]["name"] for t in request.tools] == ["get_weather", "get_time"]


def test_named_builtin_tool_choice_forces_its_function(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = new_model()
    server.scripted.queue(text_reply("Fine."), model=model)
    assistant = client.beta.assistants.create(
        model=model, tools=[{"type": "code_interpreter"}, fn_tool("get_weather", city="string")]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_with(client, "?"),
        assistant_id=assistant.id,
        tool_choice={"type": "code_interpreter"},
    )
    assert run.status == "completed"
    assert run.tool_choice is not None
    assert not isinstance(run.tool_choice, str)
    assert run.tool_choice.type == "code_interpreter"
    (request,) = server.scripted.requests_for(model)
    # The built-in tool is offered as the function "python", and that one is forced.
    assert request.tool_choice == {"type": "function", "function": {"name": "python"}}
    assert [t["function"]["name"] for t in request.tools] == ["get_weather", "python"]


def test_named_tool_choice_must_be_in_tools(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    assistant = weather_assistant(client, model)
    thread_id = thread_with(client, "?")
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.create(
            thread_id,
            assistant_id=assistant.id,
            tool_choice={"type": "function", "function": {"name": "launch_rocket"}},
        )
    assert error_body(exc)["param"] == "tool_choice"
    assert "launch_rocket" in error_body(exc)["message"]
    # Checked against the run's tools when they are overridden.
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.create(
            thread_id,
            assistant_id=assistant.id,
            tools=[fn_tool("other")],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
    assert error_body(exc)["param"] == "tool_choice"
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.create(
            thread_id, assistant_id=assistant.id, tool_choice={"type": "file_search"}
        )
    assert error_body(exc)["param"] == "tool_choice"
    assert client.beta.threads.runs.list(thread_id).data == []
    assert server.scripted.requests_for(model) == []


def test_no_function_tools_sends_no_tool_choice(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    assistant = client.beta.assistants.create(model=model)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_with(client, "?"), assistant_id=assistant.id
    )
    assert run.status == "completed"
    assert run.tools == []
    (request,) = server.scripted.requests_for(model)
    assert request.tools == []
    assert request.tool_choice is None
    assert request.parallel_tool_calls is None


# ---- the thread lock -------------------------------------------------------------------


def waiting_run(client: openai.OpenAI, server: LiveServer) -> tuple[Any, Any]:
    """A run parked in requires_action (active, and nothing executing it)."""
    model = new_model()
    server.scripted.queue(tool_reply(("get_weather", {"city": "Lima"})), model=model)
    assistant = weather_assistant(client, model)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_with(client, "Lima?"), assistant_id=assistant.id
    )
    assert run.status == "requires_action"
    return assistant, run


def test_active_run_blocks_runs_and_messages(client: openai.OpenAI, server: LiveServer) -> None:
    assistant, run = waiting_run(client, server)
    thread_id = run.thread_id
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.create(thread_id, assistant_id=assistant.id)
    assert error_body(exc)["message"] == f"Thread {thread_id} already has an active run {run.id}."
    assert error_body(exc)["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.messages.create(thread_id, role="user", content="more")
    assert error_body(exc)["message"] == (
        f"Can't add messages to {thread_id} while a run {run.id} is active."
    )
    # additional_messages cannot sneak in through a refused run either.
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.create(
            thread_id,
            assistant_id=assistant.id,
            additional_messages=[{"role": "user", "content": "sneaky"}],
        )
    assert [text_of(m) for m in client.beta.threads.messages.list(thread_id)] == ["Lima?"]
    assert [r.id for r in client.beta.threads.runs.list(thread_id)] == [run.id]

    client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    assert wait_run(client, run, TERMINAL).status == "cancelled"
    # Once the run is over the thread takes messages and runs again.
    client.beta.threads.messages.create(thread_id, role="user", content="more")
    again = client.beta.threads.runs.create(thread_id, assistant_id=assistant.id)
    assert again.status == "queued"
    client.beta.threads.runs.cancel(again.id, thread_id=thread_id)
    wait_run(client, again, TERMINAL)


def test_concurrent_creations_on_one_thread(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    # Whichever run wins waits in requires_action, so it stays active for the others.
    server.scripted.queue(tool_reply(("get_weather", {"city": "Nice"})), model=model)
    assistant = weather_assistant(client, model)
    thread_id = thread_with(client, "Nice?")
    attempts = 6
    barrier = threading.Barrier(attempts)

    def create(_: int) -> Any:
        barrier.wait(timeout=10)
        try:
            return client.beta.threads.runs.create(thread_id, assistant_id=assistant.id)
        except openai.BadRequestError as exc:
            return exc

    with concurrent.futures.ThreadPoolExecutor(attempts) as pool:
        results = list(pool.map(create, range(attempts)))
    created = [r for r in results if not isinstance(r, openai.BadRequestError)]
    refused = [r for r in results if isinstance(r, openai.BadRequestError)]
    assert len(created) == 1, results
    assert len(refused) == attempts - 1
    winner = created[0]
    for exc in refused:
        body = exc.body
        assert isinstance(body, dict)
        assert body["message"] == f"Thread {thread_id} already has an active run {winner.id}."
    assert [r.id for r in client.beta.threads.runs.list(thread_id)] == [winner.id]
    final = wait_run(client, winner, {"requires_action", *TERMINAL})
    assert final.status == "requires_action"
    client.beta.threads.runs.cancel(winner.id, thread_id=thread_id)
    wait_run(client, winner, TERMINAL)


def test_different_assistants_share_a_thread(client: openai.OpenAI, server: LiveServer) -> None:
    model_a, model_b = new_model(), new_model()
    server.scripted.queue(text_reply("I am A."), model=model_a)
    server.scripted.queue(text_reply("I am B."), model=model_b)
    a = client.beta.assistants.create(model=model_a, instructions="You are A.")
    b = client.beta.assistants.create(model=model_b, instructions="You are B.")
    thread_id = thread_with(client, "Who are you?")
    run_a = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=a.id)
    run_b = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=b.id)
    assert (run_a.status, run_b.status) == ("completed", "completed")
    assert (run_a.assistant_id, run_b.assistant_id) == (a.id, b.id)
    messages = list(client.beta.threads.messages.list(thread_id, order="asc"))
    assert [(m.assistant_id, text_of(m)) for m in messages] == [
        (None, "Who are you?"),
        (a.id, "I am A."),
        (b.id, "I am B."),
    ]
    (request_b,) = server.scripted.requests_for(model_b)
    assert model_contents(request_b) == [
        ("system", "You are B."),
        ("user", "Who are you?"),
        ("assistant", "I am A."),
    ]


def test_runs_on_many_threads_at_once(make_client: ClientFactory, server: LiveServer) -> None:
    model = new_model()
    count = 20
    answers = [f"Answer number {i}." for i in range(count)]
    server.scripted.queue(*(text_reply(a, delay=0.01) for a in answers), model=model)
    client = make_client()
    assistant = client.beta.assistants.create(model=model)

    def one(i: int) -> tuple[Any, str]:
        run = client.beta.threads.create_and_run_poll(
            assistant_id=assistant.id,
            thread={"messages": [{"role": "user", "content": f"question {i}"}]},
        )
        (message,) = run_messages(client, run.thread_id, run.id)
        return run, text_of(message)

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        results = list(pool.map(one, range(count)))
    assert [run.status for run, _ in results] == ["completed"] * count
    assert len({run.thread_id for run, _ in results}) == count
    assert sorted(text for _, text in results) == sorted(answers)
    requests = server.scripted.requests_for(model)
    assert sorted(r.messages[-1]["content"] for r in requests) == sorted(
        f"question {i}" for i in range(count)
    )


# ---- cancel ----------------------------------------------------------------------------


def test_cancel_slow_run_keeps_partial_text(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    full = " ".join(f"word{i}" for i in range(60))
    server.scripted.queue(Reply(text=full, delay=0.2), model=model)
    assistant = client.beta.assistants.create(model=model)
    thread_id = thread_with(client, "Talk slowly.")
    run = client.beta.threads.runs.create(thread_id, assistant_id=assistant.id)
    # The assistant message exists once the first text arrived.
    wait_until(lambda: run_messages(client, thread_id, run.id), lambda ms: len(ms) == 1)
    time.sleep(0.5)  # let a few more words stream (not an assertion)

    cancelling = client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    assert cancelling.status == "cancelling", cancelling
    final = wait_run(client, run, TERMINAL)
    assert final.status == "cancelled", final
    assert final.cancelled_at is not None
    assert final.completed_at is None
    assert final.failed_at is None
    assert final.expires_at is None

    (message,) = run_messages(client, thread_id, run.id)
    assert message.status == "incomplete"
    assert message.incomplete_details is not None
    assert message.incomplete_details.reason == "run_cancelled"
    assert message.incomplete_at is not None
    partial = text_of(message)
    assert partial, "the partial text was lost"
    assert full.startswith(partial)
    assert len(partial) < len(full)
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
    assert step.type == "message_creation"
    assert step.status == "cancelled"
    assert step.cancelled_at is not None
    # A second cancel of the finished run is refused.
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    assert error_body(exc)["message"] == "Cannot cancel run with status 'cancelled'."


def test_cancel_right_after_create_always_ends_cancelled(
    client: openai.OpenAI, server: LiveServer
) -> None:
    """Cancelling races the worker claiming the queued run; whoever wins, the run and its
    message end cancelled once the worker is done with it (regression: on PostgreSQL the
    run was ended as cancelled while a worker went on and completed its message)."""
    model = new_model()
    assistant = client.beta.assistants.create(model=model)
    worker = server.services.worker
    for _ in range(40):
        server.scripted.queue(Reply(text="a b c d e f", delay=0.01), model=model)
        thread_id = thread_with(client, "q")
        run = client.beta.threads.runs.create(thread_id, assistant_id=assistant.id)
        client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
        final = wait_run(client, run, TERMINAL)
        assert final.status == "cancelled", final
        # Once no worker holds the run, nothing can change it any more.
        wait_until(lambda run_id=run.id: run_id in worker.owned, lambda held: not held)
        assert client.beta.threads.runs.retrieve(run.id, thread_id=thread_id).status == (
            "cancelled"
        )
        for message in run_messages(client, thread_id, run.id):
            assert message.status == "incomplete", message
            assert message.incomplete_details is not None
            assert message.incomplete_details.reason == "run_cancelled"


def test_cancel_requires_action_run(client: openai.OpenAI, server: LiveServer) -> None:
    _, run = waiting_run(client, server)
    thread_id = run.thread_id
    response = client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    assert response.status in ("cancelling", "cancelled")
    final = wait_run(client, run, TERMINAL)
    assert final.status == "cancelled"
    assert final.cancelled_at is not None
    assert final.required_action is None
    assert final.expires_at is None
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
    assert step.type == "tool_calls"
    assert step.status == "cancelled"
    assert step.cancelled_at is not None
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.submit_tool_outputs(
            run.id,
            thread_id=thread_id,
            tool_outputs=[{"tool_call_id": "call_x", "output": "late"}],
        )
    assert error_body(exc)["message"] == 'Runs in status "cancelled" do not accept tool outputs.'


def test_cancel_completed_run_is_refused(client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model=new_model())
    thread_id = thread_with(client, "hi")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant.id)
    assert run.status == "completed"
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    assert error_body(exc)["message"] == "Cannot cancel run with status 'completed'."
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread_id).status == "completed"


# ---- failures --------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["server_error", "rate_limit_exceeded", "invalid_prompt"])
def test_backend_error_fails_the_run(client: openai.OpenAI, server: LiveServer, code: Any) -> None:
    model = new_model()
    server.scripted.queue(Reply(error=f"upstream said no ({code})", error_code=code), model=model)
    assistant = client.beta.assistants.create(model=model)
    thread_id = thread_with(client, "hi")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant.id)
    assert run.status == "failed", run
    assert run.last_error is not None
    assert run.last_error.code == code
    assert run.last_error.message == f"upstream said no ({code})"
    assert run.failed_at is not None
    assert run.completed_at is None
    assert run.expires_at is None
    assert run_messages(client, thread_id, run.id) == []
    # The thread is free again.
    client.beta.threads.messages.create(thread_id, role="user", content="retry")


def test_error_mid_stream_marks_partial_message(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    server.scripted.queue(
        Reply(text="alpha beta gamma delta", error="connection reset", fail_after=2), model=model
    )
    assistant = client.beta.assistants.create(model=model)
    thread_id = thread_with(client, "hi")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant.id)
    assert run.status == "failed"
    assert run.last_error is not None
    assert (run.last_error.code, run.last_error.message) == ("server_error", "connection reset")
    (message,) = run_messages(client, thread_id, run.id)
    assert message.status == "incomplete"
    assert message.incomplete_details is not None
    assert message.incomplete_details.reason == "run_failed"
    assert text_of(message) == "alpha beta "
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
    assert step.status == "failed"
    assert step.failed_at is not None
    assert step.last_error is not None
    assert step.last_error.code == "server_error"


def test_unknown_assistant_and_thread(client: openai.OpenAI, http: httpx.Client) -> None:
    thread_id = thread_with(client, "hi")
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.threads.runs.create(thread_id, assistant_id="asst_missing")
    assert error_body(exc)["message"] == "No assistant found with id 'asst_missing'."
    assert client.beta.threads.runs.list(thread_id).data == []
    assistant = client.beta.assistants.create(model=new_model())
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.threads.runs.create("thread_missing", assistant_id=assistant.id)
    assert error_body(exc)["message"] == "No thread found with id 'thread_missing'."
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.create_and_run(assistant_id="asst_missing")
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.retrieve("run_missing", thread_id=thread_id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.list("thread_missing")
    assert_error(http.post(f"/threads/{thread_id}/runs/run_missing/cancel"), 404)


def test_other_projects_runs_are_invisible(make_client: ClientFactory, server: LiveServer) -> None:
    owner, stranger = make_client(), make_client()
    _, run = waiting_run(owner, server)
    thread_id = run.thread_id
    assistant = stranger.beta.assistants.create(model=new_model())
    runs = stranger.beta.threads.runs
    with pytest.raises(openai.NotFoundError):
        runs.retrieve(run.id, thread_id=thread_id)
    with pytest.raises(openai.NotFoundError):
        runs.list(thread_id)
    with pytest.raises(openai.NotFoundError):
        runs.cancel(run.id, thread_id=thread_id)
    with pytest.raises(openai.NotFoundError):
        runs.update(run.id, thread_id=thread_id, metadata={"x": "y"})
    with pytest.raises(openai.NotFoundError):
        runs.steps.list(run.id, thread_id=thread_id)
    with pytest.raises(openai.NotFoundError):
        runs.submit_tool_outputs(
            run.id, thread_id=thread_id, tool_outputs=[{"tool_call_id": "c", "output": "o"}]
        )
    with pytest.raises(openai.NotFoundError):
        runs.create(thread_id, assistant_id=assistant.id)
    # The owner's assistant is not usable from the other project either.
    stranger_thread = thread_with(stranger, "hi")
    with pytest.raises(openai.NotFoundError):
        runs.create(stranger_thread, assistant_id=run.assistant_id)
    still = owner.beta.threads.runs.retrieve(run.id, thread_id=thread_id)
    assert still.status == "requires_action"
    assert still.metadata == {}
    owner.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    wait_run(owner, run, TERMINAL)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_completion_tokens", 255),
        ("max_prompt_tokens", 10),
        ("temperature", 2.5),
        ("top_p", 1.5),
        ("truncation_strategy", {"type": "last_messages", "last_messages": 0}),
    ],
)
def test_invalid_run_parameters(
    client: openai.OpenAI, http: httpx.Client, field: str, value: Any
) -> None:
    assistant = client.beta.assistants.create(model=new_model())
    thread_id = thread_with(client, "hi")
    response = http.post(
        f"/threads/{thread_id}/runs", json={"assistant_id": assistant.id, field: value}
    )
    error = assert_error(response, 400)
    assert str(error["param"]).startswith(field)
    assert client.beta.threads.runs.list(thread_id).data == []


# ---- budgets and truncation ------------------------------------------------------------


def test_max_completion_tokens_ends_incomplete(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    words = [f"w{i}" for i in range(400)]
    server.scripted.queue(text_reply(" ".join(words)), model=model)
    assistant = client.beta.assistants.create(model=model)
    thread_id = thread_with(client, "Write a lot.")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant.id, max_completion_tokens=256
    )
    assert run.status == "incomplete", run
    assert run.incomplete_details is not None
    assert run.incomplete_details.reason == "max_completion_tokens"
    assert run.completed_at is None
    assert run.failed_at is None
    assert run.expires_at is None
    assert run.usage is not None
    assert run.max_completion_tokens == 256
    (request,) = server.scripted.requests_for(model)
    assert request.max_tokens == 256
    (message,) = run_messages(client, thread_id, run.id)
    assert message.status == "incomplete"
    assert message.incomplete_details is not None
    assert message.incomplete_details.reason == "max_tokens"
    assert text_of(message).split() == words[:256]
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
    assert step.status == "completed"


def test_max_completion_tokens_is_a_budget_across_turns(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = new_model()
    server.scripted.queue(
        tool_reply(("get_weather", {"city": "Bern"}), usage=Usage(10, 200)),
        text_reply("Done.", usage=Usage(10, 5)),
        model=model,
    )
    assistant = weather_assistant(client, model)
    thread_id = thread_with(client, "Bern?")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant.id, max_completion_tokens=300
    )
    assert run.status == "requires_action"
    assert run.required_action is not None
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    final = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread_id, tool_outputs=[{"tool_call_id": call.id, "output": "9C"}]
    )
    assert final.status == "completed"
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (20, 205)
    first, second = server.scripted.requests_for(model)
    assert (first.max_tokens, second.max_tokens) == (300, 100)


def test_max_prompt_tokens_drops_oldest_messages(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    # Each message is about 100 tokens (plus framing): two fit in 256, three do not.
    texts = [f"{i:03d} " + "apple " * 100 for i in range(8)]
    assert all(100 <= count_tokens(t, model) <= 110 for t in texts)
    assistant = client.beta.assistants.create(model=model, instructions="Be brief.")
    thread_id = thread_with(client, *texts)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant.id, max_prompt_tokens=256
    )
    assert run.status == "completed", run
    assert run.max_prompt_tokens == 256
    (request,) = server.scripted.requests_for(model)
    assert model_contents(request) == [
        ("system", "Be brief."),
        ("user", texts[-2]),
        ("user", texts[-1]),
    ]
    # Truncation only shapes the prompt: the thread keeps every message.
    assert len(list(client.beta.threads.messages.list(thread_id))) == len(texts) + 1


def test_max_prompt_tokens_too_small_for_the_last_message(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = new_model()
    assistant = client.beta.assistants.create(model=model)
    thread_id = thread_with(client, "short", "apple " * 400)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant.id, max_prompt_tokens=256
    )
    assert run.status == "incomplete", run
    assert run.incomplete_details is not None
    assert run.incomplete_details.reason == "max_prompt_tokens"
    assert run.expires_at is None
    assert server.scripted.requests_for(model) == []
    assert run_messages(client, thread_id, run.id) == []


def test_truncation_last_messages(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    assistant = client.beta.assistants.create(model=model, instructions="Sys.")
    thread_id = thread_with(client, "m1", "m2", "m3", "m4", "m5")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id,
        assistant_id=assistant.id,
        truncation_strategy={"type": "last_messages", "last_messages": 3},
    )
    assert run.status == "completed"
    (request,) = server.scripted.requests_for(model)
    assert model_contents(request) == [
        ("system", "Sys."),
        ("user", "m3"),
        ("user", "m4"),
        ("user", "m5"),
    ]


def test_truncation_auto_sends_whole_thread(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    assistant = client.beta.assistants.create(model=model)
    thread_id = thread_with(client, "m1", "m2", "m3")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id,
        assistant_id=assistant.id,
        truncation_strategy={"type": "auto"},
    )
    assert run.status == "completed"
    assert run.truncation_strategy is not None
    assert run.truncation_strategy.to_dict() == {"type": "auto", "last_messages": None}
    (request,) = server.scripted.requests_for(model)
    assert model_contents(request) == [("user", "m1"), ("user", "m2"), ("user", "m3")]


# ---- servers of our own: expiry and restart recovery -----------------------------------


@pytest.fixture
def own_server() -> Iterator[Callable[..., LiveServer]]:
    """Starts LiveServers with custom settings; stops whichever are still running."""
    started: list[LiveServer] = []

    def start(
        data_dir: Path, *, replies: dict[str, list[Reply]] | None = None, **overrides: Any
    ) -> LiveServer:
        live = LiveServer(make_settings(data_dir, **overrides))
        # Scripted before start-up: recovery may execute resumed runs right away.
        for model, queued in (replies or {}).items():
            live.scripted.queue(*queued, model=model)
        started.append(live.start())
        return live

    yield start
    for live in started:
        if live.thread.is_alive():
            live.stop()


def client_for(live: LiveServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=live.base_url, api_key=key, max_retries=0, _strict_response_validation=True
    )


def test_requires_action_run_expires(own_server: Callable[..., LiveServer], tmp_path: Path) -> None:
    live = own_server(tmp_path, run_expires_seconds=1, run_lease_seconds=2)
    key = live.new_key("proj_expiry")
    model = new_model()
    live.scripted.queue(tool_reply(("get_weather", {"city": "Bonn"})), model=model)
    with client_for(live, key) as client:
        assistant = weather_assistant(client, model)
        thread_id = thread_with(client, "Bonn?")
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread_id, assistant_id=assistant.id
        )
        assert run.status == "requires_action"
        assert run.required_action is not None
        call = run.required_action.submit_tool_outputs.tool_calls[0]

        expired = wait_run(client, run, TERMINAL, timeout=10)
        assert expired.status == "expired", expired
        assert expired.required_action is None
        assert expired.expires_at is None
        assert expired.cancelled_at is None
        assert expired.failed_at is None
        (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
        assert step.status == "expired"
        assert step.expired_at is not None

        with pytest.raises(openai.BadRequestError) as exc:
            client.beta.threads.runs.submit_tool_outputs(
                run.id,
                thread_id=thread_id,
                tool_outputs=[{"tool_call_id": call.id, "output": "too late"}],
            )
        assert error_body(exc)["message"] == 'Runs in status "expired" do not accept tool outputs.'
        with pytest.raises(openai.BadRequestError):
            client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
        # The expired run no longer holds the thread.
        client.beta.threads.messages.create(thread_id, role="user", content="still there?")


def test_restart_fails_interrupted_runs_and_resumes_queued_ones(
    own_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    """On SQLite (one process) whatever a stopped server left unfinished is recovered at
    start: a run cut off mid-stream fails, a run still waiting in the queue is executed."""
    settings: dict[str, Any] = {"worker_concurrency": 1}
    first = own_server(tmp_path, **settings)
    key = first.new_key("proj_restart")
    slow_model, queued_model = new_model(), new_model()
    full = " ".join(f"part{i}" for i in range(100))
    first.scripted.queue(Reply(text=full, delay=0.2), model=slow_model)
    with client_for(first, key) as client:
        slow_assistant = client.beta.assistants.create(model=slow_model)
        queued_assistant = client.beta.assistants.create(model=queued_model)
        slow_thread = thread_with(client, "Tell me everything.")
        queued_thread = thread_with(client, "Me next.")
        slow = client.beta.threads.runs.create(slow_thread, assistant_id=slow_assistant.id)
        wait_until(lambda: run_messages(client, slow_thread, slow.id), lambda ms: len(ms) == 1)
        time.sleep(0.5)  # a few more words stream (not an assertion)
        # The only execution slot is busy, so this run stays queued.
        queued = client.beta.threads.runs.create(queued_thread, assistant_id=queued_assistant.id)
        assert queued.status == "queued"
        assert client.beta.threads.runs.retrieve(slow.id, thread_id=slow_thread).status == (
            "in_progress"
        )
    first.stop()
    assert first.scripted.requests_for(queued_model) == []

    second = own_server(
        tmp_path, replies={queued_model: [text_reply("Resumed after restart.")]}, **settings
    )
    with client_for(second, key) as client:
        failed = wait_run(client, slow, TERMINAL)
        assert failed.status == "failed", failed
        assert failed.last_error is not None
        assert failed.last_error.code == "server_error"
        assert "interrupted" in failed.last_error.message
        assert failed.failed_at is not None
        assert failed.expires_at is None
        (message,) = run_messages(client, slow_thread, slow.id)
        assert message.status == "incomplete"
        assert message.incomplete_details is not None
        assert message.incomplete_details.reason == "run_failed"
        partial = text_of(message)
        assert partial
        assert full.startswith(partial)
        assert len(partial) < len(full)
        (step,) = client.beta.threads.runs.steps.list(slow.id, thread_id=slow_thread).data
        assert step.status == "failed"

        resumed = wait_run(client, queued, TERMINAL)
        assert resumed.status == "completed", resumed
        assert resumed.started_at is not None
        (answer,) = run_messages(client, queued_thread, queued.id)
        assert text_of(answer) == "Resumed after restart."
        (request,) = second.scripted.requests_for(queued_model)
        assert model_contents(request) == [("user", "Me next.")]

        # Both threads are usable again.
        again = client.beta.threads.runs.create_and_poll(
            thread_id=slow_thread, assistant_id=slow_assistant.id
        )
        assert again.status == "completed"


def test_requires_action_run_survives_a_restart(
    own_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    first = own_server(tmp_path)
    key = first.new_key("proj_restart_wait")
    model = new_model()
    first.scripted.queue(tool_reply(("get_weather", {"city": "Kyiv"})), model=model)
    with client_for(first, key) as client:
        assistant = weather_assistant(client, model)
        thread_id = thread_with(client, "Kyiv?")
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread_id, assistant_id=assistant.id
        )
        assert run.status == "requires_action"
        assert run.required_action is not None
        call = run.required_action.submit_tool_outputs.tool_calls[0]
    first.stop()

    second = own_server(tmp_path, replies={model: [text_reply("Mild in Kyiv.")]})
    with client_for(second, key) as client:
        waiting = client.beta.threads.runs.retrieve(run.id, thread_id=thread_id)
        assert waiting.status == "requires_action"
        assert waiting.required_action is not None
        assert waiting.required_action.to_dict() == run.required_action.to_dict()
        final = client.beta.threads.runs.submit_tool_outputs_and_poll(
            run_id=run.id,
            thread_id=thread_id,
            tool_outputs=[{"tool_call_id": call.id, "output": "14C"}],
        )
        assert final.status == "completed", final
        (message,) = run_messages(client, thread_id, run.id)
        assert text_of(message) == "Mild in Kyiv."
        (request,) = second.scripted.requests_for(model)
        assert request.messages[-1] == {"role": "tool", "tool_call_id": call.id, "content": "14C"}


def test_cancelled_queued_run_is_never_executed(
    own_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    """A run cancelled while it waits for an execution slot ends at once, and the worker
    that later reaches it in the queue leaves it alone."""
    live = own_server(tmp_path, worker_concurrency=1)
    key = live.new_key("proj_queue_cancel")
    model = new_model()
    live.scripted.queue(
        Reply(text=" ".join(["slow"] * 100), delay=0.2), text_reply("Third."), model=model
    )
    with client_for(live, key) as client:
        assistant = client.beta.assistants.create(model=model)
        busy = client.beta.threads.runs.create(thread_with(client, "a"), assistant_id=assistant.id)
        wait_run(client, busy, {"in_progress"})
        waiting = client.beta.threads.runs.create(
            thread_with(client, "b"), assistant_id=assistant.id
        )
        assert waiting.status == "queued"
        cancelled = client.beta.threads.runs.cancel(waiting.id, thread_id=waiting.thread_id)
        assert cancelled.status == "cancelling"
        final = wait_run(client, waiting, TERMINAL)
        assert final.status == "cancelled"
        assert final.started_at is None
        assert final.cancelled_at is not None
        assert (
            client.beta.threads.runs.steps.list(waiting.id, thread_id=waiting.thread_id).data == []
        )

        client.beta.threads.runs.cancel(busy.id, thread_id=busy.thread_id)
        assert wait_run(client, busy, TERMINAL).status == "cancelled"
        # The queue is first in, first out: once a later run completes, the cancelled one
        # was reached (and skipped) before it.
        third = client.beta.threads.create_and_run_poll(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "c"}]}
        )
        assert third.status == "completed"
        requests = live.scripted.requests_for(model)
        assert [r.messages[-1]["content"] for r in requests] == ["a", "c"]
        assert (
            client.beta.threads.runs.retrieve(waiting.id, thread_id=waiting.thread_id).status
            == "cancelled"
        )
