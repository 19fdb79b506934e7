"""Runs through the SDK: create and poll, defaults and overrides echoed and reaching the
model, additional messages, run steps, ``include``, metadata, and create thread and run.
"""

from __future__ import annotations

import httpx
import openai
import pytest

from assistd.backends.base import Usage
from assistd.backends.scripted import Reply, text_reply
from tests.api.run_support import (
    TERMINAL,
    error_body,
    fn_tool,
    model_contents,
    new_model,
    run_messages,
    text_of,
    thread_with,
    wait_run,
    wait_until,
)
from tests.conftest import LiveServer, assert_error

FILE_SEARCH_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


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
