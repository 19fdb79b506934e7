"""Run and run-step wire models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from assistd.protocol.common import (
    INT32_MAX,
    FunctionName,
    Metadata,
    RequestModel,
    ResponseFormat,
    Tool,
    ToolResources,
    WireModel,
)
from assistd.protocol.messages import CreateMessageRequest
from assistd.protocol.threads import CreateThreadRequest

RunStatus = Literal[
    "queued",
    "in_progress",
    "requires_action",
    "cancelling",
    "cancelled",
    "failed",
    "completed",
    "incomplete",
    "expired",
]
ACTIVE_STATUSES: tuple[RunStatus, ...] = ("queued", "in_progress", "requires_action", "cancelling")
TERMINAL_STATUSES: tuple[RunStatus, ...] = (
    "cancelled",
    "failed",
    "completed",
    "incomplete",
    "expired",
)
FILE_SEARCH_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


class _Strictish(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TruncationStrategy(_Strictish):
    type: Literal["auto", "last_messages"]
    last_messages: int | None = Field(default=None, ge=1)


class NamedFunction(_Strictish):
    name: FunctionName


class NamedToolChoice(_Strictish):
    type: Literal["function", "code_interpreter", "file_search"]
    function: NamedFunction | None = None


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class RunOptions(RequestModel):
    """Fields shared by create-run and create-thread-and-run."""

    assistant_id: str = Field(min_length=1)
    model: str | None = Field(default=None, min_length=1)
    instructions: str | None = Field(default=None, max_length=256_000)
    tools: list[Tool] | None = Field(default=None, max_length=20)
    metadata: Metadata = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stream: bool | None = None
    # At most what their 32-bit columns hold (OpenAI documents no maximum).
    max_prompt_tokens: int | None = Field(default=None, ge=256, le=INT32_MAX)
    max_completion_tokens: int | None = Field(default=None, ge=256, le=INT32_MAX)
    truncation_strategy: TruncationStrategy | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = (
        None
    )


class CreateRunRequest(RunOptions):
    additional_instructions: str | None = Field(default=None, max_length=256_000)
    additional_messages: list[CreateMessageRequest] | None = None


class CreateThreadAndRunRequest(RunOptions):
    thread: CreateThreadRequest | None = None
    tool_resources: ToolResources | None = None


class ModifyRunRequest(RequestModel):
    metadata: Metadata = None


class ToolOutput(_Strictish):
    tool_call_id: str | None = None
    output: str | None = None


class SubmitToolOutputsRequest(RequestModel):
    tool_outputs: list[ToolOutput]
    stream: bool | None = None


class RunObject(WireModel):
    id: str
    object: Literal["thread.run"] = "thread.run"
    created_at: int
    assistant_id: str
    thread_id: str
    status: RunStatus
    started_at: int | None
    expires_at: int | None
    cancelled_at: int | None
    failed_at: int | None
    completed_at: int | None
    required_action: dict[str, Any] | None
    last_error: dict[str, Any] | None
    model: str
    instructions: str
    tools: list[dict[str, Any]]
    metadata: dict[str, str]
    temperature: float | None
    top_p: float | None
    max_completion_tokens: int | None
    max_prompt_tokens: int | None
    truncation_strategy: dict[str, Any]
    incomplete_details: dict[str, Any] | None
    usage: dict[str, int] | None
    response_format: Any
    tool_choice: Any
    parallel_tool_calls: bool
    reasoning_effort: str | None
    tool_resources: dict[str, Any]


StepType = Literal["message_creation", "tool_calls"]
StepStatus = Literal["in_progress", "cancelled", "failed", "completed", "expired"]


class RunStepObject(WireModel):
    id: str
    object: Literal["thread.run.step"] = "thread.run.step"
    created_at: int
    run_id: str
    assistant_id: str
    thread_id: str
    type: StepType
    status: StepStatus
    cancelled_at: int | None
    completed_at: int | None
    expired_at: int | None
    failed_at: int | None
    last_error: dict[str, Any] | None
    step_details: dict[str, Any]
    usage: dict[str, int] | None
    metadata: dict[str, str]
