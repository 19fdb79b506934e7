"""One turn of a run (one completion), as values: what ``prepare`` sets up and what
``resolve`` decides comes next (the openai-agents ``NextStep*`` pattern).

``prepare`` turns the run, its context and its tools into a ``Turn``: the typed model
request and the accumulator that will follow its stream. ``resolve`` returns a
``NextStep``: ``RunAgain`` (built-in calls ran, the model goes on), ``RequiresAction``
(the client owes function outputs) or ``Finish`` (the run ends).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from assistd.backends.base import ChatRequest
from assistd.backends.registry import ModelRoute
from assistd.executor.accumulator import Accumulator, Call
from assistd.store.records import JsonObject, Run
from assistd.store.tool_calls import ToolCall
from assistd.tools.base import Offered

# Built-in calls one run may make before the model must answer (a small model can keep
# searching forever).
MAX_BUILTIN_CALLS = 8


@dataclass(frozen=True)
class Turn:
    """A prepared completion."""

    route: ModelRoute
    request: ChatRequest
    # The built-in tools the run enables, by function name (their calls run here even
    # when no longer offered to the model).
    enabled: dict[str, Offered]
    # The run's built-in calls before this turn, in order.
    made: list[ToolCall]
    accumulator: Accumulator


@dataclass(frozen=True)
class RunAgain:
    """Only built-in calls were made and ran: the model reads their outputs next."""

    usage: dict[str, int]


@dataclass(frozen=True)
class RequiresAction:
    """The model called client functions: the run waits for their outputs."""

    calls: list[Call]
    usage: dict[str, int]


@dataclass(frozen=True)
class Finish:
    """The run ends: ``completed`` with the model's answer, ``incomplete`` when the
    completion ran out of tokens."""

    status: Literal["completed", "incomplete"]
    usage: dict[str, int]


NextStep = RunAgain | RequiresAction | Finish


class BudgetSpent(Exception):
    """The run's ``max_prompt_tokens`` or ``max_completion_tokens`` is used up."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def tokens_left(limit: int | None, usage: dict[str, int] | None, used: str) -> int | None:
    """What is left of a run's token limit (None: no limit)."""
    if limit is None:
        return None
    return int(limit) - int((usage or {}).get(used, 0))


def total_usage(run: Run, turn: dict[str, int]) -> dict[str, int]:
    """The run's usage with a turn's added."""
    usage = run.usage or {"prompt_tokens": 0, "completion_tokens": 0}
    total = {k: int(usage.get(k, 0)) + turn[k] for k in ("prompt_tokens", "completion_tokens")}
    total["total_tokens"] = total["prompt_tokens"] + total["completion_tokens"]
    return total


def context_window(route: ModelRoute) -> int | None:
    """Prompt tokens (counted with OpenAI's tokenizer) that fit the route's context window.

    A quarter of the window is kept back because the model's own tokenizer may count more
    tokens than OpenAI's, and room is left for the reply.
    """
    if route.context_window is None:
        return None
    return route.context_window * 3 // 4 - min(1024, route.context_window // 4)


def output_budget(route: ModelRoute) -> int | None:
    """Tokens a built-in tool's output may take: a quarter of a known context window."""
    window = route.context_window
    return window // 4 if window else None


def tool_choice_after(choice: Any, prior: list[ToolCall]) -> Any:
    """The run's ``tool_choice`` for this turn, given its built-in calls so far."""
    if prior and (choice == "required" or isinstance(choice, dict)):
        # A built-in call runs here, not at the client: forcing it again would loop.
        return "auto" if not isinstance(choice, dict) or choice["type"] != "function" else choice
    return choice


def build_request(
    run: Run,
    route: ModelRoute,
    messages: list[JsonObject],
    offered: dict[str, Offered],
    choice: Any,
    max_tokens: int | None,
) -> ChatRequest:
    """The completion request: the run's functions and offered built-ins, its options."""
    functions = [t["function"] for t in run.tools if t["type"] == "function"]
    for name, item in offered.items():
        functions.append({**item.tool.definition(item.entry), "name": name})
    return ChatRequest(
        model=route.upstream_model,
        messages=messages,
        tools=[{"type": "function", "function": f} for f in functions],
        tool_choice=_tool_choice(choice, offered) if functions else None,
        parallel_tool_calls=run.parallel_tool_calls if functions else None,
        response_format=run.response_format if isinstance(run.response_format, dict) else None,
        temperature=run.temperature,
        top_p=run.top_p,
        max_tokens=max_tokens,
        reasoning_effort=run.reasoning_effort,
    )


def _tool_choice(value: Any, offered: dict[str, Offered]) -> Any:
    if value is None or isinstance(value, str):
        return value
    if value.get("type") == "function":
        return {"type": "function", "function": {"name": value["function"]["name"]}}
    # A named built-in tool is forced as the function it is offered as.
    for name, item in offered.items():
        if item.tool.type == value.get("type"):
            return {"type": "function", "function": {"name": name}}
    return "auto"
