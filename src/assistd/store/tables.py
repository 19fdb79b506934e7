"""Table definitions (SQLAlchemy Core). Storage rows, not wire objects.

Every object table has ``id`` (the public id), ``sort_key`` (decoded from the id, see
``assistd.ids``) for stable creation order, ``project`` for isolation and ``created_at``.
Nested structures the API only echoes (tools, tool_resources, content...) are JSON columns.
"""

from __future__ import annotations

import sqlalchemy as sa
from pgvector.sqlalchemy import VECTOR
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def _object_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("sort_key", sa.BigInteger, nullable=False),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    ]


api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("project", sa.String(128), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

assistants = sa.Table(
    "assistants",
    metadata,
    *_object_columns(),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("name", sa.String(256)),
    sa.Column("description", sa.String(512)),
    sa.Column("instructions", sa.Text),
    sa.Column("tools", Json, nullable=False),
    sa.Column("tool_resources", Json),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("temperature", sa.Float),
    sa.Column("top_p", sa.Float),
    sa.Column("response_format", Json),
    sa.Column("reasoning_effort", sa.String(16)),
    sa.Index(None, "project", "sort_key"),
)

threads = sa.Table(
    "threads",
    metadata,
    *_object_columns(),
    sa.Column("tool_resources", Json),
    sa.Column("metadata", Json, nullable=False),
    sa.Index(None, "project", "sort_key"),
)

messages = sa.Table(
    "messages",
    metadata,
    *_object_columns(),
    sa.Column(
        "thread_id",
        sa.String(64),
        sa.ForeignKey("threads.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("content", Json, nullable=False),
    sa.Column("attachments", Json, nullable=False),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("assistant_id", sa.String(64)),
    sa.Column("run_id", sa.String(64)),
    sa.Column("incomplete_details", Json),
    sa.Column("completed_at", sa.BigInteger),
    sa.Column("incomplete_at", sa.BigInteger),
    sa.Index(None, "thread_id", "sort_key"),
    sa.Index(None, "run_id"),
)

files = sa.Table(
    "files",
    metadata,
    *_object_columns(),
    sa.Column("filename", sa.String(1024), nullable=False),
    sa.Column("purpose", sa.String(32), nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("status_details", sa.Text),
    sa.Column("expires_at", sa.BigInteger),
    sa.Column("content_type", sa.String(256)),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Index(None, "project", "sort_key"),
    sa.Index(None, "expires_at"),
)

runs = sa.Table(
    "runs",
    metadata,
    *_object_columns(),
    sa.Column(
        "thread_id",
        sa.String(64),
        sa.ForeignKey("threads.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("assistant_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", sa.BigInteger),
    sa.Column("expires_at", sa.BigInteger),
    sa.Column("cancelled_at", sa.BigInteger),
    sa.Column("failed_at", sa.BigInteger),
    sa.Column("completed_at", sa.BigInteger),
    sa.Column("required_action", Json),
    sa.Column("last_error", Json),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("instructions", sa.Text, nullable=False),
    sa.Column("tools", Json, nullable=False),
    sa.Column("tool_resources", Json, nullable=False),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("temperature", sa.Float),
    sa.Column("top_p", sa.Float),
    sa.Column("max_completion_tokens", sa.Integer),
    sa.Column("max_prompt_tokens", sa.Integer),
    sa.Column("truncation_strategy", Json, nullable=False),
    sa.Column("incomplete_details", Json),
    sa.Column("usage", Json),
    sa.Column("response_format", Json),
    sa.Column("tool_choice", Json),
    sa.Column("parallel_tool_calls", sa.Boolean, nullable=False),
    sa.Column("reasoning_effort", sa.String(16)),
    # Executor bookkeeping, never on the wire: who holds the run and until when.
    sa.Column("worker_id", sa.String(64)),
    sa.Column("lease_until", sa.Float),
    sa.Index(None, "thread_id", "sort_key"),
    sa.Index(None, "status", "lease_until"),
    # At most one active run per thread, enforced by the database itself.
    sa.Index(
        "uq_runs_active_thread",
        "thread_id",
        unique=True,
        sqlite_where=sa.text("status IN ('queued','in_progress','requires_action','cancelling')"),
        postgresql_where=sa.text(
            "status IN ('queued','in_progress','requires_action','cancelling')"
        ),
    ),
)

run_steps = sa.Table(
    "run_steps",
    metadata,
    *_object_columns(),
    sa.Column(
        "run_id",
        sa.String(64),
        sa.ForeignKey("runs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("thread_id", sa.String(64), nullable=False),
    sa.Column("assistant_id", sa.String(64), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("step_details", Json, nullable=False),
    sa.Column("last_error", Json),
    sa.Column("usage", Json),
    sa.Column("cancelled_at", sa.BigInteger),
    sa.Column("completed_at", sa.BigInteger),
    sa.Column("expired_at", sa.BigInteger),
    sa.Column("failed_at", sa.BigInteger),
    sa.Column("metadata", Json, nullable=False),
    sa.Index(None, "run_id", "sort_key"),
)

vector_stores = sa.Table(
    "vector_stores",
    metadata,
    *_object_columns(),
    sa.Column("name", sa.String(256)),
    sa.Column("description", sa.String(512)),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("expires_after", Json),
    sa.Column("expires_at", sa.BigInteger),
    sa.Column("last_active_at", sa.BigInteger),
    sa.Index(None, "project", "sort_key"),
)

vector_store_file_batches = sa.Table(
    "vector_store_file_batches",
    metadata,
    *_object_columns(),
    sa.Column(
        "vector_store_id",
        sa.String(64),
        sa.ForeignKey("vector_stores.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # Only "cancelled" is ever stored over "in_progress": the rest follows from the files.
    sa.Column("status", sa.String(16), nullable=False),
    sa.Index(None, "vector_store_id"),
)

# A file attached to a vector store. Its public id is the file's id, so the key is the pair;
# ``sort_key`` orders a store's files by when they were attached, not uploaded.
vector_store_files = sa.Table(
    "vector_store_files",
    metadata,
    sa.Column(
        "vector_store_id",
        sa.String(64),
        sa.ForeignKey("vector_stores.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("file_id", sa.String(64), primary_key=True),
    sa.Column("sort_key", sa.BigInteger, nullable=False),
    sa.Column("project", sa.String(128), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("batch_id", sa.String(64)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("last_error", Json),
    sa.Column("usage_bytes", sa.BigInteger, nullable=False),
    sa.Column("chunking_strategy", Json, nullable=False),
    sa.Column("attributes", Json, nullable=False),
    # The parsed text, served by /content; only ever read one file at a time.
    sa.Column("parsed_text", sa.Text),
    # Ingestion bookkeeping, never on the wire: who holds the file, until when, how often
    # it was taken (a file that keeps killing its worker must end up failed, not loop).
    sa.Column("worker_id", sa.String(64)),
    sa.Column("lease_until", sa.Float),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Index(None, "vector_store_id", "sort_key"),
    sa.Index(None, "batch_id"),
    sa.Index(None, "file_id"),
    sa.Index(None, "status", "lease_until"),
)

# The chunks of vector store files and their embeddings: packed little-endian float32 on
# SQLite, pgvector on PostgreSQL. The column is untyped (no dimension) so stores embedded by
# models of different widths share it; search scans one store's rows exactly (see
# assistd.retrieval). The keyword indexes exist on one dialect each and are made by
# migration 0004 outside this metadata: UNDECLARED_SEARCH_OBJECTS names them.
chunks = sa.Table(
    "chunks",
    metadata,
    # INTEGER PRIMARY KEY is SQLite's rowid, which the FTS5 index refers to.
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column(
        "vector_store_id",
        sa.String(64),
        sa.ForeignKey("vector_stores.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("file_id", sa.String(64), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("token_count", sa.Integer, nullable=False),
    sa.Column("embedding", sa.LargeBinary().with_variant(VECTOR(), "postgresql"), nullable=False),
    sa.Index(None, "vector_store_id", "file_id", "seq", unique=True),
)

# Bumped in the transaction that adds or removes a store's chunks, so a process that keeps
# a store's vectors in memory (SQLite) can tell from its own snapshot whether they are stale;
# the count weighs keyword terms (PostgreSQL), where COUNT(*) would scan the store's rows.
chunk_generations = sa.Table(
    "chunk_generations",
    metadata,
    sa.Column(
        "vector_store_id",
        sa.String(64),
        sa.ForeignKey("vector_stores.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("generation", sa.BigInteger, nullable=False),
    sa.Column("chunk_count", sa.BigInteger, nullable=False),
)

# Made by migration 0004 for one dialect only: SQLite's FTS5 table over chunks.text (and the
# shadow tables FTS5 keeps), PostgreSQL's generated tsvector column and its GIN index, and
# its HNSW index over 384-dimensional embeddings.
UNDECLARED_SEARCH_OBJECTS = frozenset(
    {
        "chunks_fts",
        "chunks_fts_config",
        "chunks_fts_data",
        "chunks_fts_docsize",
        "chunks_fts_idx",
        "tsv",
        "ix_chunks_tsv",
        "ix_chunks_embedding_384",
    }
)

# Token usage per project, UTC day and model (migration 0005), added to by an upsert per
# model call. The key's order makes "a project's usage since a date" one index range.
usage_daily = sa.Table(
    "usage_daily",
    metadata,
    sa.Column("project", sa.String(128), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("model", sa.String(256), primary_key=True),
    # One of usage.SHARDS rows per key that calls add to (reads sum them): not one row
    # that every run's last transaction locks until it commits.
    sa.Column("shard", sa.SmallInteger, primary_key=True, server_default=sa.text("0")),
    sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
    sa.Column("completion_tokens", sa.BigInteger, nullable=False),
    sa.Column("requests", sa.BigInteger, nullable=False),
)
