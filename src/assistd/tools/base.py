"""The ``Tool`` interface of the built-in tools, and the registry the run loop asks.

The model sees each built-in tool as one more function; when it calls one, the executor
runs the tool itself instead of asking the client (no ``requires_action``), records the
call in the run step in the tool's own wire shape, and feeds the output back to the model
on the next completion. What the model needs to see again later (its arguments and the
tool's output) is the call's ``ToolCall.model``, which never reaches the wire.

The same tools serve Chat Completions addressed to an assistant, where there is no run
and no thread: a tool sees only its ``ToolScope``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from assistd.store.records import JsonObject, Run
from assistd.store.tool_calls import ToolCall
from assistd.tools.citations import MessageSources


@dataclass(frozen=True)
class ToolScope:
    """Whose call a tool runs: a run's, or a chat completion's (no thread)."""

    project: str
    model: str
    assistant_id: str
    # The thread whose resources, attachments and earlier calls the tools use; None for a
    # chat completion, which has only the assistant's.
    thread_id: str | None
    # The sandbox kernel the code runs in: the thread's, or one of the completion's own.
    session: str

    @classmethod
    def of_run(cls, run: Run) -> ToolScope:
        return cls(run.project, run.model, run.assistant_id, run.thread_id, run.thread_id)


class Tool(ABC):
    """One built-in tool type (``file_search``, ``code_interpreter``)."""

    type: ClassVar[str]

    @abstractmethod
    def definition(self, entry: JsonObject) -> JsonObject:
        """The function (name, description, parameters) the model is offered, given the
        run's tool entry (e.g. ``{"type": "file_search", "file_search": {...}}``)."""

    @abstractmethod
    def announce(self, call_id: str) -> JsonObject:
        """The call's first step delta (``{"id", "type", <type>: {...}}``), sent as soon as
        the model starts the call."""

    @abstractmethod
    async def execute(
        self,
        scope: ToolScope,
        entry: JsonObject,
        call_id: str,
        arguments: str,
        ordinal: int,
        budget: int | None = None,
    ) -> ToolCall:
        """Run the call; its step entry, with what the model reads in ``model.output``.

        ``ordinal`` counts this tool's earlier calls in the run or completion (citation
        markers use it);
        ``budget`` caps the output's tokens for small context windows. Failures the model
        can recover from come back as output text."""

    def input_delta(self, arguments: str) -> str | None:
        """The call's input as far as the partial ``arguments`` tell, for a tool that shows
        its call while the model writes it (None: nothing to show)."""
        return None

    def result_delta(self, call: ToolCall, streamed: str) -> JsonObject | None:
        """The step delta (without ``index``) that completes the call's streamed form,
        given its finished entry and the input already streamed; None when nothing is left."""
        return None

    def annotate(self, calls: Sequence[ToolCall], into: MessageSources) -> None:
        """Add what this tool's earlier calls in the run (``calls``, in order) give the
        run's next message: citation sources, files to link, images to show."""
        return None


@dataclass(frozen=True)
class Offered:
    """A built-in tool a run enables, with the run's entry for it."""

    tool: Tool
    entry: JsonObject


@dataclass
class ToolRegistry:
    """The built-in tools this process can run, by their tool type."""

    tools: dict[str, Tool]

    def offered(self, tools: Sequence[JsonObject]) -> dict[str, Offered]:
        """Function name → the built-in tool that ``tools`` (a run's or an assistant's
        entries) enable under that name."""
        names = {t["function"]["name"] for t in tools if t["type"] == "function"}
        offered: dict[str, Offered] = {}
        for entry in tools:
            tool = self.tools.get(entry["type"])
            if tool is None:
                continue
            name = tool.definition(entry)["name"]
            # A client function of the same name keeps it; the built-in steps aside.
            offered[f"builtin_{name}" if name in names else name] = Offered(tool, entry)
        return offered

    def message_sources(self, calls: Sequence[ToolCall]) -> MessageSources:
        """What the run's built-in calls so far (``calls``, in order) give its next message."""
        sources = MessageSources()
        for tool in self.tools.values():
            tool.annotate([c for c in calls if c.type == tool.type], sources)
        return sources
