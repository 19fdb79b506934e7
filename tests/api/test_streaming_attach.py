"""assistd's stream attach: ``GET /v1/threads/{thread_id}/runs/{run_id}?stream=true``
replays a run's retained events from the first, or resumes after ``Last-Event-ID``,
and follows the run live until it ends or needs tool outputs: every event exactly once,
with the ids the original stream carried."""

from __future__ import annotations

from typing import Any

import httpx
import openai

from assistd.backends.scripted import text_reply
from tests.api.stream_support import (
    Frame,
    check_order,
    names,
    new_thread,
    parse_sse,
    read_stream,
    stream_post,
    unique_model,
    weather_requires_action,
)
from tests.conftest import LiveServer


def attach(
    http: httpx.Client, thread_id: str, run_id: str, last_event_id: str | None = None
) -> list[Frame]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    with http.stream(
        "GET", f"/threads/{thread_id}/runs/{run_id}", params={"stream": "true"}, headers=headers
    ) as response:
        return read_stream(response)


def _ids(frames: list[Frame]) -> list[str | None]:
    return [f.id for f in frames]


def test_attach_replays_a_finished_run_with_the_same_ids(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    model = unique_model()
    server.scripted.queue(text_reply("One two three."), model=model)
    assistant = client.beta.assistants.create(model=model)
    thread_id = new_thread(client)
    original = stream_post(http, f"/threads/{thread_id}/runs", {"assistant_id": assistant.id})
    run_id = original[0].data["id"]
    replay = attach(http, thread_id, run_id)
    assert replay == original
    assert _ids(replay) == _ids(original)
    assert all(f.id for f in original[:-1])
    assert original[-1].id is None  # [DONE] is not in the log
    check_order(replay)


def test_resuming_after_each_event_gives_exactly_the_rest(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    model = unique_model()
    server.scripted.queue(text_reply("Alpha beta gamma delta."), model=model)
    assistant = client.beta.assistants.create(model=model)
    thread_id = new_thread(client)
    original = stream_post(http, f"/threads/{thread_id}/runs", {"assistant_id": assistant.id})
    run_id = original[0].data["id"]
    for k, seen in enumerate(original[:-1]):
        rest = attach(http, thread_id, run_id, seen.id)
        assert rest == original[k + 1 :], f"resuming after {seen.event} ({seen.id})"
        assert _ids(rest) == _ids(original[k + 1 :])


def test_attach_follows_a_running_run_live(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    model = unique_model()
    words = " ".join(f"w{i}" for i in range(40))
    server.scripted.queue(text_reply(words, delay=0.02), model=model)
    assistant = client.beta.assistants.create(model=model)
    thread_id = new_thread(client)
    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant.id)
    # Cut a stream off mid-run, then resume where it stopped, on a new connection.
    first: list[str] = []
    with http.stream(
        "GET", f"/threads/{thread_id}/runs/{run.id}", params={"stream": "true"}
    ) as response:
        for line in response.iter_lines():
            first.append(line)
            if line == "event: thread.message.delta" and first.count(line) == 5:
                break
    head, _ = parse_sse(iter([*first[: first.index("event: thread.message.delta")], ""]))
    last_id = next(line for line in reversed(first) if line.startswith("id: "))[4:]
    seen = [line for line in first if line.startswith("id: ")]
    rest = attach(http, thread_id, run.id, last_id)
    assert names(rest)[-2:] == ["thread.run.completed", "done"]
    whole = attach(http, thread_id, run.id)
    # The cut stream's ids followed by the resumed one's are the whole log, once each.
    assert [line[4:] for line in seen] + _ids(rest) == _ids(whole)
    assert rest == whole[len(seen) :]
    check_order(whole)
    text = "".join(
        part["text"]["value"]
        for f in whole
        if f.event == "thread.message.delta"
        for part in f.data["delta"]["content"]
    )
    assert text == words
    assert head[0].event == "thread.run.created"


def test_attach_stops_at_requires_action_and_resumes_after_the_outputs(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    model = unique_model()
    thread_id, original = weather_requires_action(client, http, server, model)
    run_id = original[0].data["id"]
    assert attach(http, thread_id, run_id) == original
    parked = original[-2]
    assert parked.event == "thread.run.requires_action"
    # Nothing after the last event the client saw, and the run waits: only [DONE].
    assert names(attach(http, thread_id, run_id, parked.id)) == ["done"]
    call = parked.data["required_action"]["submit_tool_outputs"]["tool_calls"][0]
    submitted = stream_post(
        http,
        f"/threads/{thread_id}/runs/{run_id}/submit_tool_outputs",
        {"tool_outputs": [{"tool_call_id": call["id"], "output": "18C, sunny"}]},
    )
    # Resumed after requires_action, a stream relays the continuation like the
    # submitter's, with the same ids.
    resumed = attach(http, thread_id, run_id, parked.id)
    assert resumed == submitted
    assert _ids(resumed) == _ids(submitted)
    assert names(resumed)[-2:] == ["thread.run.completed", "done"]


def test_attach_errors(client: openai.OpenAI, server: LiveServer, http: httpx.Client) -> None:
    model = unique_model()
    server.scripted.queue(text_reply("Hi."), model=model)
    assistant = client.beta.assistants.create(model=model)
    thread_id = new_thread(client)
    original = stream_post(http, f"/threads/{thread_id}/runs", {"assistant_id": assistant.id})
    run_id = original[0].data["id"]
    bad = http.get(
        f"/threads/{thread_id}/runs/{run_id}",
        params={"stream": "true"},
        headers={"Last-Event-ID": "not-an-id"},
    )
    assert bad.status_code == 400
    error: dict[str, Any] = bad.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "Last-Event-ID"
    missing = http.get(f"/threads/{thread_id}/runs/run_missing", params={"stream": "true"})
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "invalid_request_error"
    # Without stream=true it is the plain retrieve the SDK uses.
    assert client.beta.threads.runs.retrieve(run_id, thread_id=thread_id).status == "completed"
