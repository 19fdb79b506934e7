"""The file_search tool in runs: real ingestion and retrieval, a scripted model.

The model is scripted to call file_search and then to answer with a citation marker; what
is under test is everything around it: which stores are searched, what the run step
records, what the model is shown, and the file_citation annotations (exact indices, in the
stream too).
"""

from __future__ import annotations

import json
from typing import Any

import openai

from assistd.backends.scripted import text_reply, tool_reply
from tests.api.vs_support import stores, wait_until
from tests.conftest import LiveServer

HANDBOOK = (
    "Employee handbook. Paid leave: every employee gets 25 days of paid vacation per year. "
    "Unused vacation days carry over to the next year, up to five days."
)
RECIPES = (
    "Kitchen notes. To bake sourdough bread, feed the starter the night before, then mix "
    "flour, water and salt, fold every half hour and bake at 250 degrees."
)
CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


def _upload(client: openai.OpenAI, name: str, text: str) -> str:
    return client.files.create(file=(name, text.encode()), purpose="assistants").id


def _store(client: openai.OpenAI) -> tuple[str, str, str]:
    handbook = _upload(client, "handbook.txt", HANDBOOK)
    recipes = _upload(client, "recipes.md", RECIPES)
    store = stores(client).create(name="docs", file_ids=[handbook, recipes])
    wait_until(lambda: stores(client).retrieve(store.id).file_counts.completed == 2, timeout=60)
    return store.id, handbook, recipes


def _assistant(client: openai.OpenAI, store_id: str | None, **tool: Any) -> str:
    resources = {"file_search": {"vector_store_ids": [store_id]}} if store_id else None
    return client.beta.assistants.create(
        model="gpt-4o",
        tools=[{"type": "file_search", **tool}],  # type: ignore[list-item]
        tool_resources=resources,  # type: ignore[arg-type]
    ).id


def test_run_searches_and_cites_the_right_file(client: openai.OpenAI, server: LiveServer) -> None:
    store_id, handbook, _ = _store(client)
    assistant_id = _assistant(client, store_id)
    server.scripted.queue(
        tool_reply(("file_search", {"queries": ["how many vacation days"]})),
        text_reply("You get 25 days【0:0†source】 of leave."),
        model="gpt-4o",
    )
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant_id,
        thread={"messages": [{"role": "user", "content": "How much vacation do I get?"}]},
        poll_interval_ms=20,
    )
    assert run.status == "completed", run.last_error

    message = client.beta.threads.messages.list(run.thread_id, run_id=run.id).data[0]
    text = message.content[0]
    assert text.type == "text"
    value = text.text.value
    assert value == "You get 25 days【0:0†source】 of leave."
    [citation] = text.text.annotations
    assert citation.type == "file_citation"
    assert citation.file_citation.file_id == handbook
    assert citation.text == "【0:0†source】"
    assert value[citation.start_index : citation.end_index] == citation.text
    assert citation.end_index - citation.start_index == 12

    steps = client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id, order="asc")
    tool_step = steps.data[0]
    assert tool_step.type == "tool_calls"
    assert tool_step.status == "completed"
    assert tool_step.step_details.type == "tool_calls"
    [call] = tool_step.step_details.tool_calls
    assert call.type == "file_search"
    assert call.file_search.ranking_options is not None
    assert call.file_search.ranking_options.ranker == "default_2024_08_21"
    assert call.file_search.ranking_options.score_threshold == 0.0
    results = call.file_search.results or []
    assert results[0].file_id == handbook
    assert results[0].file_name == "handbook.txt"
    assert 0.0 <= results[0].score <= 1.0
    assert all(r.content is None for r in results)
    assert steps.data[1].type == "message_creation"

    # Result content only when include[] asks for it.
    included = client.beta.threads.runs.steps.retrieve(
        tool_step.id, thread_id=run.thread_id, run_id=run.id, include=[CONTENT]
    )
    assert included.step_details.type == "tool_calls"
    first = included.step_details.tool_calls[0]
    assert first.type == "file_search"
    assert first.file_search.results is not None
    assert first.file_search.results[0].content is not None
    assert "25 days" in (first.file_search.results[0].content[0].text or "")

    # The model saw the results under their markers, then answered.
    requests = server.scripted.requests_for("gpt-4o")[-2:]
    offered = [t["function"]["name"] for t in requests[0].tools]
    assert offered == ["file_search"]
    shown = requests[1].messages[-1]
    assert shown["role"] == "tool"
    assert shown["content"].startswith("【0:0†handbook.txt】")
    assert "25 days of paid vacation" in shown["content"]
    call_turn = requests[1].messages[-2]
    assert call_turn["tool_calls"][0]["function"]["name"] == "file_search"
    assert json.loads(call_turn["tool_calls"][0]["function"]["arguments"]) == {
        "queries": ["how many vacation days"]
    }


