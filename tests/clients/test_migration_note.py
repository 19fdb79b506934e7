"""The seed migration note's two programs run against assistd.

``tests/data/migration_note`` holds them as the note writes them (its text lost the
indentation, restored there), with the two changes a user makes: the import line
(``assistd_client`` instead of ``openai``) and ``base_url``. The first test checks that
every other line is the note's own; the others run each program as a user would (a Python
process of its own, the placeholder assistant id replaced as the note says) against a live
server: once with a scripted OpenAI-compatible upstream that echoes the user's message, so
the output is exactly the one the note shows, and once with the embedded model.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from assistd.backends.factory import build_registry
from assistd.backends.openai_compat import OpenAICompatBackend
from assistd.backends.registry import BackendRegistry
from tests.conftest import LiveServer, make_settings
from tests.fake_upstream import FakeReply, FakeUpstream

NAME = "migrate-chat-completions-to-assistants.txt"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "seeds" / NAME
DATA = Path(__file__).resolve().parents[1] / "data"
NOTE = SHARED if SHARED.exists() else DATA / NAME
EXAMPLES = ("sync_example", "async_example")
PROGRAMS = {
    name: DATA / "migration_note" / f"{name}.py" for name in ("sync_example", "async_example")
}
# The two changes a user makes: the import, and base_url where the client is made.
CHANGES = (
    ("from assistd_client import OpenAI", "from openai import OpenAI"),
    (', base_url=os.environ["ASSISTD_BASE_URL"])', ")"),
)
INSTRUCTIONS = "You are a friendly assistant. Answer briefly."


def note_lines() -> list[str]:
    # The note's text glued the word "output" to the last line of each program.
    return [line.strip().removesuffix(" output") for line in NOTE.read_text().splitlines()]


def note_outputs() -> list[str]:
    """The output the note shows after each program, in order."""
    lines = NOTE.read_text().splitlines()
    return [lines[i + 1].strip() for i, line in enumerate(lines[:-1]) if line.endswith(") output")]


def test_programs_are_the_notes_own() -> None:
    lines = note_lines()
    for path in PROGRAMS.values():
        at = 0
        changed = 0
        for line in path.read_text().splitlines():
            wanted = line.strip()
            for ours, theirs in CHANGES:
                wanted = wanted.replace(ours, theirs)
            changed += wanted != line.strip()
            assert wanted in lines[at:], f"{path.name}: {line!r} is not the note's"
            at = lines.index(wanted, at) + 1
        assert changed == 2, path.name
    # Two programs, each with its output.
    assert len(note_outputs()) == 2


def run_program(name: str, server: LiveServer, key: str, assistant_id: str = "") -> str:
    """Run one program as a user would (the placeholder id replaced when one is given); its
    standard output, or its standard error when it failed."""
    code = PROGRAMS[name].read_text()
    if assistant_id:
        code = code.replace("your-assistant-id", assistant_id)
    env = {**os.environ, "OPENAI_API_KEY": key, "ASSISTD_BASE_URL": server.base_url}
    env.pop("OPENAI_BASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    if not assistant_id:
        assert done.returncode == 1, done.stdout
        return done.stderr
    assert done.returncode == 0, done.stderr
    return done.stdout


def make_assistant(server: LiveServer) -> tuple[str, str]:
    """A key of a new project and an assistant of it, made with the SDK."""
    key = server.new_key("proj_" + secrets.token_hex(6))
    with openai.OpenAI(
        base_url=server.base_url, api_key=key, _strict_response_validation=True
    ) as client:
        assistant = client.beta.assistants.create(
            model="gpt-4o", instructions=INSTRUCTIONS, temperature=0
        )
    return key, assistant.id


# ---- a scripted upstream that echoes ----------------------------------------------------


def echo(body: Any) -> FakeReply:
    """The last user message, as the note's outputs show."""
    return FakeReply(
        text=next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
    )


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(responder=echo) as fake:
        yield fake


@pytest.fixture(scope="module")
def echo_server(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    registry = BackendRegistry(fallback=OpenAICompatBackend(upstream.base_url, "sk-upstream"))
    with LiveServer(make_settings(tmp_path_factory.mktemp("note")), registry=registry) as live:
        yield live


def test_programs_print_the_notes_output(echo_server: LiveServer, upstream: FakeUpstream) -> None:
    key, assistant_id = make_assistant(echo_server)
    outputs = [run_program(name, echo_server, key, assistant_id) for name in PROGRAMS]
    # The note's outputs lost their line breaks.
    assert [" ".join(out.split()) for out in outputs] == note_outputs()

    sync_old, sync_new, async_new = [r.body for r in upstream.chat_requests[-3:]]
    assert sync_old["model"] == "gpt-4o"
    assert sync_old["messages"] == [{"role": "user", "content": "Hello from Chat Completions!"}]
    # Addressed to the assistant: its model, its instructions first.
    assert sync_new["model"] == async_new["model"] == "gpt-4o"
    assert sync_new["messages"] == [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": "Hello from Assistants API!"},
    ]
    assert sync_new["temperature"] == 0.0
    assert async_new["messages"][-1] == {"role": "user", "content": "Async hello!"}


def test_the_placeholder_id_is_the_notes_400(echo_server: LiveServer) -> None:
    # "If you get a 400 Bad Request error, verify your assistant ID is correct."
    key, _ = make_assistant(echo_server)
    error = run_program("sync_example", echo_server, key)
    assert "openai.BadRequestError: Error code: 400" in error
    assert "No assistant found with id 'your-assistant-id'." in error


# ---- the embedded model ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path_factory.mktemp("note-local"))
    with LiveServer(settings, registry=build_registry(settings)) as live:
        yield live


def test_programs_run_on_the_embedded_model(local_server: LiveServer) -> None:
    key, assistant_id = make_assistant(local_server)
    sync_out = run_program("sync_example", local_server, key, assistant_id)
    async_out = run_program("async_example", local_server, key, assistant_id)
    # The tiny model's words are not under test: each answer is there and has text.
    answers = re.fullmatch(r"Old API response: (.*)\nNew API response: (.*)\n", sync_out, re.S)
    assert answers is not None, sync_out
    old, new = answers.groups()
    assert old.strip()
    assert new.strip()
    assert async_out.startswith("Async response: ")
    assert async_out.removeprefix("Async response: ").strip()
