"""Background ingestion of vector store files: parse, chunk, embed, index.

The work queue is the database itself: a file attached to a store is a row ``in_progress``
with no lease, and any worker may take it. A worker claims a file with one conditional
update of ``worker_id`` and ``lease_until`` (two workers never both win), renews the lease
while it works, and ends with one write transaction that stores the chunks and marks the
file ``completed`` only if the row is still in progress *and still its own*: a file that
was deleted, cancelled or attached again meanwhile is never resurrected. The statements
are ``store.ingestion_queue``'s; when and how often to run them is decided here.

After a restart, SQLite (one process) takes every unfinished file again at start-up; on
PostgreSQL a file whose lease lapsed goes to whichever worker polls first. A file taken
``MAX_ATTEMPTS`` times without finishing (say, a document that kills its worker) fails
with ``server_error`` instead of taking the server down on every start.

``usage_bytes`` is the size of the parsed text in UTF-8: what the store keeps and searches,
which is what OpenAI bills as usage (not the uploaded file's size).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from assistd.embeddings.base import EmbedderError, EmbedderRegistry, Vectors
from assistd.errors import APIError
from assistd.retrieval.chunking import (
    AUTO_CHUNKING_STRATEGY,
    Chunk,
    ChunkingStrategy,
    chunk_text,
)
from assistd.retrieval.index import ChunkIndex, ChunkInput
from assistd.retrieval.parsers import ParseError, parse_document
from assistd.store import ingestion_queue as queue
from assistd.store.blobs import BlobStore
from assistd.store.database import Database
from assistd.store.vector_store_files import FileKey

logger = logging.getLogger("assistd.ingestion")

# File search embeds every chunk and every query with one model, so the vectors of all
# stores are comparable; choosing it by setting comes with the run integration of search.
EMBEDDING_MODEL = "all-MiniLM-L6-v2"
# Texts per embedding call: large enough to batch well, small enough that one huge file
# does not hold the embedder for long between other files' batches.
EMBED_BATCH = 64
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class IngestionConfig:
    worker_id: str
    concurrency: int = 2
    lease_seconds: float = 60.0
    # How often an idle worker looks for files another process (or a restart) left.
    poll_seconds: float = 1.0
    embedding_model: str = EMBEDDING_MODEL


class IngestionFailed(Exception):
    """Ends a file ``failed`` with this ``last_error``; the message is the user's to read."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _strategy(stored: dict[str, Any]) -> ChunkingStrategy:
    if stored.get("type") != "static":
        return AUTO_CHUNKING_STRATEGY
    static = stored["static"]
    return ChunkingStrategy(
        int(static["max_chunk_size_tokens"]), int(static["chunk_overlap_tokens"])
    )


def _parse_and_chunk(
    data: bytes, filename: str, mime: str | None, stored: dict[str, Any]
) -> tuple[str, list[Chunk]]:
    """Blocking: runs in a thread."""
    parsed = parse_document(data, filename, mime)
    # PostgreSQL text cannot hold NUL, and it carries no meaning in a document's text.
    text = parsed.text.replace("\x00", "")
    return text, chunk_text(text, _strategy(stored))


