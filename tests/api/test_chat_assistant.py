"""Chat Completions addressed to an assistant (``assistant`` in the body), with the stock SDK.

The stock SDK sends it as ``extra_body={"assistant": id}`` with ``model=""``; the light
client (``assistd_client``, tested in ``tests/clients``) wraps exactly that. Each test
scripts its own model name on the shared ``ScriptedBackend`` and reads back what reached
the model; file_search runs on real ingestion, code_interpreter in the real sandbox.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx
import openai
import pydantic
import pytest
from openai.types.chat import ChatCompletion

from assistd.backends.base import Usage
from assistd.backends.scripted import Reply, ScriptedCall, text_reply, tool_reply
from assistd.sandbox.bubblewrap import unavailable_reason
from tests.api.test_chat_completions import GET_TIME, GET_WEATHER
from tests.api.vs_support import stores, upload, wait_until
from tests.conftest import ClientFactory, LiveServer, assert_error

USER = [{"role": "user", "content": "How much vacation do I get?"}]
HANDBOOK = (
    "Employee handbook. Paid leave: every employee gets 25 days of paid vacation per year. "
    "Unused vacation days carry over to the next year, up to five days."
)
RECIPES = (
    "Kitchen notes. To bake sourdough bread, feed the starter the night before, then mix "
    "flour, water and salt, fold every half hour and bake at 250 degrees."
)
NO_SANDBOX = unavailable_reason()


def new_model() -> str:
    return f"asst-chat-{secrets.token_hex(5)}"


def ask(client: openai.OpenAI, assistant_id: str, **kwargs: Any) -> ChatCompletion:
    """The stock SDK's way: no model, the assistant in the body."""
    kwargs.setdefault("messages", USER)
    return client.chat.completions.create(
        model=kwargs.pop("model", ""), extra_body={"assistant": assistant_id}, **kwargs
    )


def annotations(message: Any) -> list[dict[str, Any]]:
    """The message's annotations as sent (the SDK keeps the file members as extras)."""
    dumped: list[dict[str, Any]] = message.model_dump(exclude_unset=True).get("annotations") or []
    return dumped


def streamed(client: openai.OpenAI, assistant_id: str, **kwargs: Any) -> dict[str, Any]:
    """A streamed answer, gathered: text, annotations, calls, finish reason, usage."""
    stream = client.chat.completions.create(
        model="",
        messages=kwargs.pop("messages", USER),
        stream=True,
        extra_body={"assistant": assistant_id},
        **kwargs,
    )
    out: dict[str, Any] = {"text": "", "annotations": [], "calls": {}, "chunks": 0}
    for chunk in stream:
        out["chunks"] += 1
        out["model"] = chunk.model
        if chunk.usage is not None:
            out["usage"] = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            out["text"] += delta.content or ""
            out["annotations"] += (delta.model_extra or {}).get("annotations") or []
            for call in delta.tool_calls or []:
                entry = out["calls"].setdefault(call.index, {"name": "", "arguments": ""})
                if call.function is not None:
                    entry["name"] += call.function.name or ""
                    entry["arguments"] += call.function.arguments or ""
            if choice.finish_reason is not None:
                out["finish"] = choice.finish_reason
    return out


def search_store(client: openai.OpenAI) -> tuple[str, str]:
    handbook = upload(client, "handbook.txt", HANDBOOK)
    recipes = upload(client, "recipes.md", RECIPES)
    store = stores(client).create(name="docs", file_ids=[handbook, recipes])
    wait_until(lambda: stores(client).retrieve(store.id).file_counts.completed == 2, timeout=60)
    return store.id, handbook


def searcher(client: openai.OpenAI, model: str, store_id: str | None) -> str:
    resources = {"file_search": {"vector_store_ids": [store_id]}} if store_id else None
    return client.beta.assistants.create(
        model=model,
        tools=[{"type": "file_search"}, GET_WEATHER],  # type: ignore[list-item]
        tool_resources=resources,  # type: ignore[arg-type]
    ).id


