"""``assistd_client`` (clients/python): the SDK's clients plus ``client.assistants``.

The distribution on its own (a wheel that holds the package and its ``py.typed`` and depends
only on ``openai``), its types as a strict mypy user sees them, and what it sends: each call
goes to a live assistd and the JSON body is read off the wire with an httpx request hook.
What the server does with ``assistant`` is tested in ``tests/api/test_chat_assistant.py``;
the migration note's programs run in ``test_migration_note.py``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import secrets
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.resources.chat.completions import AsyncCompletions, Completions
from openai.types.chat import ChatCompletion, ChatCompletionChunk

import assistd_client
from assistd.backends.scripted import text_reply
from tests.conftest import LiveServer

CLIENT_DIR = Path(__file__).resolve().parents[2] / "clients" / "python"
USER: list[Any] = [{"role": "user", "content": "Hello from Assistants API!"}]


def new_model() -> str:
    return f"client-{secrets.token_hex(5)}"


class Wire:
    """The JSON bodies the client sent, and the threads that sent them."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.threads: list[int] = []

    def record(self, request: httpx.Request) -> None:
        self.bodies.append(json.loads(request.content))
        self.threads.append(threading.get_ident())

    async def arecord(self, request: httpx.Request) -> None:
        self.record(request)


@pytest.fixture
def key(server: LiveServer) -> str:
    return server.new_key("proj_" + secrets.token_hex(6))


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
def client(server: LiveServer, key: str, wire: Wire) -> Iterator[assistd_client.OpenAI]:
    with assistd_client.OpenAI(
        base_url=server.base_url,
        api_key=key,
        max_retries=0,
        _strict_response_validation=True,
        http_client=httpx.Client(event_hooks={"request": [wire.record]}),
    ) as made:
        yield made


def async_client(server: LiveServer, key: str, wire: Wire) -> assistd_client.AsyncOpenAI:
    return assistd_client.AsyncOpenAI(
        base_url=server.base_url,
        api_key=key,
        max_retries=0,
        _strict_response_validation=True,
        http_client=httpx.AsyncClient(event_hooks={"request": [wire.arecord]}),
    )


@pytest.fixture
def assistant(client: assistd_client.OpenAI) -> str:
    """A real assistant of the client's project (so the calls hold once the server reads it)."""
    return client.beta.assistants.create(model=new_model()).id


def text_of(completion: ChatCompletion) -> str | None:
    return completion.choices[0].message.content


# ---- the distribution --------------------------------------------------------------------


