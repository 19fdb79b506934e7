"""A turn that offers no tools stores its message while the model's first token is awaited
(so that token waits for no write), announces it with that token, and drops it when no
text comes: an empty answer, a failure, a cancel or a call of a tool nobody offered leave
no empty message in the thread. Through the SDK, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import openai

from assistd.backends.scripted import Reply, ScriptedCall, text_reply
from tests.api.run_support import TERMINAL, new_model, run_messages, text_of, wait_run, wait_until
from tests.conftest import LiveServer


def _steps(client: openai.OpenAI, run: Any) -> list[Any]:
    return list(client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id))


def _start(client: openai.OpenAI, server: LiveServer, *replies: Reply) -> Any:
    model = new_model()
    for reply in replies:
        server.scripted.queue(reply, model=model)
    assistant = client.beta.assistants.create(model=model)
    return client.beta.threads.create_and_run(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "hi"}]}
    )


def test_the_message_is_stored_while_the_first_token_is_awaited(
    client: openai.OpenAI, server: LiveServer
) -> None:
    run = _start(client, server, text_reply("late answer", delay=0.4))
    (waiting,) = wait_until(lambda: run_messages(client, run.thread_id, run.id), bool)
    assert (waiting.role, waiting.status, waiting.content) == ("assistant", "in_progress", [])
    during = client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id)
    assert during.status == "in_progress"
    assert during.started_at is not None
    done = wait_run(client, run, TERMINAL)
    assert done.status == "completed"
    (message,) = run_messages(client, run.thread_id, run.id)
    assert message.id == waiting.id
    assert message.status == "completed"
    assert text_of(message) == "late answer"
    (step,) = _steps(client, run)
    assert step.type == "message_creation"
    assert step.step_details.message_creation.message_id == message.id  # type: ignore[union-attr]
    assert step.status == "completed"


def test_an_answer_without_text_leaves_no_message(
    client: openai.OpenAI, server: LiveServer
) -> None:
    run = _start(client, server, Reply(text=""))
    done = wait_run(client, run, TERMINAL)
    assert done.status == "completed"
    assert run_messages(client, run.thread_id, run.id) == []
    assert _steps(client, run) == []


def test_a_failure_before_the_first_token_leaves_no_message(
    client: openai.OpenAI, server: LiveServer
) -> None:
    run = _start(client, server, Reply(error="upstream down", delay=0.3))
    done = wait_run(client, run, TERMINAL)
    assert done.status == "failed"
    assert done.last_error is not None
    assert done.last_error.message == "upstream down"
    assert run_messages(client, run.thread_id, run.id) == []
    assert _steps(client, run) == []


def test_a_cancel_before_the_first_token_leaves_no_message(
    client: openai.OpenAI, server: LiveServer
) -> None:
    run = _start(client, server, text_reply("never shown", delay=5.0))
    wait_until(lambda: run_messages(client, run.thread_id, run.id), bool)
    client.beta.threads.runs.cancel(run.id, thread_id=run.thread_id)
    done = wait_run(client, run, TERMINAL)
    assert done.status == "cancelled"
    assert run_messages(client, run.thread_id, run.id) == []
    assert _steps(client, run) == []
    # The thread keeps the user's message only, and takes a new run.
    listed = list(client.beta.threads.messages.list(run.thread_id))
    assert [m.role for m in listed] == ["user"]


def test_a_call_of_a_tool_nobody_offered_drops_the_message(
    client: openai.OpenAI, server: LiveServer
) -> None:
    # The upstream calls a function the run did not offer: the call is the client's to
    # answer, as any function call is, and the message stored ahead goes.
    call = ScriptedCall("lookup", {"q": "x"})
    run = _start(client, server, Reply(tool_calls=[call], delay=0.2))
    waiting = wait_run(client, run, {"requires_action", *TERMINAL})
    assert waiting.status == "requires_action"
    assert run_messages(client, run.thread_id, run.id) == []
    (step,) = _steps(client, run)
    assert step.type == "tool_calls"
    client.beta.threads.runs.cancel(run.id, thread_id=run.thread_id)
    assert wait_run(client, run, TERMINAL).status == "cancelled"
