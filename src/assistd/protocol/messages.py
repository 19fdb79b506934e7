"""Message wire models: request content parts and the stored message object."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from assistd.protocol.common import Metadata, RequestModel, WireModel

ImageDetail = Literal["auto", "low", "high"]


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPartRequest(_Part):
    type: Literal["text"]
    text: str


class ImageFileRef(_Part):
    file_id: str = Field(min_length=1)
    detail: ImageDetail | None = None


class ImageFilePart(_Part):
    type: Literal["image_file"]
    image_file: ImageFileRef


class ImageUrlRef(_Part):
    url: str = Field(min_length=1)
    detail: ImageDetail | None = None


class ImageUrlPart(_Part):
    type: Literal["image_url"]
    image_url: ImageUrlRef


ContentPartRequest = Annotated[
    TextPartRequest | ImageFilePart | ImageUrlPart, Field(discriminator="type")
]


class AttachmentTool(_Part):
    type: Literal["code_interpreter", "file_search"]


class Attachment(_Part):
    file_id: str = Field(min_length=1)
    tools: list[AttachmentTool] = Field(default_factory=list)


class CreateMessageRequest(RequestModel):
    role: Literal["user", "assistant"]
    content: str | list[ContentPartRequest] = Field(min_length=1)
    attachments: list[Attachment] | None = None
    metadata: Metadata = None


class ModifyMessageRequest(RequestModel):
    metadata: Metadata = None


class IncompleteDetails(WireModel):
    reason: Literal["content_filter", "max_tokens", "run_cancelled", "run_expired", "run_failed"]


class MessageObject(WireModel):
    id: str
    object: Literal["thread.message"] = "thread.message"
    created_at: int
    thread_id: str
    status: Literal["in_progress", "incomplete", "completed"]
    incomplete_details: IncompleteDetails | None
    completed_at: int | None
    incomplete_at: int | None
    role: Literal["user", "assistant"]
    content: list[dict[str, Any]]
    assistant_id: str | None
    run_id: str | None
    attachments: list[dict[str, Any]]
    metadata: dict[str, str]