def test_wheel_holds_the_typed_package_and_depends_only_on_openai(tmp_path: Path) -> None:
    # Built from a copy: setuptools writes build/ and egg-info next to the sources it builds.
    source = shutil.copytree(
        CLIENT_DIR, tmp_path / "source", ignore=shutil.ignore_patterns("*.egg-info", "build")
    )
    out = tmp_path / "wheels"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    built = subprocess.run(
        [*command, "-q", "-w", str(out), str(source)], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = out.glob("*.whl")
    assert wheel.name == "assistd_client-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read("assistd_client-0.1.0.dist-info/METADATA").decode()
    assert {"assistd_client/__init__.py", "assistd_client/py.typed"} <= names
    assert not any(name.startswith("assistd/") for name in names)
    headers = [line.split(": ", 1) for line in metadata.splitlines() if ": " in line]
    assert [value for name, value in headers if name == "Requires-Dist"] == ["openai>=1.59"]
    assert ["Name", "assistd-client"] in headers
    assert ["Requires-Python", ">=3.9"] in headers
    assert ["License-Expression", "Apache-2.0"] in headers


@pytest.mark.parametrize("resource", [Completions, AsyncCompletions])
def test_options_are_every_sdk_keyword(resource: type[Any]) -> None:
    # When the SDK gains a keyword, this says so (at run time it is passed through anyway).
    sdk = set(inspect.signature(resource.create).parameters)
    named = {"self", "messages", "model", "stream", "extra_body"}
    assert set(assistd_client.ChatCompletionOptions.__annotations__) == sdk - named


# ---- types, as a mypy --strict user sees them ---------------------------------------------

TYPED_USE = """
from __future__ import annotations

from openai import AsyncStream, Stream
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from assistd_client import AsyncOpenAI, ChatCompletionOptions, OpenAI

USER = [{"role": "user", "content": "hi"}]


def sync_use(client: OpenAI, flag: bool) -> None:
    completions = client.assistants.chat.completions
    plain: ChatCompletion = completions.create(
        assistant="asst_x",
        messages=[{"role": "user", "content": "hi"}],
        temperature=0.2,
        tool_choice="auto",
        extra_headers={"X-Trace": "1"},
        extra_body={"x": 1},
        timeout=5,
    )
    overridden: ChatCompletion = completions.create(
        assistant="asst_x", model="gpt-4o", messages=[], stream=False
    )
    stream: Stream[ChatCompletionChunk] = completions.create(
        assistant="asst_x", messages=[], stream=True, stream_options={"include_usage": True}
    )
    either: ChatCompletion | Stream[ChatCompletionChunk] = completions.create(
        assistant="asst_x", messages=[], stream=flag
    )
    options: ChatCompletionOptions = {"max_completion_tokens": 10}
    from_options: ChatCompletion = completions.create(assistant="asst_x", messages=[], **options)
    copied: OpenAI = client.with_options(timeout=5)
    again: ChatCompletion = copied.assistants.chat.completions.create(
        assistant="asst_x", messages=[]
    )
    stock: ChatCompletion = client.chat.completions.create(model="m", messages=[])


async def async_use(client: AsyncOpenAI, sync_client: OpenAI) -> None:
    completions = client.assistants.chat.completions
    plain: ChatCompletion = await completions.create(assistant="asst_x", messages=[])
    spelled: ChatCompletion = await completions.acreate(assistant="asst_x", messages=[])
    stream: AsyncStream[ChatCompletionChunk] = await completions.create(
        assistant="asst_x", messages=[], stream=True
    )
    threaded: ChatCompletion = await sync_client.assistants.chat.completions.acreate(
        assistant="asst_x", messages=[]
    )
    threaded_stream: Stream[ChatCompletionChunk] = (
        await sync_client.assistants.chat.completions.acreate(
            assistant="asst_x", messages=[], stream=True
        )
    )
    copied: AsyncOpenAI = client.copy(max_retries=1)
"""

# Each line must be an error: (what it gets wrong, the line).
WRONG_USES = [
    (
        "acreate without await",
        "bad1: ChatCompletion = sync_client.assistants.chat.completions.acreate("
        "assistant='a', messages=[])",
    ),
    (
        "async create without await",
        "bad2: ChatCompletion = client.assistants.chat.completions.create("
        "assistant='a', messages=[])",
    ),
    (
        "a stream taken for a completion",
        "bad3: ChatCompletion = sync_client.assistants.chat.completions.create("
        "assistant='a', messages=[], stream=True)",
    ),
    (
        "no assistant",
        "bad4 = sync_client.assistants.chat.completions.create(messages=[])",
    ),
    (
        "an unknown keyword",
        "bad5 = sync_client.assistants.chat.completions.create("
        "assistant='a', messages=[], temprature=0.2)",
    ),
    (
        "a keyword of the wrong type",
        "bad6 = sync_client.assistants.chat.completions.create("
        "assistant='a', messages=[], temperature='hot')",
    ),
]

WRONG_HEADER = """
from openai.types.chat import ChatCompletion

from assistd_client import AsyncOpenAI, OpenAI


async def wrong(client: AsyncOpenAI, sync_client: OpenAI) -> None:
"""


def test_types_for_a_strict_mypy_user(tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text(TYPED_USE)
    wrong = WRONG_HEADER + "".join(f"    {line}\n" for _, line in WRONG_USES)
    (tmp_path / "wrong.py").write_text(wrong)
    first_wrong = WRONG_HEADER.count("\n") + 1
    # An explicit config: no pyproject.toml of this repository (or above tmp_path) applies.
    (tmp_path / "mypy.ini").write_text("[mypy]\nstrict = True\n")
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            "mypy.ini",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-error-summary",
            "--hide-error-context",
            "good.py",
            "wrong.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert checked.stderr == ""
    errors = [line for line in checked.stdout.splitlines() if ": error: " in line]
    assert not [line for line in errors if not line.startswith("wrong.py:")], checked.stdout
    flagged = {int(line.split(":")[1]) for line in errors}
    expected = {first_wrong + index: what for index, (what, _) in enumerate(WRONG_USES)}
    assert {expected[n] for n in flagged} == set(expected.values()), checked.stdout


# ---- the SDK, untouched ------------------------------------------------------------------


def test_stock_chat_completions_still_work(
    client: assistd_client.OpenAI, server: LiveServer, wire: Wire
) -> None:
    model = new_model()
    server.scripted.queue(text_reply("Hello back."), model=model)
    completion = client.chat.completions.create(model=model, messages=USER)
    assert isinstance(completion, ChatCompletion)
    assert text_of(completion) == "Hello back."
    assert wire.bodies == [{"model": model, "messages": USER}]


def test_copies_keep_the_class_and_assistants(
    client: assistd_client.OpenAI, server: LiveServer, assistant: str, wire: Wire
) -> None:
    assert client.assistants is client.assistants
    assert client.assistants.chat.completions is client.assistants.chat.completions
    copied = client.with_options(timeout=5)
    assert type(copied) is assistd_client.OpenAI
    assert type(client.copy(max_retries=1)) is assistd_client.OpenAI
    model = new_model()
    server.scripted.queue(text_reply("From a copy."), model=model)
    completion = copied.assistants.chat.completions.create(
        assistant=assistant, model=model, messages=USER
    )
    assert text_of(completion) == "From a copy."
    assert wire.bodies[-1]["assistant"] == assistant


def test_async_copies_keep_the_class_and_assistants() -> None:
    client = assistd_client.AsyncOpenAI(api_key="sk-unused", base_url="http://127.0.0.1:9/v1")
    copied = client.with_options(timeout=5)
    assert type(copied) is assistd_client.AsyncOpenAI
    assert isinstance(copied.assistants, assistd_client.AsyncAssistants)
    assert copied.assistants.chat.completions.acreate == copied.assistants.chat.completions.create
    asyncio.run(client.close())


# ---- client.assistants.chat.completions ------------------------------------------------


def test_create_sends_assistant_in_the_body(
    client: assistd_client.OpenAI, server: LiveServer, assistant: str, wire: Wire
) -> None:
    model = new_model()
    server.scripted.queue(text_reply("Hello from an assistant."), model=model)
    completion = client.assistants.chat.completions.create(
        assistant=assistant, model=model, messages=USER, temperature=0.5
    )
    assert isinstance(completion, ChatCompletion)
    assert text_of(completion) == "Hello from an assistant."
    assert completion.model == model
    assert wire.bodies[-1] == {
        "model": model,
        "messages": USER,
        "temperature": 0.5,
        "assistant": assistant,
    }


def test_extra_body_is_merged(
    client: assistd_client.OpenAI, server: LiveServer, assistant: str, wire: Wire
) -> None:
    model = new_model()
    server.scripted.queue(text_reply("One."), text_reply("Two."), model=model)
    extra = {"x_trace": "abc"}
    completions = client.assistants.chat.completions
    completions.create(assistant=assistant, model=model, messages=USER, extra_body=extra)
    assert wire.bodies[-1] == {
        "model": model,
        "messages": USER,
        "assistant": assistant,
        "x_trace": "abc",
    }
    assert extra == {"x_trace": "abc"}
    # The caller's extra_body wins over the named parameter, as it does in the SDK.
    other = client.beta.assistants.create(model=model).id
    completions.create(
        assistant=assistant, model=model, messages=USER, extra_body={"assistant": other}
    )
    assert wire.bodies[-1]["assistant"] == other


def test_model_defaults_to_the_assistants(
    client: assistd_client.OpenAI, server: LiveServer, wire: Wire
) -> None:
    model = new_model()
    assistant = client.beta.assistants.create(model=model, instructions="Be kind.").id
    server.scripted.queue(text_reply("Kindly."), model=model)
    completion = client.assistants.chat.completions.create(assistant=assistant, messages=USER)
    assert text_of(completion) == "Kindly."
    assert completion.model == model
    assert wire.bodies[-1] == {"model": "", "messages": USER, "assistant": assistant}
    [sent] = server.scripted.requests_for(model)
    assert sent.messages == [{"role": "system", "content": "Be kind."}, *USER]


def test_stream(
    client: assistd_client.OpenAI, server: LiveServer, assistant: str, wire: Wire
) -> None:
    model = new_model()
    server.scripted.queue(text_reply("Streamed to you."), model=model)
    stream = client.assistants.chat.completions.create(
        assistant=assistant, model=model, messages=USER, stream=True
    )
    assert isinstance(stream, openai.Stream)
    chunks = list(stream)
    assert chunks
    assert all(isinstance(chunk, ChatCompletionChunk) for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Streamed to you."
    assert wire.bodies[-1] == {
        "model": model,
        "messages": USER,
        "stream": True,
        "assistant": assistant,
    }


def test_acreate_on_the_sync_client_runs_in_a_thread(
    client: assistd_client.OpenAI, server: LiveServer, assistant: str, wire: Wire
) -> None:
    model = new_model()
    server.scripted.queue(text_reply("Async hello back."), text_reply("Streamed."), model=model)
    completions = client.assistants.chat.completions

    async def main() -> tuple[ChatCompletion, list[ChatCompletionChunk], int]:
        completion = await completions.acreate(assistant=assistant, model=model, messages=USER)
        stream = await completions.acreate(
            assistant=assistant, model=model, messages=USER, stream=True
        )
        return completion, list(stream), threading.get_ident()

    completion, chunks, loop_thread = asyncio.run(main())
    assert isinstance(completion, ChatCompletion)
    assert text_of(completion) == "Async hello back."
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Streamed."
    assert [body["assistant"] for body in wire.bodies[-2:]] == [assistant, assistant]
    assert wire.bodies[-1]["stream"] is True
    # Sent from a worker thread: the event loop was free meanwhile.
    assert loop_thread not in wire.threads[-2:]


def test_async_client(server: LiveServer, key: str, assistant: str, wire: Wire) -> None:
    model = new_model()
    server.scripted.queue(
        text_reply("First."), text_reply("Second."), text_reply("Third."), model=model
    )

    async def main() -> tuple[ChatCompletion, ChatCompletion, list[ChatCompletionChunk]]:
        async with async_client(server, key, wire) as client:
            completions = client.assistants.chat.completions
            created = await completions.create(assistant=assistant, model=model, messages=USER)
            spelled = await completions.acreate(
                assistant=assistant, model=model, messages=USER, extra_body={"x_trace": "t"}
            )
            stream = await completions.create(
                assistant=assistant, model=model, messages=USER, stream=True
            )
            assert isinstance(stream, openai.AsyncStream)
            return created, spelled, [chunk async for chunk in stream]

    created, spelled, chunks = asyncio.run(main())
    assert (text_of(created), text_of(spelled)) == ("First.", "Second.")
    assert all(isinstance(chunk, ChatCompletionChunk) for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Third."
    assert wire.bodies[-3:] == [
        {"model": model, "messages": USER, "assistant": assistant},
        {"model": model, "messages": USER, "assistant": assistant, "x_trace": "t"},
        {"model": model, "messages": USER, "stream": True, "assistant": assistant},
    ]