class IngestionWorker:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        embedders: EmbedderRegistry,
        chunk_index: ChunkIndex | None,
        config: IngestionConfig,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.embedders = embedders
        self.chunk_index = chunk_index
        self.config = config
        self.worker_id = config.worker_id
        self.tasks: dict[FileKey, asyncio.Task[None]] = {}
        # The sort_key of the row each task claimed: attaching a file again replaces its row
        # under the same key, and a task must never finish the attach that replaced its own.
        self.claimed: dict[FileKey, int] = {}
        self._wakeup = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []

    def wake(self) -> None:
        """Look for new files now rather than at the next poll."""
        self._wakeup.set()

    def abandon(self, keys: Iterable[FileKey]) -> None:
        """Stop working on files that were deleted, cancelled or attached again."""
        for key in keys:
            task = self.tasks.get(key)
            if task is not None:
                task.cancel()

    async def start(self, *, recover_all: bool) -> None:
        """Start the loops; ``recover_all`` (single-process stores) frees every lease first."""
        if recover_all:
            async with self.db.write() as conn:
                await queue.free_all(conn)
        self._loops = [
            asyncio.create_task(self._dispatch(), name="assistd-ingest-dispatch"),
            asyncio.create_task(self._maintain(), name="assistd-ingest-leases"),
        ]

    async def stop(self) -> None:
        running = [*self._loops, *self.tasks.values()]
        for task in running:
            task.cancel()
        for task in running:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        try:
            await self._release()
        except Exception:
            logger.exception("could not release ingestion leases; they will lapse")

    async def _release(self) -> None:
        # Handing files back at a clean stop is not the files' fault: the attempt is undone.
        async with self.db.write() as conn:
            await queue.release(conn, self.worker_id)

    async def backlog(self) -> int:
        """Files waiting for or in ingestion (any process's): the metrics' backlog."""
        async with self.db.read() as conn:
            return await queue.backlog(conn)

    # ---- scheduling ---------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while True:
            self._wakeup.clear()
            free = self.config.concurrency - len(self.tasks)
            if free > 0:
                try:
                    for key, generation in await self._claim(free):
                        self._spawn(key, generation)
                except Exception:
                    logger.exception("claiming files to ingest failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.config.poll_seconds)

    def _spawn(self, key: FileKey, generation: int) -> None:
        previous = self.tasks.get(key)
        if previous is not None:
            previous.cancel()  # an older attach of the same file, superseded
        task = asyncio.create_task(
            self._run(key, generation), name=f"assistd-ingest-{key[0]}-{key[1]}"
        )
        self.tasks[key] = task
        self.claimed[key] = generation

        def done(finished: asyncio.Task[None]) -> None:
            if self.tasks.get(key) is finished:
                del self.tasks[key]
                del self.claimed[key]
            self._wakeup.set()  # a slot is free

        task.add_done_callback(done)

    async def _claim(self, limit: int) -> list[tuple[FileKey, int]]:
        now = time.time()
        async with self.db.write() as conn:
            await queue.fail_exhausted(
                conn,
                now=now,
                max_attempts=MAX_ATTEMPTS,
                error={
                    "code": "server_error",
                    "message": "The file could not be processed: the server stopped "
                    f"while processing it {MAX_ATTEMPTS} times.",
                },
            )
            return await queue.claim_next(
                conn,
                self.worker_id,
                limit=limit,
                now=now,
                lease_until=now + self.config.lease_seconds,
            )

    async def _maintain(self) -> None:
        interval = max(1.0, self.config.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._renew()
            except Exception:
                logger.exception("renewing ingestion leases failed; retrying")

    async def _renew(self) -> None:
        owned = list(self.tasks)
        if not owned:
            return
        async with self.db.write() as conn:
            still = await queue.renew_leases(
                conn, self.worker_id, owned, time.time() + self.config.lease_seconds
            )
        # Gone, cancelled, attached again or taken over by another process: stop spending
        # work on it.
        self.abandon(key for key in owned if (key, self.claimed.get(key)) not in still)

    # ---- one file -----------------------------------------------------------------------

    async def _run(self, key: FileKey, generation: int) -> None:
        try:
            await self._ingest(key, generation)
        except IngestionFailed as exc:
            await self._settle(key, generation, exc.code, exc.message)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("ingesting file %s into %s crashed", key[1], key[0])
            await self._settle(
                key,
                generation,
                "server_error",
                "The file could not be processed because of a server error.",
            )

    async def _settle(self, key: FileKey, generation: int, code: str, message: str) -> None:
        try:
            async with self.db.write() as conn:
                await queue.fail(
                    conn, key, generation, self.worker_id, {"code": code, "message": message}
                )
        except Exception:
            logger.exception("could not record the failure of file %s; it will be retried", key[1])

    async def _ingest(self, key: FileKey, generation: int) -> None:
        file_id = key[1]
        async with self.db.read() as conn:
            attached = await queue.get_claimed(conn, key, generation, self.worker_id)
            if attached is None:
                return
            upload = await queue.upload_of(conn, attached)
        if upload is None:
            raise IngestionFailed("invalid_file", f"The file '{file_id}' was deleted.")
        data = await self._read(file_id)
        try:
            text, chunks = await asyncio.to_thread(
                _parse_and_chunk,
                data,
                upload.filename,
                upload.content_type,
                attached.chunking_strategy,
            )
        except ParseError as exc:
            raise IngestionFailed(exc.code, exc.message) from None
        vectors = await self._embed([chunk.text for chunk in chunks])
        await self._complete(key, generation, text, chunks, vectors)

    async def _read(self, file_id: str) -> bytes:
        try:
            stream = await self.blobs.open(file_id)
        except FileNotFoundError:
            raise IngestionFailed(
                "server_error", "The file's contents are missing from the server's storage."
            ) from None
        return b"".join([piece async for piece in stream])

    async def _embed(self, texts: Sequence[str]) -> Vectors:
        model = self.config.embedding_model
        try:
            route = self.embedders.resolve(model)
        except APIError:
            raise IngestionFailed(
                "server_error", f"The embedding model '{model}' is not available on this server."
            ) from None
        parts: list[Vectors] = []
        for start in range(0, len(texts), EMBED_BATCH):
            try:
                result = await route.embedder.embed(
                    texts[start : start + EMBED_BATCH], model=route.upstream_model
                )
            except EmbedderError as exc:
                raise IngestionFailed(
                    "server_error", f"Embedding the file's text failed: {exc.message}"
                ) from None
            parts.append(result.vectors)
        if not parts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.vstack(parts).astype(np.float32, copy=False)

    async def _complete(
        self,
        key: FileKey,
        generation: int,
        text: str,
        chunks: Sequence[Chunk],
        vectors: Vectors,
    ) -> None:
        vector_store_id, file_id = key
        async with self.db.write() as conn:
            # The status update comes first: it locks the row, so a delete racing this
            # commit either ran before (nothing matches) or waits and then sees the chunks.
            finished = await queue.finish(
                conn,
                key,
                generation,
                self.worker_id,
                parsed_text=text,
                usage_bytes=len(text.encode("utf-8")),
            )
            # No index is only a Services built without one: the file is parsed, not findable.
            if not finished or self.chunk_index is None:
                return
            # Chunks of an earlier attach of the same file, if any, are replaced.
            await self.chunk_index.delete(conn, vector_store_id=vector_store_id, file_id=file_id)
            await self.chunk_index.add(
                conn,
                vector_store_id=vector_store_id,
                file_id=file_id,
                chunks=[ChunkInput(c.index, c.text, c.token_count) for c in chunks],
                vectors=vectors,
            )
