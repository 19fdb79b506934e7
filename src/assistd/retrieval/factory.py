"""The ``ChunkIndex`` for a database dialect."""

from __future__ import annotations

from assistd.retrieval.index import ChunkIndex
from assistd.retrieval.pg_index import PostgresChunkIndex
from assistd.retrieval.sqlite_index import SqliteChunkIndex


def build_chunk_index(dialect: str) -> ChunkIndex:
    """SQLite keeps vectors in memory beside FTS5; PostgreSQL searches in the database."""
    if dialect == "postgresql":
        return PostgresChunkIndex()
    if dialect == "sqlite":
        return SqliteChunkIndex()
    raise ValueError(f"no chunk index for database dialect {dialect!r}")
