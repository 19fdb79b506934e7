"""Thread wire models."""

from __future__ import annotations

from typing import Any, Literal

from assistd.protocol.common import Metadata, RequestModel, ToolResources, WireModel
from assistd.protocol.messages import CreateMessageRequest


class CreateThreadRequest(RequestModel):
    messages: list[CreateMessageRequest] | None = None
    tool_resources: ToolResources | None = None
    metadata: Metadata = None


class ModifyThreadRequest(RequestModel):
    tool_resources: ToolResources | None = None
    metadata: Metadata = None


class ThreadObject(WireModel):
    id: str
    object: Literal["thread"] = "thread"
    created_at: int
    tool_resources: dict[str, Any] | None
    metadata: dict[str, str]
