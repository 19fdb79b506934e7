"""Helpers for the run tests: scripted model names, tools, polling, reading back.

Every test scripts its own model name (``new_model``), so the shared scripted backend never
hands one test's replies to another; what the model was sent is read back with
``requests_for`` (``model_contents``).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

import openai
import pytest

from assistd.backends.base import ChatRequest
from assistd.backends.scripted import tool_reply
from tests.conftest import LiveServer

T = TypeVar("T")

TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete"}


def new_model() -> str:
    return f"m-{secrets.token_hex(5)}"


def fn_tool(name: str, **properties: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"The {name} function.",
            "parameters": {
                "type": "object",
                "properties": {k: {"type": v} for k, v in properties.items()},
            },
        },
    }


def wait_until(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float = 15.0) -> T:
    """Fetch until ``done`` holds; fail with the last value after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not reached within {timeout}s; last value: {value!r}")
        time.sleep(0.05)


def wait_run(client: openai.OpenAI, run: Any, statuses: set[str], timeout: float = 15.0) -> Any:
    return wait_until(
        lambda: client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id),
        lambda r: r.status in statuses,
        timeout,
    )


def error_body(exc: pytest.ExceptionInfo[openai.APIStatusError]) -> dict[str, Any]:
    body = exc.value.body
    assert isinstance(body, dict), body
    return body


def text_of(message: Any) -> str:
    assert len(message.content) == 1, message.content
    assert message.content[0].type == "text"
    return str(message.content[0].text.value)


def run_messages(client: openai.OpenAI, thread_id: str, run_id: str) -> list[Any]:
    return list(client.beta.threads.messages.list(thread_id, run_id=run_id, order="asc"))


def thread_with(client: openai.OpenAI, *texts: str) -> str:
    messages: list[Any] = [{"role": "user", "content": t} for t in texts]
    return client.beta.threads.create(messages=messages).id


def model_contents(request: ChatRequest) -> list[tuple[str, Any]]:
    return [(m["role"], m.get("content")) for m in request.messages]


def weather_assistant(client: openai.OpenAI, model: str, **kwargs: Any) -> Any:
    return client.beta.assistants.create(
        model=model,
        tools=[
            fn_tool("get_weather", city="string"),
            fn_tool("get_time", zone="string"),
        ],
        **kwargs,
    )


def waiting_run(client: openai.OpenAI, server: LiveServer) -> tuple[Any, Any]:
    """A run parked in requires_action (active, and nothing executing it)."""
    model = new_model()
    server.scripted.queue(tool_reply(("get_weather", {"city": "Lima"})), model=model)
    assistant = weather_assistant(client, model)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_with(client, "Lima?"), assistant_id=assistant.id
    )
    assert run.status == "requires_action"
    return assistant, run
