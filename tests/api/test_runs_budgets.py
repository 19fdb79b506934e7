"""Token budgets and truncation: ``max_completion_tokens`` (across turns too),
``max_prompt_tokens`` dropping the oldest messages, and ``truncation_strategy``.
"""

from __future__ import annotations

import openai

from assistd.backends.base import Usage
from assistd.backends.scripted import text_reply, tool_reply
from assistd.tokenizer import count_tokens
from tests.api.run_support import (
    model_contents,
    new_model,
    run_messages,
    text_of,
    thread_with,
    weather_assistant,
)
from tests.conftest import LiveServer


def test_max_completion_tokens_ends_incomplete(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    words = [f"w{i}" for i in range(400)]
    server.scripted.queue(text_reply(" ".join(words)), model=model)
    assistant = client.beta.assistants.create(model=model)
    thread_id = thread_with(client, "Write a lot.")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant.id, max_completion_tokens=256
    )
    assert run.status == "incomplete", run
    assert run.incomplete_details is not None
    assert run.incomplete_details.reason == "max_completion_tokens"
    assert run.completed_at is None
    assert run.failed_at is None
    assert run.expires_at is None
    assert run.usage is not None
    assert run.max_completion_tokens == 256
    (request,) = server.scripted.requests_for(model)
    assert request.max_tokens == 256
    (message,) = run_messages(client, thread_id, run.id)
    assert message.status == "incomplete"
    assert message.incomplete_details is not None
    assert message.incomplete_details.reason == "max_tokens"
    assert text_of(message).split() == words[:256]
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
    assert step.status == "completed"


def test_max_completion_tokens_is_a_budget_across_turns(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = new_model()
    server.scripted.queue(
        tool_reply(("get_weather", {"city": "Bern"}), usage=Usage(10, 200)),
        text_reply("Done.", usage=Usage(10, 5)),
        model=model,
    )
    assistant = weather_assistant(client, model)
    thread_id = thread_with(client, "Bern?")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant.id, max_completion_tokens=300
    )
    assert run.status == "requires_action"
    assert run.required_action is not None
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    final = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread_id, tool_outputs=[{"tool_call_id": call.id, "output": "9C"}]
    )
    assert final.status == "completed"
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (20, 205)
    first, second = server.scripted.requests_for(model)
    assert (first.max_tokens, second.max_tokens) == (300, 100)


def test_max_prompt_tokens_drops_oldest_messages(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    # Each message is about 100 tokens (plus framing): two fit in 256, three do not.
    texts = [f"{i:03d} " + "apple " * 100 for i in range(8)]
    assert all(100 <= count_tokens(t, model) <= 110 for t in texts)
    assistant = client.beta.assistants.create(model=model, instructions="Be brief.")
    thread_id = thread_with(client, *texts)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant.id, max_prompt_tokens=256
    )
    assert run.status == "completed", run
    assert run.max_prompt_tokens == 256
    (request,) = server.scripted.requests_for(model)
    assert model_contents(request) == [
        ("system", "Be brief."),
        ("user", texts[-2]),
        ("user", texts[-1]),
    ]
    # Truncation only shapes the prompt: the thread keeps every message.
    assert len(list(client.beta.threads.messages.list(thread_id))) == len(texts) + 1


def test_max_prompt_tokens_too_small_for_the_last_message(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = new_model()
    assistant = client.beta.assistants.create(model=model)
    thread_id = thread_with(client, "short", "apple " * 400)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant.id, max_prompt_tokens=256
    )
    assert run.status == "incomplete", run
    assert run.incomplete_details is not None
    assert run.incomplete_details.reason == "max_prompt_tokens"
    assert run.expires_at is None
    assert server.scripted.requests_for(model) == []
    assert run_messages(client, thread_id, run.id) == []


def test_truncation_last_messages(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    assistant = client.beta.assistants.create(model=model, instructions="Sys.")
    thread_id = thread_with(client, "m1", "m2", "m3", "m4", "m5")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id,
        assistant_id=assistant.id,
        truncation_strategy={"type": "last_messages", "last_messages": 3},
    )
    assert run.status == "completed"
    (request,) = server.scripted.requests_for(model)
    assert model_contents(request) == [
        ("system", "Sys."),
        ("user", "m3"),
        ("user", "m4"),
        ("user", "m5"),
    ]


def test_truncation_auto_sends_whole_thread(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    assistant = client.beta.assistants.create(model=model)
    thread_id = thread_with(client, "m1", "m2", "m3")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id,
        assistant_id=assistant.id,
        truncation_strategy={"type": "auto"},
    )
    assert run.status == "completed"
    assert run.truncation_strategy is not None
    assert run.truncation_strategy.to_dict() == {"type": "auto", "last_messages": None}
    (request,) = server.scripted.requests_for(model)
    assert model_contents(request) == [("user", "m1"), ("user", "m2"), ("user", "m3")]
