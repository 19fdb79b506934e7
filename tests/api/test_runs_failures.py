"""Runs that fail or are refused: backend errors (before and mid-stream), unknown or other
projects' objects, and invalid run parameters.
"""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from assistd.backends.scripted import Reply
from tests.api.run_support import (
    TERMINAL,
    error_body,
    new_model,
    run_messages,
    text_of,
    thread_with,
    wait_run,
    waiting_run,
)
from tests.conftest import ClientFactory, LiveServer, assert_error


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
        # Beyond the budgets' 32-bit columns: a 500 (SQLite overflow) until the fuzz tests
        # found it.
        ("max_completion_tokens", 2**31),
        ("max_prompt_tokens", 10**30),
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
