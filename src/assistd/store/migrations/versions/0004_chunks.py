"""Chunks of vector store files: text, embeddings and a keyword index per dialect.

SQLite: an FTS5 table over ``chunks.text`` that reads the text from ``chunks`` itself
(external content, so the text is stored once), kept in step by triggers so no code path
can change chunks without the index following. The Porter stemmer matches "indexes" with
"index", as PostgreSQL's ``english`` configuration does: both dialects rank the same words.

PostgreSQL: the pgvector extension for the embedding column, and a generated ``tsvector``
with a GIN index. The ``english`` configuration (stemming, stop words) rather than
``simple``: the dense side already covers meaning, so what the keyword side must win is
the words a question shares with its answer in another form ("configured" and
"configuration"), and dropping stop words keeps "what is the" from matching every chunk.
Identifiers survive it: "XK-4471" or "max_num_results" is split into the same parts in
the text and in the query, and the query asks for the parts as a phrase.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import VECTOR

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

FTS = (
    "CREATE VIRTUAL TABLE chunks_fts USING fts5(text, vector_store_id, content='chunks', "
    "content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')"
)
FTS_TRIGGERS = (
    "CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN "
    "INSERT INTO chunks_fts(rowid, text, vector_store_id) "
    "VALUES (new.id, new.text, new.vector_store_id); END",
    "CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN "
    "INSERT INTO chunks_fts(chunks_fts, rowid, text, vector_store_id) "
    "VALUES ('delete', old.id, old.text, old.vector_store_id); END",
    "CREATE TRIGGER chunks_fts_update AFTER UPDATE ON chunks BEGIN "
    "INSERT INTO chunks_fts(chunks_fts, rowid, text, vector_store_id) "
    "VALUES ('delete', old.id, old.text, old.vector_store_id); "
    "INSERT INTO chunks_fts(rowid, text, vector_store_id) "
    "VALUES (new.id, new.text, new.vector_store_id); END",
)


def _require_pgvector() -> None:
    bind = op.get_bind()
    available = bind.exec_driver_sql(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
    ).scalar()
    if available is None:
        # Without this the migration fails on an opaque "could not open extension control
        # file"; say what to install instead.
        raise RuntimeError(
            "PostgreSQL lacks the pgvector extension (vector), which vector stores need: "
            "install it on the database server (scripts/ensure-pgvector does, as root)."
        )
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        _require_pgvector()
    op.create_table(
        "chunks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("vector_store_id", sa.String(64), nullable=False),
        sa.Column("file_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("token_count", sa.Integer, nullable=False),
        sa.Column(
            "embedding", sa.LargeBinary().with_variant(VECTOR(), "postgresql"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name="pk_chunks"),
        sa.ForeignKeyConstraint(
            ["vector_store_id"],
            ["vector_stores.id"],
            name="fk_chunks_vector_store_id_vector_stores",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_chunks_vector_store_id_file_id_seq",
        "chunks",
        ["vector_store_id", "file_id", "seq"],
        unique=True,
    )
    op.create_table(
        "chunk_generations",
        sa.Column("vector_store_id", sa.String(64), nullable=False),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.Column("chunk_count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("vector_store_id", name="pk_chunk_generations"),
        sa.ForeignKeyConstraint(
            ["vector_store_id"],
            ["vector_stores.id"],
            name="fk_chunk_generations_vector_store_id_vector_stores",
            ondelete="CASCADE",
        ),
    )
    if postgres:
        op.execute(
            "ALTER TABLE chunks ADD COLUMN tsv tsvector "
            "GENERATED ALWAYS AS (to_tsvector('english', text)) STORED"
        )
        op.execute("CREATE INDEX ix_chunks_tsv ON chunks USING gin (tsv)")
        # HNSW needs a fixed dimension: one partial index for the local embedder's 384.
        # Vectors of other widths are searched by an exact scan (see assistd.retrieval).
        op.execute(
            "CREATE INDEX ix_chunks_embedding_384 ON chunks USING hnsw "
            "((embedding::vector(384)) vector_ip_ops) WHERE vector_dims(embedding) = 384"
        )
    else:
        op.execute(FTS)
        for trigger in FTS_TRIGGERS:
            op.execute(trigger)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TABLE chunks_fts")  # its triggers go with the chunks table
    op.drop_table("chunk_generations")
    op.drop_table("chunks")
