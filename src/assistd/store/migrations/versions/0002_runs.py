"""Runs and run steps.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
ACTIVE = "status IN ('queued','in_progress','requires_action','cancelling')"


def _object_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("sort_key", sa.BigInteger, nullable=False),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "runs",
        *_object_columns(),
        sa.Column("thread_id", sa.String(64), nullable=False),
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
        sa.Column("worker_id", sa.String(64)),
        sa.Column("lease_until", sa.Float),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["threads.id"], name="fk_runs_thread_id_threads", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_runs_thread_id_sort_key", "runs", ["thread_id", "sort_key"])
    op.create_index("ix_runs_status_lease_until", "runs", ["status", "lease_until"])
    op.create_index(
        "uq_runs_active_thread",
        "runs",
        ["thread_id"],
        unique=True,
        sqlite_where=sa.text(ACTIVE),
        postgresql_where=sa.text(ACTIVE),
    )
    op.create_table(
        "run_steps",
        *_object_columns(),
        sa.Column("run_id", sa.String(64), nullable=False),
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
        sa.PrimaryKeyConstraint("id", name="pk_run_steps"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_run_steps_run_id_runs", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_run_steps_run_id_sort_key", "run_steps", ["run_id", "sort_key"])


def downgrade() -> None:
    op.drop_table("run_steps")
    op.drop_table("runs")
