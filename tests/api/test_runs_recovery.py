"""Runs on servers of the test's own: expiry of runs queued, in progress or left in
``requires_action`` past ``expires_at``, and recovery after a restart (interrupted runs
fail, queued ones resume, cancelled ones stay).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
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
    weather_assistant,
)
from tests.api.stream_support import Recorder
from tests.conftest import LiveServer, make_settings

# Held open far longer than any wait below: only a stop request ends it early.
ENDLESS = Reply(text=" ".join(f"w{i}" for i in range(2000)), delay=0.05)


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


def executing(live: LiveServer, run_id: str) -> bool:
    """Whether the server's worker still holds the run (queued for it or executing)."""

    async def held() -> bool:
        return run_id in live.services.worker.owned

    return live.call(held())


def faults(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Errors and tracebacks the server logged during the test."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_in_progress_run_expires_and_its_stream_ends(
    own_server: Callable[..., LiveServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    live = own_server(tmp_path, run_expires_seconds=1, run_lease_seconds=2)
    key = live.new_key("proj_expire_busy")
    model = new_model()
    live.scripted.queue(ENDLESS, model=model)
    with client_for(live, key) as client:
        assistant = client.beta.assistants.create(model=model)
        thread_id = thread_with(client, "Talk forever.")
        handler = Recorder()
        with client.beta.threads.runs.stream(
            thread_id=thread_id, assistant_id=assistant.id, event_handler=handler
        ) as stream:
            stream.until_done()
            streamed = stream.get_final_run()
        # Ended as a cancelled run ends, with the expiry's statuses and reason.
        assert streamed.status == "expired"
        ending = [e for e in handler.events if e != "thread.message.delta"][-3:]
        assert ending == [
            "thread.message.incomplete",
            "thread.run.step.expired",
            "thread.run.expired",
        ]
        assert handler.calls[-1] == ("on_end",)
        text = "".join(c[1] for c in handler.calls if c[0] == "on_text_delta")
        assert text

        run = client.beta.threads.runs.retrieve(streamed.id, thread_id=thread_id)
        assert run.status == "expired"
        assert run.started_at is not None
        assert (run.expires_at, run.last_error, run.required_action) == (None, None, None)
        assert (run.cancelled_at, run.failed_at, run.completed_at) == (None, None, None)
        (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
        assert step.status == "expired"
        assert step.expired_at is not None
        # The text streamed so far is kept.
        (message,) = run_messages(client, thread_id, run.id)
        assert message.status == "incomplete"
        assert message.incomplete_details is not None
        assert message.incomplete_details.reason == "run_expired"
        assert text_of(message) == text
        # Its worker stopped (the model would stream for minutes more), quietly, and the
        # thread takes new messages.
        wait_until(lambda: executing(live, run.id), lambda held: not held)
        client.beta.threads.messages.create(thread_id, role="user", content="still there?")
    assert faults(caplog) == []


def test_queued_run_expires_without_being_executed(
    own_server: Callable[..., LiveServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    live = own_server(tmp_path, run_lease_seconds=2, worker_concurrency=1)
    key = live.new_key("proj_expire_queued")
    busy_model, queued_model = new_model(), new_model()
    live.scripted.queue(ENDLESS, model=busy_model)
    with client_for(live, key) as client:
        # The one execution slot is taken by a run that does not expire within the test...
        busy_assistant = client.beta.assistants.create(model=busy_model)
        busy = client.beta.threads.runs.create(
            thread_with(client, "Talk forever."), assistant_id=busy_assistant.id
        )
        wait_run(client, busy, {"in_progress"})
        # ...so a run created with a short expiry stays queued until it expires.
        live.services.runs.settings.expires_seconds = 1
        assistant = client.beta.assistants.create(model=queued_model)
        thread_id = thread_with(client, "Anyone?")
        handler = Recorder()
        with client.beta.threads.runs.stream(
            thread_id=thread_id, assistant_id=assistant.id, event_handler=handler
        ) as stream:
            stream.until_done()
            streamed = stream.get_final_run()
        assert handler.events == ["thread.run.created", "thread.run.queued", "thread.run.expired"]
        run = client.beta.threads.runs.retrieve(streamed.id, thread_id=thread_id)
        assert run.status == "expired"
        assert (run.started_at, run.expires_at, run.last_error) == (None, None, None)
        assert client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data == []
        assert client.beta.threads.runs.retrieve(busy.id, thread_id=busy.thread_id).status == (
            "in_progress"
        )

        # Once the slot frees, the worker reaches the run and leaves it as it is.
        client.beta.threads.runs.cancel(busy.id, thread_id=busy.thread_id)
        assert wait_run(client, busy, TERMINAL).status == "cancelled"
        wait_until(lambda: executing(live, run.id), lambda held: not held)
        assert client.beta.threads.runs.retrieve(run.id, thread_id=thread_id).status == "expired"
    assert live.scripted.requests_for(queued_model) == []
    assert faults(caplog) == []


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
