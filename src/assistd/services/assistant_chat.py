"""Chat Completions addressed to an assistant (``assistant`` in the create body).

The completion answers as the assistant: its model unless the request names one, its
instructions first as a system message, its ``temperature``, ``top_p``,
``response_format`` and ``reasoning_effort`` unless the request sets them, and its tools.
Its ``function`` tools, with the request's own (which win on a name), come back to the
caller as ordinary ``tool_calls``. Its built-in tools run here, as in a run:
``file_search`` over its vector stores and ``code_interpreter`` in a sandbox kernel of the
request's own (given the assistant's files, discarded at the end). The model is called
again with their outputs until it answers, for at most ``MAX_BUILTIN_CALLS`` calls, as a
run is bounded; built-in calls made together with function calls are dropped (the
caller cannot answer them, and the model makes them again next time if it needs them).

Streamed, the answer's chunks are the model's text and function calls as they come; the
built-in rounds are not shown, so when the model starts with a tool the first chunk comes
after the tool work. Text the model writes in several rounds is one answer, the rounds
separated by a blank line. Usage sums every model call of the request, and
``max_completion_tokens`` bounds them together.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field, replace
from typing import Any

from assistd.backends.base import ChatRequest
from assistd.backends.registry import BackendRegistry, ModelRoute
from assistd.errors import InvalidRequestError
from assistd.executor.turn import MAX_BUILTIN_CALLS, output_budget
from assistd.protocol.chat import (
    ChunkDelta,
    CompletionMessage,
    CompletionUsage,
    CreateChatCompletionRequest,
    FinishReason,
    FunctionCallOut,
    ToolCallDeltaOut,
    ToolCallOut,
)
from assistd.services.chat_citations import ChatCitations
from assistd.services.chat_relay import Relay, RelayedCall, relayed
from assistd.store import assistants
from assistd.store.database import Database
from assistd.store.records import Assistant, JsonObject
from assistd.store.tool_calls import ToolCall
from assistd.tools.base import Offered, ToolRegistry, ToolScope
from assistd.tools.code_interpreter import CodeInterpreterTool

# Between the text of two rounds (the model spoke, used a tool, spoke again).
ROUND_BREAK = "\n\n"


@dataclass
class AssistantAnswer:
    """One completion of an assistant, as it goes: the rounds of model calls and tools."""

    model: str
    route: ModelRoute
    base: ChatRequest  # the request's settings and messages, without tools
    functions: list[JsonObject]  # the client's function tools (assistant's and request's)
    enabled: dict[str, Offered]  # the built-in tools, by the function name offered
    choice: Any
    parallel: bool | None
    scope: ToolScope
    tools: ToolRegistry
    interpreter: CodeInterpreterTool | None
    citations: ChatCitations
    made: list[ToolCall] = field(default_factory=list)
    rounds: list[tuple[Relay, list[JsonObject]]] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    _length: bool = False  # the completion budget ran out between rounds

    async def deltas(self) -> AsyncGenerator[ChunkDelta, None]:
        """The client's deltas over every round; closing this stops the model call."""
        messages = self.base.messages
        try:
            while True:
                relay = self._relay()
                request = self._request(messages)
                if request is None:
                    self._length = True
                    break
                self.rounds.append((relay, messages))
                spoke = any(r.text for r, _ in self.rounds[:-1])
                async for delta in relayed(self.route.backend.stream(request), relay):
                    if delta.content:
                        # The round's first text, after an earlier round's: a new paragraph.
                        opening = spoke and len(relay.text) == 1
                        piece = ROUND_BREAK + delta.content if opening else delta.content
                        text, notes = self.citations.feed(piece)
                        delta = self._released(text, notes, delta.tool_calls)
                    if delta.content or delta.tool_calls or delta.annotations:
                        yield delta
                if relay.calls or not relay.builtin or relay.finish_reason == "length":
                    break
                if len(self.made) >= MAX_BUILTIN_CALLS:
                    break  # built-ins called although no longer offered: the answer ends
                messages = [*messages, *await self._run_builtin(relay)]
            text, notes = self.citations.flush()
            if text or notes:
                yield self._released(text, notes)
        finally:
            if self.interpreter is not None and any(
                c.type == "code_interpreter" for c in self.made
            ):
                await self.interpreter.discard(self.scope.session)

    def _relay(self) -> Relay:
        return Relay(
            allow_tools=self.choice != "none",
            single_call=self.parallel is False,
            hidden=frozenset(self.enabled),
        )

    def _request(self, messages: list[JsonObject]) -> ChatRequest | None:
        """This round's request; None when the completion budget is spent."""
        offered = self.enabled if len(self.made) < MAX_BUILTIN_CALLS else {}
        tools = [*self.functions, *(_function(name, item) for name, item in offered.items())]
        limit = self.base.max_tokens
        if limit is not None and self.rounds:
            limit -= sum(relay.produced(self.model) for relay, _ in self.rounds)
            if limit <= 0:
                return None
        return replace(
            self.base,
            messages=messages,
            tools=tools,
            tool_choice=self._choice(offered) if tools else None,
            parallel_tool_calls=self.parallel if tools else None,
            max_tokens=limit,
        )

    def _choice(self, offered: dict[str, Offered]) -> Any:
        """The request's tool_choice, eased once built-in calls ran (forcing them again
        would loop, and ``required`` is then met)."""
        choice = self.choice
        forced = choice["function"]["name"] if isinstance(choice, dict) else None
        if self.made and (choice == "required" or forced in self.enabled):
            return "auto"
        if forced is not None and forced in self.enabled and forced not in offered:
            return "auto"
        return choice

    def _released(
        self,
        text: str,
        notes: list[dict[str, Any]],
        tool_calls: list[ToolCallDeltaOut] | None = None,
    ) -> ChunkDelta:
        """The delta for text the citations released (kept for the whole message too)."""
        self.text.append(text)
        self.annotations.extend(notes)
        return ChunkDelta(content=text or None, annotations=notes or None, tool_calls=tool_calls)

    async def _run_builtin(self, relay: Relay) -> list[JsonObject]:
        """Run the round's built-in calls; the messages that give the model their outputs."""
        budget = output_budget(self.route)
        outputs: list[JsonObject] = []
        for call in relay.builtin:
            item = self.enabled[call.name]
            ordinal = sum(1 for made in self.made if made.type == item.tool.type)
            done = await item.tool.execute(
                self.scope, item.entry, call.id, call.arguments, ordinal, budget
            )
            self.made.append(done)
            output = done.model.output if done.model is not None else ""
            outputs.append({"role": "tool", "tool_call_id": call.id, "content": output})
        self.citations.update(self.tools.message_sources(self.made), _file_names(self.made))
        said = "".join(relay.text)
        asked = {"role": "assistant", "content": said or None, "tool_calls": _calls(relay.builtin)}
        return [asked, *outputs]

    def names(self) -> set[str]:
        """Every function name offered (the client's and the built-ins')."""
        return {f["function"]["name"] for f in self.functions} | set(self.enabled)

    def finish(self) -> FinishReason:
        if self._length:
            return "length"
        return self.rounds[-1][0].finish() if self.rounds else "stop"

    def usage(self) -> CompletionUsage:
        """Every model call of the request, added up (blocking: may tokenize prompts)."""
        totals = [relay.totals(sent, self.model) for relay, sent in self.rounds]
        prompt = sum(t.prompt_tokens for t in totals)
        completion = sum(t.completion_tokens for t in totals)
        return CompletionUsage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )

    def message(self) -> CompletionMessage:
        last = self.rounds[-1][0] if self.rounds else None
        calls = [
            ToolCallOut(id=c.id, function=FunctionCallOut(name=c.name, arguments=c.arguments))
            for c in (last.calls if last is not None else [])
        ]
        text = "".join(self.text)
        return CompletionMessage(
            content=None if not text and calls else text,
            tool_calls=calls or None,
            annotations=self.annotations,
        )