# --- the assistant's settings ---------------------------------------------------------------


def test_answers_with_the_assistants_model_instructions_and_settings(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = new_model()
    assistant = client.beta.assistants.create(
        model=model,
        instructions="Talk like a pirate.",
        temperature=0.3,
        top_p=0.9,
        response_format={"type": "json_object"},
    )
    server.scripted.queue(text_reply('{"answer": "Arr, 25 days."}'), model=model)
    completion = ask(client, assistant.id)
    assert completion.model == model
    assert completion.object == "chat.completion"
    [choice] = completion.choices
    assert choice.message.content == '{"answer": "Arr, 25 days."}'
    assert choice.finish_reason == "stop"
    assert choice.message.tool_calls is None
    assert annotations(choice.message) == []
    [sent] = server.scripted.requests_for(model)
    assert sent.messages == [{"role": "system", "content": "Talk like a pirate."}, *USER]
    assert (sent.temperature, sent.top_p) == (0.3, 0.9)
    assert sent.response_format == {"type": "json_object"}
    assert (sent.tools, sent.tool_choice) == ([], None)


def test_request_settings_and_model_override_the_assistants(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model, other = new_model(), new_model()
    assistant = client.beta.assistants.create(
        model=model, instructions="Be brief.", temperature=0.3, top_p=0.9
    )
    server.scripted.queue(text_reply("Short."), model=other)
    completion = ask(
        client,
        assistant.id,
        model=other,
        temperature=1.2,
        response_format={"type": "text"},
        messages=[{"role": "system", "content": "And polite."}, *USER],
    )
    assert completion.model == other
    assert completion.choices[0].message.content == "Short."
    assert server.scripted.requests_for(model) == []
    [sent] = server.scripted.requests_for(other)
    assert [m["content"] for m in sent.messages[:2]] == ["Be brief.", "And polite."]
    assert (sent.temperature, sent.top_p) == (1.2, 0.9)
    assert sent.response_format == {"type": "text"}


def test_wire_format_without_model(server: LiveServer, http: httpx.Client) -> None:
    model = new_model()
    created = http.post("/assistants", json={"model": model})
    assert created.status_code == 200, created.text
    server.scripted.queue(text_reply("Hi."), model=model)
    for body in ({}, {"model": ""}, {"model": None}):
        server.scripted.queue(text_reply("Hi."), model=model)
        response = http.post(
            "/chat/completions",
            json={"assistant": created.json()["id"], "messages": USER, **body},
        )
        assert response.status_code == 200, response.text
        data = response.json()
        assert data["model"] == model
        assert data["choices"][0]["message"] == {
            "role": "assistant",
            "content": "Hi.",
            "refusal": None,
            "annotations": [],
        }


# --- function tools come back to the caller -------------------------------------------------


def test_function_call_round_trip(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    assistant = client.beta.assistants.create(
        model=model, instructions="Use tools.", tools=[GET_WEATHER]
    )
    server.scripted.queue(
        tool_reply(("get_weather", {"city": "Paris"})), text_reply("Sunny in Paris."), model=model
    )
    first = ask(client, assistant.id, tools=[GET_TIME])
    [choice] = first.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    offered = server.scripted.requests_for(model)[0].tools
    assert [t["function"]["name"] for t in offered] == ["get_weather", "get_time"]

    conversation: list[Any] = [
        *USER,
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
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24 C"},
    ]
    second = ask(client, assistant.id, messages=conversation)
    assert second.choices[0].message.content == "Sunny in Paris."
    assert second.choices[0].finish_reason == "stop"
    sent = server.scripted.requests_for(model)[1]
    assert sent.messages[0] == {"role": "system", "content": "Use tools."}
    assert sent.messages[-1] == {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24 C"}


def test_streamed_function_call(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    assistant = client.beta.assistants.create(model=model, tools=[GET_WEATHER])
    server.scripted.queue(tool_reply(("get_weather", {"city": "Oslo"})), model=model)
    out = streamed(client, assistant.id)
    assert out["finish"] == "tool_calls"
    assert out["calls"] == {0: {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    assert out["text"] == ""


def test_stream_with_usage(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    assistant = client.beta.assistants.create(model=model, instructions="Greet.")
    usage = Usage(prompt_tokens=11, completion_tokens=4)
    server.scripted.queue(text_reply("Hello there, sailor.", usage=usage), model=model)
    out = streamed(client, assistant.id, stream_options={"include_usage": True})
    assert out["text"] == "Hello there, sailor."
    assert out["chunks"] >= 5  # role, three words, finish, usage: streamed, not one piece
    assert out["finish"] == "stop"
    assert out["model"] == model
    assert (out["usage"].prompt_tokens, out["usage"].completion_tokens) == (11, 4)
    assert out["usage"].total_tokens == 15


# --- file_search runs in the server -----------------------------------------------------------


def test_file_search_answer_cites_files(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    store_id, handbook = search_store(client)
    model = new_model()
    assistant_id = searcher(client, model, store_id)
    server.scripted.queue(
        tool_reply(
            ("file_search", {"queries": ["how many vacation days"]}),
            usage=Usage(prompt_tokens=20, completion_tokens=5),
        ),
        text_reply(
            "You get 25 days【0:0†source】 of leave.",
            usage=Usage(prompt_tokens=300, completion_tokens=9),
        ),
        model=model,
    )
    completion = ask(client, assistant_id)
    message = completion.choices[0].message
    assert message.content == "You get 25 days[1] of leave."
    assert message.tool_calls is None
    assert completion.choices[0].finish_reason == "stop"
    url = f"{server.base_url}/files/{handbook}/content"
    assert annotations(message) == [
        {
            "type": "url_citation",
            "url_citation": {
                "url": url,
                "title": "handbook.txt",
                "start_index": 15,
                "end_index": 18,
            },
            "file_citation": {"file_id": handbook},
        }
    ]
    assert message.content[15:18] == "[1]"
    assert http.get(url).content == HANDBOOK.encode()
    # Both model calls are counted.
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (320, 14)
    assert completion.usage.total_tokens == 334

    first, second = server.scripted.requests_for(model)
    assert [t["function"]["name"] for t in first.tools] == ["get_weather", "file_search"]
    called = second.messages[-2]
    assert called["role"] == "assistant"
    assert called["tool_calls"][0]["function"]["name"] == "file_search"
    shown = second.messages[-1]
    assert shown["role"] == "tool"
    assert shown["tool_call_id"] == called["tool_calls"][0]["id"]
    assert shown["content"].startswith("【0:0†handbook.txt】")
    assert "25 days of paid vacation" in shown["content"]


def test_streamed_file_search_answer(client: openai.OpenAI, server: LiveServer) -> None:
    store_id, handbook = search_store(client)
    model = new_model()
    assistant_id = searcher(client, model, store_id)
    answer = "Leave is 25 days 【0:0†handbook】 and carries over 【0:0†handbook】, see 【7:7†x】."
    server.scripted.queue(
        Reply(text="Let me look.", tool_calls=[ScriptedCall("file_search", {"query": "leave"})]),
        text_reply(answer),
        model=model,
    )
    out = streamed(client, assistant_id, stream_options={"include_usage": True})
    # Text of both rounds, one paragraph each; one number per cited file; an unknown
    # marker stays as written.
    text = "Let me look.\n\nLeave is 25 days [1] and carries over [1], see 【7:7†x】."
    assert out["text"] == text
    assert out["finish"] == "stop"
    spans = [
        (a["url_citation"]["start_index"], a["url_citation"]["end_index"])
        for a in out["annotations"]
    ]
    assert [text[s:e] for s, e in spans] == ["[1]", "[1]"]
    assert {a["file_citation"]["file_id"] for a in out["annotations"]} == {handbook}
    assert out["usage"].total_tokens > 0


class Leave(pydantic.BaseModel):
    days: int


@pytest.mark.sdk3
def test_sdk_stream_and_parse_helpers(client: openai.OpenAI, server: LiveServer) -> None:
    store_id, handbook = search_store(client)
    model = new_model()
    assistant_id = searcher(client, model, store_id)
    server.scripted.queue(
        tool_reply(("file_search", {"queries": ["vacation"]})),
        text_reply("You get 25 days【0:0†source】 of leave."),
        text_reply('{"days": 25}'),
        model=model,
    )
    with client.chat.completions.stream(
        model="", messages=USER, extra_body={"assistant": assistant_id}
    ) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "You get 25 days[1] of leave."
    [note] = annotations(message)
    assert note["file_citation"] == {"file_id": handbook}
    assert note["url_citation"]["start_index"] == 15

    parsed = client.chat.completions.parse(
        model="", messages=USER, response_format=Leave, extra_body={"assistant": assistant_id}
    )
    assert parsed.choices[0].message.parsed == Leave(days=25)
    sent = server.scripted.requests_for(model)[-1].response_format
    assert sent is not None
    assert sent["type"] == "json_schema"


def test_builtin_calls_are_bounded(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    assistant_id = searcher(client, model, None)
    search = tool_reply(("file_search", {"queries": ["again"]}))
    server.scripted.queue(*[search] * 8, text_reply("I could not find it."), model=model)
    completion = ask(client, assistant_id)
    assert completion.choices[0].message.content == "I could not find it."
    sent = server.scripted.requests_for(model)
    assert len(sent) == 9
    assert all("file_search" in [t["function"]["name"] for t in r.tools] for r in sent[:8])
    assert [t["function"]["name"] for t in sent[8].tools] == ["get_weather"]
    assert sent[1].messages[-1]["content"] == "No files are attached to this assistant or thread."


def test_function_calls_win_over_builtin_calls_made_with_them(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = new_model()
    assistant_id = searcher(client, model, None)
    server.scripted.queue(
        tool_reply(("file_search", {"queries": ["x"]}), ("get_weather", {"city": "Rome"})),
        model=model,
    )
    completion = ask(client, assistant_id)
    [call] = completion.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"
    assert completion.choices[0].finish_reason == "tool_calls"
    assert len(server.scripted.requests_for(model)) == 1


def test_tool_choice_can_force_a_builtin_once(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    assistant_id = searcher(client, model, None)
    server.scripted.queue(
        tool_reply(("file_search", {"queries": ["x"]})), text_reply("Nothing."), model=model
    )
    forced = {"type": "function", "function": {"name": "file_search"}}
    completion = ask(client, assistant_id, tool_choice=forced)
    assert completion.choices[0].message.content == "Nothing."
    first, second = server.scripted.requests_for(model)
    assert (first.tool_choice, second.tool_choice) == (forced, "auto")


def test_completion_budget_covers_every_round(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    assistant_id = searcher(client, model, None)
    server.scripted.queue(
        tool_reply(
            ("file_search", {"queries": ["x"]}), usage=Usage(prompt_tokens=3, completion_tokens=4)
        ),
        text_reply("One two three four five six"),
        model=model,
    )
    completion = ask(client, assistant_id, max_completion_tokens=6)
    first, second = server.scripted.requests_for(model)
    assert (first.max_tokens, second.max_tokens) == (6, 2)
    assert completion.choices[0].message.content == "One two "
    assert completion.choices[0].finish_reason == "length"


# --- code_interpreter runs in a sandbox of the request's own ----------------------------------


@pytest.mark.skipif(NO_SANDBOX is not None, reason=f"no sandbox here: {NO_SANDBOX}")
def test_code_interpreter_files_are_named_in_annotations(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = new_model()
    data = client.files.create(file=("rows.csv", b"a,b\n1,2\n3,4\n"), purpose="assistants").id
    assistant = client.beta.assistants.create(
        model=model,
        tools=[{"type": "code_interpreter"}],
        tool_resources={"code_interpreter": {"file_ids": [data]}},
    )
    code = (
        "import os\n"
        "print(sorted(os.listdir('/mnt/data')))\n"
        "rows = open('/mnt/data/rows.csv').read().splitlines()\n"
        "open('/mnt/data/count.txt', 'w').write(str(len(rows) - 1))\n"
        "open('/mnt/data/extra.txt', 'w').write('more')\n"
        "secret = 42"
    )
    server.scripted.queue(
        tool_reply(("python", {"code": code})),
        text_reply("Counted: [count](sandbox:/mnt/data/count.txt)."),
        model=model,
    )
    completion = ask(client, assistant.id)
    text = completion.choices[0].message.content
    assert text == "Counted: [count](sandbox:/mnt/data/count.txt)."
    linked, unlinked = annotations(completion.choices[0].message)
    link = linked["url_citation"]
    assert text[link["start_index"] : link["end_index"]] == "sandbox:/mnt/data/count.txt"
    assert link["title"] == "count.txt"
    assert unlinked["url_citation"]["title"] == "extra.txt"
    ends = (unlinked["url_citation"]["start_index"], unlinked["url_citation"]["end_index"])
    assert ends == (len(text), len(text))
    count = client.files.retrieve(linked["file_path"]["file_id"])
    assert count.purpose == "assistants_output"
    assert client.files.content(count.id).content == b"2"
    assert client.files.content(unlinked["file_path"]["file_id"]).content == b"more"
    shown = server.scripted.requests_for(model)[1].messages[-1]["content"]
    assert "['rows.csv']" in shown

    # The next request has a kernel of its own: nothing of the last one is left.
    probe = "import os\nprint(os.path.exists('/mnt/data/count.txt'), 'secret' in globals())"
    server.scripted.queue(tool_reply(("python", {"code": probe})), text_reply("ok"), model=model)
    ask(client, assistant.id)
    assert "False False" in server.scripted.requests_for(model)[3].messages[-1]["content"]


# --- refusals -----------------------------------------------------------------------------------


def test_unknown_assistant_is_400(server: LiveServer, http: httpx.Client) -> None:
    model = new_model()
    for assistant_id in ("asst_doesnotexist", "not-an-id", ""):
        response = http.post(
            "/chat/completions", json={"assistant": assistant_id, "model": model, "messages": USER}
        )
        body = assert_error(response, 400, param="assistant")
        assert f"'{assistant_id}'" in body["message"]
    assert server.scripted.requests_for(model) == []


def test_another_projects_assistant_is_refused(
    client: openai.OpenAI, make_client: ClientFactory, server: LiveServer
) -> None:
    model = new_model()
    theirs = client.beta.assistants.create(model=model).id
    other = make_client()
    with pytest.raises(openai.BadRequestError) as caught:
        ask(other, theirs)
    assert caught.value.status_code == 400
    assert caught.value.body is not None
    assert caught.value.body["param"] == "assistant"  # type: ignore[index]
    assert theirs in caught.value.message
    assert server.scripted.requests_for(model) == []


@pytest.mark.parametrize("body", [{}, {"model": ""}, {"model": None}])
def test_neither_model_nor_assistant_is_400(http: httpx.Client, body: dict[str, Any]) -> None:
    response = http.post("/chat/completions", json={"messages": USER, **body})
    assert_error(response, 400, param="model", code="missing_required_parameter")


def test_tool_choice_must_name_an_offered_function(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    model = new_model()
    assistant_id = client.beta.assistants.create(model=model, tools=[GET_WEATHER]).id
    missing = {"type": "function", "function": {"name": "get_time"}}
    response = http.post(
        "/chat/completions",
        json={"assistant": assistant_id, "messages": USER, "tool_choice": missing},
    )
    assert_error(response, 400, param="tool_choice", code="invalid_value")
    bare = client.beta.assistants.create(model=model).id
    response = http.post(
        "/chat/completions",
        json={"assistant": bare, "messages": USER, "tool_choice": "required"},
    )
    assert_error(response, 400, param="tool_choice", code="invalid_value")
    assert server.scripted.requests_for(model) == []
