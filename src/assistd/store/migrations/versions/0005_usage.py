"""Token usage per project, model and UTC day (``GET /v1/usage``, ``assistd usage``,
project token budgets).

One row per (project, day, model), added to by an upsert on each model call: the key's
order lets a project's usage since a date (what a budget check reads) be one index range.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_daily",
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("project", "day", "model", name="pk_usage_daily"),
    )


def downgrade() -> None:
    op.drop_table("usage_daily")