class AssistantChat:
    """Prepares completions addressed to an assistant of the caller's project."""

    def __init__(
        self,
        db: Database,
        registry: BackendRegistry,
        tools: ToolRegistry,
        interpreter: CodeInterpreterTool | None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.tools = tools
        self.interpreter = interpreter

    async def load(self, project: str, assistant_id: str) -> Assistant:
        """The assistant, or the 400 OpenAI gives for a bad ``assistant`` parameter."""
        async with self.db.read() as conn:
            assistant = await assistants.get_for_project(conn, project, assistant_id)
        if assistant is None:
            raise InvalidRequestError(
                f"No assistant found with id '{assistant_id}'.", param="assistant"
            )
        return assistant

    def answer(
        self,
        assistant: Assistant,
        body: CreateChatCompletionRequest,
        base: ChatRequest,
        route: ModelRoute,
        *,
        files_url: str,
        session: str,
    ) -> AssistantAnswer:
        """The completion, given the request as the plain gateway would send it (``base``)."""
        model = body.model or assistant.model
        functions = merged_functions(assistant, base.tools)
        enabled = self.tools.offered(
            [*functions, *(t for t in assistant.tools if t["type"] != "function")]
        )
        messages = base.messages
        if assistant.instructions:
            messages = [{"role": "system", "content": assistant.instructions}, *messages]
        fmt = assistant.response_format
        base = replace(
            base,
            messages=messages,
            temperature=_given(body.temperature, assistant.temperature),
            top_p=_given(body.top_p, assistant.top_p),
            response_format=_given(base.response_format, fmt if isinstance(fmt, dict) else None),
            reasoning_effort=_given(base.reasoning_effort, assistant.reasoning_effort),
        )
        return AssistantAnswer(
            model=model,
            route=route,
            base=base,
            functions=functions,
            enabled=enabled,
            choice=base.tool_choice,
            parallel=body.parallel_tool_calls,
            scope=ToolScope(assistant.project, model, assistant.id, None, session),
            tools=self.tools,
            interpreter=self.interpreter,
            citations=ChatCitations(files_url),
        )


def merged_functions(assistant: Assistant, request_tools: list[JsonObject]) -> list[JsonObject]:
    """The assistant's function tools and the request's; the request's win on a name."""
    by_name = {t["function"]["name"]: t for t in assistant.tools if t["type"] == "function"}
    by_name |= {t["function"]["name"]: t for t in request_tools}
    return list(by_name.values())


def _given(value: Any, default: Any) -> Any:
    return value if value is not None else default


def _function(name: str, item: Offered) -> JsonObject:
    return {"type": "function", "function": {**item.tool.definition(item.entry), "name": name}}


def _calls(calls: list[RelayedCall]) -> list[JsonObject]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in calls
    ]


def _file_names(made: list[ToolCall]) -> dict[str, str]:
    """File id → name, from the file_search results so far (citation titles)."""
    return {
        str(result["file_id"]): str(result["file_name"])
        for call in made
        if call.type == "file_search"
        for result in call.section.get("results") or []
    }
