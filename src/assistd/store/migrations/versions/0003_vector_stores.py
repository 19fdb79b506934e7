"""Vector stores, their files and file batches.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def _object_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("sort_key", sa.BigInteger, nullable=False),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "vector_stores",
        *_object_columns(),
        sa.Column("name", sa.String(256)),
        sa.Column("description", sa.String(512)),
        sa.Column("metadata", Json, nullable=False),
        sa.Column("expires_after", Json),
        sa.Column("expires_at", sa.BigInteger),
        sa.Column("last_active_at", sa.BigInteger),
        sa.PrimaryKeyConstraint("id", name="pk_vector_stores"),
    )
    op.create_index("ix_vector_stores_project_sort_key", "vector_stores", ["project", "sort_key"])
    op.create_table(
        "vector_store_file_batches",
        *_object_columns(),
        sa.Column("vector_store_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_vector_store_file_batches"),
        sa.ForeignKeyConstraint(
            ["vector_store_id"],
            ["vector_stores.id"],
            name="fk_vector_store_file_batches_vector_store_id_vector_stores",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_vector_store_file_batches_vector_store_id",
        "vector_store_file_batches",
        ["vector_store_id"],
    )
    op.create_table(
        "vector_store_files",
        sa.Column("vector_store_id", sa.String(64), nullable=False),
        sa.Column("file_id", sa.String(64), nullable=False),
        sa.Column("sort_key", sa.BigInteger, nullable=False),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("batch_id", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_error", Json),
        sa.Column("usage_bytes", sa.BigInteger, nullable=False),
        sa.Column("chunking_strategy", Json, nullable=False),
        sa.Column("attributes", Json, nullable=False),
        sa.Column("parsed_text", sa.Text),
        sa.Column("worker_id", sa.String(64)),
        sa.Column("lease_until", sa.Float),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("vector_store_id", "file_id", name="pk_vector_store_files"),
        sa.ForeignKeyConstraint(
            ["vector_store_id"],
            ["vector_stores.id"],
            name="fk_vector_store_files_vector_store_id_vector_stores",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_vector_store_files_vector_store_id_sort_key",
        "vector_store_files",
        ["vector_store_id", "sort_key"],
    )
    op.create_index("ix_vector_store_files_batch_id", "vector_store_files", ["batch_id"])
    op.create_index("ix_vector_store_files_file_id", "vector_store_files", ["file_id"])
    op.create_index(
        "ix_vector_store_files_status_lease_until",
        "vector_store_files",
        ["status", "lease_until"],
    )


def downgrade() -> None:
    op.drop_table("vector_store_files")
    op.drop_table("vector_store_file_batches")
    op.drop_table("vector_stores")
