"""Storage rows of threads' children (messages, runs, steps) as wire objects.

Shared by the services (responses) and the executor (stream events), hence here, below both.
"""

from __future__ import annotations

from typing import Any

from assistd.protocol.messages import MessageObject
from assistd.protocol.runs import TERMINAL_STATUSES, RunObject, RunStepObject
from assistd.store.repository import Row

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


def message_to_wire(row: Row) -> MessageObject:
    return MessageObject.model_validate({key: row[key] for key in _MESSAGE_FIELDS})


def run_to_wire(row: Row) -> RunObject:
    values = {key: row[key] for key in _RUN_FIELDS}
    # Usage accumulates in storage during the run but is only reported once it is over.
    values["usage"] = row["usage"] if row["status"] in TERMINAL_STATUSES else None
    return RunObject.model_validate(values)


def step_to_wire(row: Row) -> RunStepObject:
    values = {key: row[key] for key in _STEP_FIELDS}
    values["step_details"] = _without_model_keys(values["step_details"])
    # A tool step keeps its completion's usage while it waits for outputs; the API reports
    # step usage only once the step has ended.
    if row["status"] == "in_progress":
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
