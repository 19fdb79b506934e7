"""Initial schema: api keys, assistants, threads, messages, files.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
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
        "api_keys",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_table(
        "assistants",
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
        sa.PrimaryKeyConstraint("id", name="pk_assistants"),
    )
    op.create_index("ix_assistants_project_sort_key", "assistants", ["project", "sort_key"])
    op.create_table(
        "threads",
        *_object_columns(),
        sa.Column("tool_resources", Json),
        sa.Column("metadata", Json, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_threads"),
    )
    op.create_index("ix_threads_project_sort_key", "threads", ["project", "sort_key"])
    op.create_table(
        "messages",
        *_object_columns(),
        sa.Column("thread_id", sa.String(64), nullable=False),
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
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.ForeignKeyConstraint(
            ["thread_id"],
            ["threads.id"],
            name="fk_messages_thread_id_threads",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_messages_thread_id_sort_key", "messages", ["thread_id", "sort_key"])
    op.create_index("ix_messages_run_id", "messages", ["run_id"])
    op.create_table(
        "files",
        *_object_columns(),
        sa.Column("filename", sa.String(1024), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_details", sa.Text),
        sa.Column("expires_at", sa.BigInteger),
        sa.Column("content_type", sa.String(256)),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_files"),
    )
    op.create_index("ix_files_project_sort_key", "files", ["project", "sort_key"])
    op.create_index("ix_files_expires_at", "files", ["expires_at"])


def downgrade() -> None:
    op.drop_table("files")
    op.drop_table("messages")
    op.drop_table("threads")
    op.drop_table("assistants")
    op.drop_table("api_keys")
