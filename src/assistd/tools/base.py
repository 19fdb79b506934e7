"""Built-in tools (file_search, code_interpreter) as the executor runs them.

The model sees each built-in tool as one more function; when it calls one, the executor
runs the tool itself instead of asking the client (no ``requires_action``), records the
call in the run step in the tool's own wire shape, and feeds the output back to the model
on the next completion. What the model needs to see again later (its arguments and the
tool's output) is kept in the step under ``MODEL_KEY``, which the wire mapping drops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from assistd.store.repository import Row
from assistd.store.wire import MODEL_KEY


@dataclass
class ToolResult:
    """A finished built-in call: its step entry and the text the model reads."""

    details: dict[str, Any]
    output: str


class BuiltinTool(Protocol):
    type: ClassVar[str]

    def definition(self, tool: dict[str, Any]) -> dict[str, Any]:
        """The function (name, description, parameters) the model is offered, given the
        run's tool entry (e.g. ``{"type": "file_search", "file_search": {...}}``)."""
        ...

    def announce(self, call_id: str) -> dict[str, Any]:
        """The call's first step delta (``{"id", "type", <type>: {...}}``), sent as soon as
        the model starts the call."""
        ...

    async def call(
        self,
        run: Row,
        tool: dict[str, Any],
        call_id: str,
        arguments: str,
        ordinal: int,
        budget: int | None = None,
    ) -> ToolResult:
        """Run the call; ``ordinal`` counts this tool's earlier calls in the run (citation
        markers use it); ``budget`` caps the output's tokens for small context windows.
        Failures the model can recover from come back as output text."""
        ...


@runtime_checkable
class StreamedTool(Protocol):
    """A built-in tool that shows its call while the model writes it and its outputs once
    it ran (code_interpreter: the code as it is generated, then logs and images)."""

    def input_delta(self, arguments: str) -> str | None:
        """The call's input as far as the partial ``arguments`` tell (None: nothing yet)."""
        ...

    def result_delta(self, details: dict[str, Any], streamed: str) -> dict[str, Any] | None:
        """The step delta (without ``index``) that completes the call's streamed form,
        given its finished entry and the input already streamed; None when nothing is left."""
        ...


@dataclass
class BuiltinTools:
    """The built-in tools this process can run, by their tool type."""

    tools: dict[str, BuiltinTool]

    def offered(self, run: Row) -> dict[str, tuple[BuiltinTool, dict[str, Any]]]:
        """Function name → (tool, the run's tool entry) for the built-ins the run enables."""
        names = {t["function"]["name"] for t in run["tools"] if t["type"] == "function"}
        offered: dict[str, tuple[BuiltinTool, dict[str, Any]]] = {}
        for entry in run["tools"]:
            tool = self.tools.get(entry["type"])
            if tool is None:
                continue
            name = tool.definition(entry)["name"]
            # A client function of the same name keeps it; the built-in steps aside.
            offered[f"builtin_{name}" if name in names else name] = (tool, entry)
        return offered


def model_view(call: dict[str, Any]) -> dict[str, Any] | None:
    """The hidden function-call form of a built-in step entry, if it has one."""
    hidden = call.get(MODEL_KEY)
    return hidden if isinstance(hidden, dict) else None
