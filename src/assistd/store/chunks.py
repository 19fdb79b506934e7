"""Chunk rows, shared by both dialects' indexes: add, remove, fetch, and the per-store
generation and count that ``chunk_generations`` keeps.

The dialect-specific searches are in ``chunk_index_sqlite`` and ``chunk_index_pg``; how
they are ranked is ``assistd.retrieval``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from assistd.store.database import Connection
from assistd.store.tables import chunk_generations, chunks


@dataclass(frozen=True)
class NewChunk:
    """A chunk to store; ``embedding`` is already in the column's form for the dialect."""

    seq: int
    text: str
    token_count: int
    embedding: object


@dataclass(frozen=True)
class ChunkRow:
    id: int
    vector_store_id: str
    file_id: str
    seq: int
    text: str


_BUMP = sa.text(
    "INSERT INTO chunk_generations (vector_store_id, generation, chunk_count) "
    "VALUES (:id, 1, :delta) ON CONFLICT (vector_store_id) DO UPDATE "
    "SET generation = chunk_generations.generation + 1, "
    "chunk_count = chunk_generations.chunk_count + :delta"
)


async def add(
    conn: Connection, vector_store_id: str, file_id: str, items: Sequence[NewChunk]
) -> None:
    if not items:
        return
    await conn.execute(
        sa.insert(chunks),
        [
            {
                "vector_store_id": vector_store_id,
                "file_id": file_id,
                "seq": item.seq,
                "text": item.text,
                "token_count": item.token_count,
                "embedding": item.embedding,
            }
            for item in items
        ],
    )


async def remove(conn: Connection, vector_store_id: str, file_id: str | None) -> int:
    """Remove one file's chunks from a store (every chunk of it when ``None``); how many."""
    statement = sa.delete(chunks).where(chunks.c.vector_store_id == vector_store_id)
    if file_id is not None:
        statement = statement.where(chunks.c.file_id == file_id)
    result = await conn.execute(statement)
    return int(result.rowcount)


async def bump(conn: Connection, vector_store_id: str, delta: int) -> None:
    """Record in the writer's transaction that a store's chunks changed by ``delta``."""
    await conn.execute(_BUMP, {"id": vector_store_id, "delta": delta})


async def forget(conn: Connection, vector_store_id: str) -> None:
    """Drop a store's generation and count (its chunks are all gone)."""
    await conn.execute(
        sa.text("DELETE FROM chunk_generations WHERE vector_store_id = :id"),
        {"id": vector_store_id},
    )


async def stored_count(conn: Connection, vector_store_id: str) -> int:
    value = await conn.scalar(
        sa.text("SELECT chunk_count FROM chunk_generations WHERE vector_store_id = :id"),
        {"id": vector_store_id},
    )
    return int(value or 0)


async def generation(conn: Connection, vector_store_id: str) -> int:
    """How often the store's chunks changed, as this transaction sees it (0: never)."""
    value = await conn.scalar(
        sa.select(chunk_generations.c.generation).where(
            chunk_generations.c.vector_store_id == vector_store_id
        )
    )
    return int(value or 0)


async def fetch(conn: Connection, ids: Sequence[int]) -> dict[int, ChunkRow]:
    """The rows of these chunks (those that still exist)."""
    if not ids:
        return {}
    result = await conn.execute(
        sa.select(
            chunks.c.id, chunks.c.vector_store_id, chunks.c.file_id, chunks.c.seq, chunks.c.text
        ).where(chunks.c.id.in_(list(ids)))
    )
    return {
        int(row.id): ChunkRow(int(row.id), row.vector_store_id, row.file_id, int(row.seq), row.text)
        for row in result
    }
