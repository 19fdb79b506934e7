"""Assistant wire models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from assistd.protocol.common import (
    Metadata,
    RequestModel,
    ResponseFormat,
    Tool,
    ToolResources,
    WireModel,
)

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


class AssistantFields(RequestModel):
    """Fields shared by create and modify; all optional here."""

    name: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=512)
    instructions: str | None = Field(default=None, max_length=256_000)
    tools: list[Tool] | None = Field(default=None, max_length=128)
    tool_resources: ToolResources | None = None
    metadata: Metadata = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    response_format: ResponseFormat | None = None
    reasoning_effort: ReasoningEffort | None = None


class CreateAssistantRequest(AssistantFields):
    model: str = Field(min_length=1)


class ModifyAssistantRequest(AssistantFields):
    model: str | None = Field(default=None, min_length=1)


class AssistantObject(WireModel):
    id: str
    object: Literal["assistant"] = "assistant"
    created_at: int
    name: str | None
    description: str | None
    model: str
    instructions: str | None
    tools: list[dict[str, Any]]
    tool_resources: dict[str, Any] | None
    metadata: dict[str, str]
    temperature: float | None
    top_p: float | None
    response_format: Any
    reasoning_effort: ReasoningEffort | None
