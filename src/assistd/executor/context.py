"""Building the model's context for a run: instructions, thread messages, tool results.

Applies ``truncation_strategy`` and the run's prompt-token budget, counting tokens with
OpenAI's tokenizers (``assistd.tokenizer``); for other models that count is an estimate.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from assistd.store import messages, run_steps
from assistd.store.database import Connection
from assistd.store.records import Message, Run, RunStep
from assistd.store.tool_calls import tool_calls_of
from assistd.tokenizer import count_tokens

# Per-message framing overhead, as OpenAI documents for chat models.
MESSAGE_OVERHEAD = 4


def estimate_tokens(text: str, model: str | None = None) -> int:
    return count_tokens(text, model)


@dataclass
class Context:
    messages: list[dict[str, Any]]
    prompt_tokens: int
    dropped: int
    # The run's steps so far, in order: read for its own turns, and what the run loop
    # needs of them too (not what the prompt is made of, so not compared).
    steps: list[RunStep] = field(default_factory=list, compare=False)


class PromptBudgetExceeded(Exception):
    """Not even the newest message fits in what is left of ``max_prompt_tokens``."""


def _message_tokens(message: dict[str, Any], model: str) -> int:
    content = message.get("content")
    text = content if isinstance(content, str) else json.dumps(content or "")
    calls = message.get("tool_calls")
    extra = json.dumps(calls) if calls else ""
    return MESSAGE_OVERHEAD + estimate_tokens(text, model) + estimate_tokens(extra, model)


def _content_for_model(content: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for part in content:
        if part["type"] == "text":
            parts.append({"type": "text", "text": part["text"]["value"]})
        elif part["type"] == "image_url":
            image = part["image_url"]
            parts.append(
                {"type": "image_url", "image_url": {"url": image["url"], "detail": image["detail"]}}
            )
        elif part["type"] == "image_file":
            # File bytes are not sent upstream yet; say an image was there rather than drop it.
            parts.append({"type": "text", "text": f"[image file {part['image_file']['file_id']}]"})
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def thread_message(message: Message) -> dict[str, Any]:
    return {"role": message.role, "content": _content_for_model(message.content)}


def tool_turns(step: RunStep) -> list[dict[str, Any]]:
    """A finished tool-call step as an assistant turn with tool_calls and its tool results.

    Built-in calls (file_search...) appear as the function calls the model made, with the
    output the executor gave it (the call's ``model`` view)."""
    calls: list[tuple[str, str, str, str]] = []
    for call in tool_calls_of(step):
        made = call.as_model_call()
        if made is not None:
            calls.append((call.id, made.name, made.arguments, made.output))
    if not calls:
        return []
    turns: list[dict[str, Any]] = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                for i, n, a, _ in calls
            ],
        }
    ]
    turns += [{"role": "tool", "tool_call_id": i, "content": o or ""} for i, _, _, o in calls]
    return turns


async def build_context(
    conn: Connection,
    run: Run,
    *,
    prompt_budget: int | None,
    context_window: int | None,
    fresh: bool = False,
    thread: Sequence[Message] | None = None,
) -> Context:
    """The messages for the next completion of ``run``; ``fresh``: it is the first of a
    run that has no step yet; ``thread``: the thread's messages, when known."""
    if thread is None:
        thread = await messages.in_thread(conn, run.thread_id)
    # The run's own messages are interleaved with its tool turns, in step order, below.
    own_messages = {m.id: m for m in thread if m.run_id == run.id}
    history = [m for m in thread if m.run_id != run.id]
    strategy = run.truncation_strategy or {"type": "auto"}
    dropped = 0
    if strategy.get("type") == "last_messages" and strategy.get("last_messages"):
        keep = int(strategy["last_messages"])
        dropped = max(0, len(history) - keep)
        history = history[dropped:]
    own: list[dict[str, Any]] = []
    # A fresh run has no step to read (a round trip on PostgreSQL, on the way to the
    # first token).
    steps = [] if fresh else await run_steps.of_run(conn, run.id)
    for step in steps:
        if step.type == "tool_calls" and step.status == "completed":
            turns = tool_turns(step)
            previous = own[-1] if own else None
            if (
                turns
                and previous
                and previous["role"] == "assistant"
                and "tool_calls" not in previous
            ):
                # Text and calls from one completion are one assistant turn, as the model
                # produced them (some upstreams reject two assistant turns in a row).
                previous["tool_calls"] = turns[0]["tool_calls"]
                turns = turns[1:]
            own += turns
        elif step.type == "message_creation":
            message = own_messages.get(step.step_details["message_creation"]["message_id"])
            if message is not None and message.content:
                own.append({"role": "assistant", "content": _content_for_model(message.content)})
    system = [{"role": "system", "content": run.instructions}] if run.instructions else []
    body = [thread_message(m) for m in history]
    limits = [x for x in (prompt_budget, context_window) if x is not None]
    limit = min(limits) if limits else None
    fixed = sum(_message_tokens(m, run.model) for m in system + own)
    sizes = [_message_tokens(m, run.model) for m in body]
    total = sum(sizes)
    if limit is not None:
        # "auto" truncation drops the oldest thread messages until the prompt fits; one
        # pass with a running total, as a thread can hold many thousands of messages.
        cut = 0
        while cut < len(body) and fixed + total > limit:
            total -= sizes[cut]
            cut += 1
        body = body[cut:]
        dropped += cut
        # Only the run's own max_prompt_tokens ends a run as incomplete; a prompt still too
        # big for the model's context window is for the model to refuse.
        binding = prompt_budget is not None and prompt_budget == limit
        if binding and (fixed + total > limit or (not body and history)):
            raise PromptBudgetExceeded
    return Context(
        messages=system + body + own, prompt_tokens=fixed + total, dropped=dropped, steps=steps
    )
