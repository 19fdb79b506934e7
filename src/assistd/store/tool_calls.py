"""The entries of a ``tool_calls`` step as typed records, and their stored JSON.

A step's ``step_details.tool_calls`` holds one entry per call in its wire shape
(``{"id", "type", <type>: {...}}``). A built-in call (file_search, code_interpreter) also
keeps what only the model sees of it (the function call it made and the output it read)
under ``MODEL_KEY``, which the wire mapping drops. Only this module reads or writes that
key: everything above ``store/`` handles ``ToolCall.model``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from assistd.store.records import JsonObject, RunStep
from assistd.store.wire import MODEL_KEY


@dataclass(frozen=True, slots=True)
class ModelView:
    """A call as the model made it (a function call) and the output the model read."""

    name: str
    arguments: str
    output: str
    # code_interpreter's own bookkeeping, kept with its calls so it survives restarts: the
    # files its code wrote (name under /mnt/data → file id) and the input files copied into
    # the thread's sandbox (file id → name).
    files: dict[str, str] = field(default_factory=dict)
    staged: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call of a ``tool_calls`` step.

    ``section`` is the wire object under the call's type (a function's ``name``,
    ``arguments`` and ``output``; a file_search's ``ranking_options`` and ``results``...);
    ``model`` is set for built-in calls only.
    """

    id: str
    type: str
    section: JsonObject
    model: ModelView | None = None

    @classmethod
    def function(cls, call_id: str, name: str, arguments: str) -> ToolCall:
        """A client function call still waiting for its output."""
        return cls(call_id, "function", {"name": name, "arguments": arguments, "output": None})

    def as_model_call(self) -> ModelView | None:
        """The call as the model made it, with its output, for the next completion."""
        if self.type == "function":
            s = self.section
            return ModelView(s["name"], s["arguments"], s.get("output") or "")
        return self.model


def to_entry(call: ToolCall) -> JsonObject:
    entry: JsonObject = {"id": call.id, "type": call.type, call.type: call.section}
    if call.model is not None:
        hidden: JsonObject = {
            "name": call.model.name,
            "arguments": call.model.arguments,
            "output": call.model.output,
        }
        if call.model.files or call.model.staged:
            hidden |= {"files": call.model.files, "staged": call.model.staged}
        entry[MODEL_KEY] = hidden
    return entry


def from_entry(entry: JsonObject) -> ToolCall:
    kind = str(entry.get("type"))
    hidden = entry.get(MODEL_KEY)
    model = None
    if isinstance(hidden, dict):
        model = ModelView(
            name=hidden["name"],
            arguments=hidden["arguments"],
            output=hidden["output"],
            files=dict(hidden.get("files") or {}),
            staged=dict(hidden.get("staged") or {}),
        )
    return ToolCall(str(entry["id"]), kind, entry.get(kind) or {}, model)


def tool_calls_of(step: RunStep) -> list[ToolCall]:
    """The calls of a ``tool_calls`` step (none for a ``message_creation`` step)."""
    entries: list[Any] = step.step_details.get("tool_calls") or []
    return [from_entry(e) for e in entries]


def tool_calls_details(calls: Sequence[ToolCall]) -> JsonObject:
    """``step_details`` of a ``tool_calls`` step holding ``calls``."""
    return {"type": "tool_calls", "tool_calls": [to_entry(c) for c in calls]}