def test_citation_streams_whole_in_one_delta(client: openai.OpenAI, server: LiveServer) -> None:
    store_id, _, recipes = _store(client)
    assistant_id = _assistant(client, store_id)
    # The marker contains a space, so the scripted model streams it in two pieces.
    answer = "Bake hot 【0:0†kitchen notes】 and wait 【9:9†nothing】."
    server.scripted.queue(
        tool_reply(("file_search", {"queries": ["sourdough bread baking"]})),
        text_reply(answer),
        model="gpt-4o",
    )
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "How do I bake bread?"}]
    )
    deltas: list[Any] = []
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant_id) as stream:
        for event in stream:
            if event.event == "thread.message.delta":
                deltas.extend(event.data.delta.content or [])
        final = stream.get_final_messages()[0]
    pieces = [d.text for d in deltas if d.type == "text" and d.text]
    assert "".join(p.value or "" for p in pieces) == answer
    carrying = [p for p in pieces if p.annotations]
    assert len(carrying) == 1
    assert "【0:0†kitchen notes】" in (carrying[0].value or "")
    [note] = carrying[0].annotations or []
    assert note.type == "file_citation"
    assert note.index == 0
    assert note.file_citation is not None
    assert note.file_citation.file_id == recipes
    assert answer[note.start_index or 0 : note.end_index] == "【0:0†kitchen notes】"
    # A marker that names no result stays plain text.
    assert final.content[0].type == "text"
    assert [a.text for a in final.content[0].text.annotations] == ["【0:0†kitchen notes】"]


def test_thread_store_is_searched_and_named_tool_choice_forces_the_call(
    client: openai.OpenAI, server: LiveServer
) -> None:
    store_id, handbook, _ = _store(client)
    assistant_id = _assistant(client, None, file_search={"max_num_results": 1})
    server.scripted.queue(
        tool_reply(("file_search", {"queries": ["vacation"]})),
        text_reply("Done."),
        model="gpt-4o",
    )
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant_id,
        thread={
            "messages": [{"role": "user", "content": "Vacation?"}],
            "tool_resources": {"file_search": {"vector_store_ids": [store_id]}},
        },
        tool_choice={"type": "file_search"},
        poll_interval_ms=20,
    )
    assert run.status == "completed", run.last_error
    first, second = server.scripted.requests_for("gpt-4o")[-2:]
    assert first.tool_choice == {"type": "function", "function": {"name": "file_search"}}
    # Forcing again after the search would loop: the model answers next.
    assert second.tool_choice == "auto"
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id, order="asc")
    call = steps.data[0].step_details
    assert call.type == "tool_calls"
    assert call.tool_calls[0].type == "file_search"
    results = call.tool_calls[0].file_search.results or []
    assert [r.file_id for r in results] == [handbook]


