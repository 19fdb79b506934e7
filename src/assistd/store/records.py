"""Typed, frozen records of the stored rows: what ``store/`` functions return.

Services and the executor read fields by attribute, which mypy checks, instead of by string
key. A record is built from a row once, at the store's edge (``from_row``); a change is a
new record (``but``). JSON columns keep the wire shapes the API echoes, typed as JSON.
Bookkeeping columns that never reach the wire (leases, attempts) are fields too: the
store's own functions read them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Self

from assistd.protocol.runs import RunStatus

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Record:
    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})

    def values(self) -> dict[str, Any]:
        """Column → value, for an insert."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def but(self, **changes: Any) -> Self:
        """The same record with ``changes`` applied (what an update wrote)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class ApiKey(Record):
    id: str
    project: str
    key_hash: str
    prefix: str
    created_at: int


@dataclass(frozen=True, slots=True)
class UsageDay(Record):
    """Tokens one project used with one model on one UTC day."""

    project: str
    day: date
    model: str
    prompt_tokens: int
    completion_tokens: int
    requests: int


@dataclass(frozen=True, slots=True)
class Assistant(Record):
    id: str
    sort_key: int
    project: str
    created_at: int
    model: str
    name: str | None
    description: str | None
    instructions: str | None
    tools: list[JsonObject]
    tool_resources: JsonObject | None
    metadata: dict[str, str]
    temperature: float | None
    top_p: float | None
    response_format: Any
    reasoning_effort: str | None


@dataclass(frozen=True, slots=True)
class Thread(Record):
    id: str
    sort_key: int
    project: str
    created_at: int
    tool_resources: JsonObject | None
    metadata: dict[str, str]


@dataclass(frozen=True, slots=True)
class Message(Record):
    id: str
    sort_key: int
    project: str
    created_at: int
    thread_id: str
    role: str
    status: str
    content: list[JsonObject]
    attachments: list[JsonObject]
    metadata: dict[str, str]
    assistant_id: str | None
    run_id: str | None
    incomplete_details: JsonObject | None
    completed_at: int | None
    incomplete_at: int | None


@dataclass(frozen=True, slots=True)
class File(Record):
    id: str
    sort_key: int
    project: str
    created_at: int
    filename: str
    purpose: str
    bytes: int
    status: str
    status_details: str | None
    expires_at: int | None
    content_type: str | None
    sha256: str


@dataclass(frozen=True, slots=True)
class Run(Record):
    id: str
    sort_key: int
    project: str
    created_at: int
    thread_id: str
    assistant_id: str
    status: RunStatus
    started_at: int | None
    expires_at: int | None
    cancelled_at: int | None
    failed_at: int | None
    completed_at: int | None
    required_action: JsonObject | None
    last_error: JsonObject | None
    model: str
    instructions: str
    tools: list[JsonObject]
    tool_resources: JsonObject
    metadata: dict[str, str]
    temperature: float | None
    top_p: float | None
    max_completion_tokens: int | None
    max_prompt_tokens: int | None
    truncation_strategy: JsonObject
    incomplete_details: JsonObject | None
    usage: dict[str, int] | None
    response_format: Any
    tool_choice: Any
    parallel_tool_calls: bool
    reasoning_effort: str | None
    # Executor bookkeeping, never on the wire; written by the queue implementation only.
    worker_id: str | None
    lease_until: float | None


@dataclass(frozen=True, slots=True)
class RunStep(Record):
    id: str
    sort_key: int
    project: str
    created_at: int
    run_id: str
    thread_id: str
    assistant_id: str
    type: str
    status: str
    step_details: JsonObject
    last_error: JsonObject | None
    usage: dict[str, int] | None
    cancelled_at: int | None
    completed_at: int | None
    expired_at: int | None
    failed_at: int | None
    metadata: dict[str, str]


@dataclass(frozen=True, slots=True)
class VectorStore(Record):
    id: str
    sort_key: int
    project: str
    created_at: int
    name: str | None
    description: str | None
    metadata: dict[str, str]
    expires_after: JsonObject | None
    expires_at: int | None
    last_active_at: int | None


@dataclass(frozen=True, slots=True)
class FileBatch(Record):
    id: str
    sort_key: int
    project: str
    created_at: int
    vector_store_id: str
    status: str


@dataclass(frozen=True, slots=True)
class VectorStoreFile(Record):
    """A file attached to a store; its public id is the file's (``id``)."""

    vector_store_id: str
    file_id: str
    sort_key: int
    project: str
    created_at: int
    batch_id: str | None
    status: str
    last_error: JsonObject | None
    usage_bytes: int
    chunking_strategy: JsonObject
    attributes: dict[str, Any]
    # Ingestion bookkeeping, never on the wire.
    worker_id: str | None
    lease_until: float | None
    attempts: int

    @property
    def id(self) -> str:
        return self.file_id
