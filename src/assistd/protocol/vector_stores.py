"""Vector store, vector store file and file batch wire models.

``chunking_strategy`` arrives as a plain object and is resolved (``auto`` or ``static``,
bounds and the half-size overlap rule) by ``assistd.retrieval.chunking``, which names the
offending field the way the rest of the request validation does.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from assistd.protocol.common import (
    METADATA_MAX_KEY,
    METADATA_MAX_PAIRS,
    METADATA_MAX_VALUE,
    Metadata,
    RequestModel,
    WireModel,
)

VectorStoreStatus = Literal["expired", "in_progress", "completed"]
FileStatus = Literal["in_progress", "completed", "cancelled", "failed"]
FILE_STATUSES: tuple[str, ...] = FileStatus.__args__  # type: ignore[attr-defined]
FileErrorCode = Literal["server_error", "unsupported_file", "invalid_file"]
# int before float: an integer attribute is echoed as the integer it was, not as 2024.0.
AttributeValue = str | bool | int | float

CREATE_STORE_MAX_FILES = 500
BATCH_MAX_FILES = 2000


def _check_attributes(
    value: dict[str, AttributeValue] | None,
) -> dict[str, AttributeValue] | None:
    if value is None:
        return None
    if len(value) > METADATA_MAX_PAIRS:
        raise PydanticCustomError(
            "object_above_max_properties",
            "Invalid 'attributes': too many properties. Expected an object with at most "
            "{limit} properties, but got an object with {count} properties instead.",
            {"limit": METADATA_MAX_PAIRS, "count": len(value)},
        )
    for key, item in value.items():
        if len(key) > METADATA_MAX_KEY:
            raise PydanticCustomError(
                "string_above_max_length",
                "Invalid 'attributes': key '{key}...' is too long. Expected a key with "
                "maximum length {limit}, but got a key with length {length} instead.",
                {"key": key[:16], "limit": METADATA_MAX_KEY, "length": len(key)},
            )
        if isinstance(item, str) and len(item) > METADATA_MAX_VALUE:
            raise PydanticCustomError(
                "string_above_max_length",
                "Invalid 'attributes.{key}': string too long. Expected a string with maximum "
                "length {limit}, but got a string with length {length} instead.",
                {"key": key[:64], "limit": METADATA_MAX_VALUE, "length": len(item)},
            )
    return value


Attributes = Annotated[dict[str, AttributeValue] | None, AfterValidator(_check_attributes)]


# ---- requests --------------------------------------------------------------------------


class ExpiresAfter(BaseModel):
    model_config = ConfigDict(extra="ignore")

    anchor: Literal["last_active_at"]
    days: int = Field(ge=1, le=365)


class CreateVectorStoreRequest(RequestModel):
    file_ids: list[str] | None = Field(default=None, max_length=CREATE_STORE_MAX_FILES)
    name: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=512)
    expires_after: ExpiresAfter | None = None
    chunking_strategy: dict[str, Any] | None = None
    metadata: Metadata = None


class ModifyVectorStoreRequest(RequestModel):
    name: str | None = Field(default=None, max_length=256)
    # Unlike the other fields, an explicit null here is meaningful: it removes the policy.
    expires_after: ExpiresAfter | None = None
    metadata: Metadata = None


class CreateVectorStoreFileRequest(RequestModel):
    file_id: str = Field(min_length=1)
    chunking_strategy: dict[str, Any] | None = None
    attributes: Attributes = None


class CreateFileBatchRequest(RequestModel):
    file_ids: list[str] | None = Field(default=None, min_length=1, max_length=BATCH_MAX_FILES)
    files: list[CreateVectorStoreFileRequest] | None = Field(
        default=None, min_length=1, max_length=BATCH_MAX_FILES
    )
    chunking_strategy: dict[str, Any] | None = None
    attributes: Attributes = None


class UpdateVectorStoreFileRequest(RequestModel):
    attributes: Attributes


# ---- responses -------------------------------------------------------------------------


class FileCounts(WireModel):
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    total: int = 0


class ExpiresAfterObject(WireModel):
    anchor: Literal["last_active_at"]
    days: int


class VectorStoreObject(WireModel):
    id: str
    object: Literal["vector_store"] = "vector_store"
    created_at: int
    name: str
    usage_bytes: int
    file_counts: FileCounts
    status: VectorStoreStatus
    expires_after: ExpiresAfterObject | None
    expires_at: int | None
    last_active_at: int | None
    metadata: dict[str, str]


class FileError(WireModel):
    code: FileErrorCode
    message: str


class StaticChunking(WireModel):
    max_chunk_size_tokens: int
    chunk_overlap_tokens: int


class StaticChunkingStrategyObject(WireModel):
    type: Literal["static"] = "static"
    static: StaticChunking


class OtherChunkingStrategyObject(WireModel):
    type: Literal["other"] = "other"


class VectorStoreFileObject(WireModel):
    id: str
    object: Literal["vector_store.file"] = "vector_store.file"
    usage_bytes: int
    created_at: int
    vector_store_id: str
    status: FileStatus
    last_error: FileError | None
    chunking_strategy: Annotated[
        StaticChunkingStrategyObject | OtherChunkingStrategyObject, Field(discriminator="type")
    ]
    attributes: dict[str, AttributeValue]


class VectorStoreFileBatchObject(WireModel):
    id: str
    # The spec's enum value; its description says "file_batch", the API sends this.
    object: Literal["vector_store.files_batch"] = "vector_store.files_batch"
    created_at: int
    vector_store_id: str
    status: FileStatus
    file_counts: FileCounts


class FileContentPart(WireModel):
    type: Literal["text"] = "text"
    text: str


class VectorStoreFileContentPage(WireModel):
    object: Literal["vector_store.file_content.page"] = "vector_store.file_content.page"
    data: list[FileContentPart]
    has_more: bool = False
    next_page: str | None = None
