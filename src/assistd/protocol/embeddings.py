"""Embeddings wire types (``POST /v1/embeddings``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, StrictStr

from assistd.protocol.common import RequestModel, WireModel

# OpenAI's limit on the inputs of one request.
MAX_INPUTS = 2048


class CreateEmbeddingRequest(RequestModel):
    """``input`` is one text, several texts, one token-id array or several.

    The items are checked by the service rather than by a union of list types: pydantic
    would report a mixed ``["text", 5]`` against whichever branch it tried first, where
    the service names the item that breaks the pattern the first one set (``input[1]``),
    and it also refuses empty items and more than 2048 inputs.
    """

    input: StrictStr | list[Any]
    model: str
    # The official SDK sends "base64" unless told otherwise, and decodes it itself.
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None


class EmbeddingObject(WireModel):
    object: Literal["embedding"] = "embedding"
    index: int
    # Floats, or base64 of the little-endian float32 bytes.
    embedding: list[float] | str


class EmbeddingUsage(WireModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(WireModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingObject]
    model: str
    usage: EmbeddingUsage
