"""Helpers for the vector store tests: SDK location, waiting, and controllable fakes.

The fakes stand in for what a test must steer: an embedder that can be held (so a file
stays ``in_progress`` for as long as a test needs) or made to fail, and a chunk index
that records what ingestion stored, so tests can see chunks come and go.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import httpx
import numpy as np
import openai
from sqlalchemy.ext.asyncio import AsyncConnection

from assistd.embeddings.base import (
    EmbedderError,
    EmbedderRegistry,
    EmbeddingInput,
    EmbeddingResult,
)
from assistd.retrieval.index import ChunkInput, SearchHit, SearchQuery, Vectors
from assistd.retrieval.ingestion import EMBEDDING_MODEL

T = TypeVar("T")


def stores(client: openai.OpenAI) -> Any:
    """``client.vector_stores`` (openai >= 1.66) or ``client.beta.vector_stores`` (1.59.4)."""
    found = getattr(client, "vector_stores", None)
    return found if found is not None else client.beta.vector_stores  # type: ignore[attr-defined]


def wait_until(probe: Callable[[], T | None], *, timeout: float = 30.0) -> T:
    """Call ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s; last value {value!r}")
        time.sleep(0.02)


LONG_TEXT = " ".join(f"Sentence {i} about the annual leave policy." for i in range(400))


def upload(client: openai.OpenAI, name: str, data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return str(client.files.create(file=(name, raw), purpose="assistants").id)


def content_text(http: httpx.Client, vector_store_id: str, file_id: str) -> str:
    response = http.get(f"/vector_stores/{vector_store_id}/files/{file_id}/content")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "vector_store.file_content.page"
    assert body["has_more"] is False
    assert body["next_page"] is None
    return "".join(part["text"] for part in body["data"] if part["type"] == "text")


def finished(client: openai.OpenAI, vector_store_id: str, file_id: str) -> Any:
    def probe() -> Any:
        item = stores(client).files.retrieve(file_id, vector_store_id=vector_store_id)
        return item if item.status != "in_progress" else None

    return wait_until(probe)


class GatedEmbedder:
    """Deterministic vectors (a hash of the text), behind a gate the test opens.

    ``gate`` closed: ``embed`` waits. ``fail``: ``embed`` raises that message.
    """

    accepts_token_ids: ClassVar[bool] = False
    DIMENSIONS = 8

    def __init__(self, *, open_gate: bool = True, fail: str | None = None) -> None:
        self.gate = threading.Event()
        if open_gate:
            self.gate.set()
        self.fail = fail
        self.calls = 0
        self.waiting = threading.Event()

    @property
    def dimensions(self) -> int | None:
        return self.DIMENSIONS

    async def embed(
        self,
        texts: EmbeddingInput,
        *,
        model: str | None = None,
        dimensions: int | None = None,
    ) -> EmbeddingResult:
        self.calls += 1
        self.waiting.set()
        # The gate is a threading.Event: the test thread opens it, not the server's loop.
        while not self.gate.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if self.fail is not None:
            raise EmbedderError(self.fail)
        rows = []
        for text in texts:
            digest = hashlib.sha256(str(text).encode()).digest()[: self.DIMENSIONS]
            vector = np.frombuffer(digest, dtype=np.uint8).astype(np.float32) + 1.0
            rows.append(vector / np.linalg.norm(vector))
        return EmbeddingResult(np.vstack(rows), prompt_tokens=len(texts))

    async def aclose(self) -> None:
        return None


def registry_of(embedder: GatedEmbedder) -> EmbedderRegistry:
    registry = EmbedderRegistry()
    registry.add(EMBEDDING_MODEL, embedder)
    return registry


class RecordingChunkIndex:
    """A ``ChunkIndex`` keeping chunks in memory, keyed by (vector_store_id, file_id)."""

    def __init__(self) -> None:
        self.chunks: dict[tuple[str, str], list[ChunkInput]] = {}
        self.vectors: dict[tuple[str, str], Vectors] = {}

    async def add(
        self,
        conn: AsyncConnection,
        *,
        vector_store_id: str,
        file_id: str,
        chunks: Sequence[ChunkInput],
        vectors: Vectors,
    ) -> None:
        assert len(chunks) == len(vectors)
        self.chunks[(vector_store_id, file_id)] = list(chunks)
        self.vectors[(vector_store_id, file_id)] = vectors

    async def delete(
        self, conn: AsyncConnection, *, vector_store_id: str, file_id: str | None = None
    ) -> int:
        keys = [
            key
            for key in self.chunks
            if key[0] == vector_store_id and (file_id is None or key[1] == file_id)
        ]
        removed = 0
        for key in keys:
            removed += len(self.chunks.pop(key))
            self.vectors.pop(key, None)
        return removed

    async def search(self, conn: AsyncConnection, query: SearchQuery) -> list[SearchHit]:
        return []

    def files_of(self, vector_store_id: str) -> set[str]:
        return {file_id for vs_id, file_id in self.chunks if vs_id == vector_store_id}
