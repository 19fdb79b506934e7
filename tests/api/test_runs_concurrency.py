"""Runs side by side and stopped: the thread lock (one active run per thread), concurrent
creations, many threads at once, and cancellation in each state a run can be cancelled in.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Any

import openai
import pytest

from assistd.backends.scripted import Reply, text_reply, tool_reply
from tests.api.run_support import (
    TERMINAL,
    error_body,
    model_contents,
    new_model,
    run_messages,
    text_of,
    thread_with,
    wait_run,
    wait_until,
    waiting_run,
    weather_assistant,
)
from tests.conftest import ClientFactory, LiveServer

# ---- the thread lock -------------------------------------------------------------------


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
    # The next run parks in requires_action, so it is still active when it is cancelled
    # (a plain answer could complete first and the cancel would race it).
    server.scripted.queue(tool_reply(("get_weather", {"city": "Lima"})), model=assistant.model)
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
    # The assistant message is stored as the model is asked; its first word comes 0.2 s on.
    wait_until(lambda: run_messages(client, thread_id, run.id), lambda ms: len(ms) == 1)
    time.sleep(1.0)  # let a few words stream (not an assertion)

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