def test_no_store_tells_the_model(client: openai.OpenAI, server: LiveServer) -> None:
    assistant_id = _assistant(client, None)
    server.scripted.queue(
        tool_reply(("file_search", {"queries": ["anything"]})),
        text_reply("Nothing to search."),
        model="gpt-4o",
    )
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant_id,
        thread={"messages": [{"role": "user", "content": "Search please"}]},
        poll_interval_ms=20,
    )
    assert run.status == "completed", run.last_error
    shown = server.scripted.requests_for("gpt-4o")[-1].messages[-1]
    assert shown["role"] == "tool"
    assert "No files" in shown["content"]


def _streamed_results(client: openai.OpenAI, server: LiveServer, include: list[str]) -> Any:
    store_id, _, _ = _store(client)
    assistant_id = _assistant(client, store_id)
    server.scripted.queue(
        tool_reply(("file_search", {"queries": ["vacation"]})),
        text_reply("Ok."),
        model="gpt-4o",
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Leave?"}])
    stream = client.beta.threads.runs.create(
        thread_id=thread.id,
        assistant_id=assistant_id,
        stream=True,
        include=include,  # type: ignore[arg-type]
    )
    completed = [
        e.data
        for e in stream
        if e.event == "thread.run.step.completed" and e.data.type == "tool_calls"
    ]
    details = completed[0].step_details
    assert details.type == "tool_calls"
    assert details.tool_calls[0].type == "file_search"
    return details.tool_calls[0].file_search.results


def test_streamed_step_has_content_only_when_included(
    client: openai.OpenAI, server: LiveServer
) -> None:
    plain = _streamed_results(client, server, [])
    assert plain
    assert all(r.content is None for r in plain)
    included = _streamed_results(client, server, [CONTENT])
    assert included[0].content is not None
    assert included[0].content[0].type == "text"


def test_attachments_make_and_extend_the_thread_store(
    client: openai.OpenAI, server: LiveServer
) -> None:
    handbook = _upload(client, "handbook.txt", HANDBOOK)
    recipes = _upload(client, "recipes.md", RECIPES)
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "Read this",
                "attachments": [{"file_id": handbook, "tools": [{"type": "file_search"}]}],
            }
        ]
    )
    assert thread.tool_resources is not None
    assert thread.tool_resources.file_search is not None
    [store_id] = thread.tool_resources.file_search.vector_store_ids or []
    store = stores(client).retrieve(store_id)
    assert store.expires_after is not None
    assert (store.expires_after.anchor, store.expires_after.days) == ("last_active_at", 7)
    # A later attachment joins the same store; one already there is not added twice, and
    # a code_interpreter-only attachment does not go to file search.
    client.beta.threads.messages.create(
        thread.id,
        role="user",
        content="And this",
        attachments=[
            {"file_id": recipes, "tools": [{"type": "file_search"}]},
            {"file_id": handbook, "tools": [{"type": "file_search"}]},
        ],
    )
    other = _upload(client, "other.txt", "Unrelated text.")
    client.beta.threads.messages.create(
        thread.id,
        role="user",
        content="Code only",
        attachments=[{"file_id": other, "tools": [{"type": "code_interpreter"}]}],
    )
    retrieved = client.beta.threads.retrieve(thread.id)
    assert retrieved.tool_resources is not None
    assert retrieved.tool_resources.file_search is not None
    assert retrieved.tool_resources.file_search.vector_store_ids == [store_id]
    files = stores(client).files.list(store_id)
    assert sorted(f.id for f in files.data) == sorted([handbook, recipes])

    # A run searches the attached files (waiting for their ingestion).
    assistant_id = _assistant(client, None)
    server.scripted.queue(
        tool_reply(("file_search", {"queries": ["sourdough"]})),
        text_reply("Bake it【0:0†source】."),
        model="gpt-4o",
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant_id, poll_interval_ms=20
    )
    assert run.status == "completed", run.last_error
    message = client.beta.threads.messages.list(thread.id, run_id=run.id).data[0]
    assert message.content[0].type == "text"
    [note] = message.content[0].text.annotations
    assert note.type == "file_citation"
    assert note.file_citation.file_id == recipes
