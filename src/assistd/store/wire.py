"""Storage rows of threads' children (messages, runs, steps) as wire objects.

Shared by the services (responses) and the executor (stream events), hence here, below both.
"""

from __future__ import annotations

from typing import Any

from assistd.protocol.messages import MessageObject
from assistd.protocol.runs import TERMINAL_STATUSES, RunObject, RunStepObject
from assistd.store.records import Message, Record, Run, RunStep

_MESSAGE_FIELDS = (
    "id",
    "created_at",
    "thread_id",
    "status",
    "incomplete_details",
    "completed_at",
    "incomplete_at",
    "role",
    "content",
    "assistant_id",
    "run_id",
    "attachments",
    "metadata",
)
# Step-details key for what only the model sees of a built-in tool call (its function-call
# form and output); dropped from every wire object.
MODEL_KEY = "_model"

_RUN_FIELDS = tuple(f for f in RunObject.model_fields if f not in ("object", "usage"))
_STEP_FIELDS = tuple(f for f in RunStepObject.model_fields if f != "object")


def _fields(source: Record, keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: getattr(source, key) for key in keys}


def message_to_wire(message: Message) -> MessageObject:
    return MessageObject.model_validate(_fields(message, _MESSAGE_FIELDS))


def run_to_wire(run: Run) -> RunObject:
    values = _fields(run, _RUN_FIELDS)
    # Usage accumulates in storage during the run but is only reported once it is over.
    values["usage"] = run.usage if run.status in TERMINAL_STATUSES else None
    return RunObject.model_validate(values)


def step_to_wire(step: RunStep) -> RunStepObject:
    values = _fields(step, _STEP_FIELDS)
    values["step_details"] = _without_model_keys(values["step_details"])
    # A tool step keeps its completion's usage while it waits for outputs; the API reports
    # step usage only once the step has ended.
    if values["status"] == "in_progress":
        values["usage"] = None
    return RunStepObject.model_validate(values)


def _without_model_keys(details: Any) -> Any:
    calls = details.get("tool_calls") if isinstance(details, dict) else None
    if not calls or not any(MODEL_KEY in c for c in calls):
        return details
    return {
        **details,
        "tool_calls": [{k: v for k, v in c.items() if k != MODEL_KEY} for c in calls],
    }
