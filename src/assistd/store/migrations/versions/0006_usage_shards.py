"""Usage rows striped over shards: each model call adds to one of a few rows per
(project, day, model) instead of to one, which every run's last transaction locked until
it committed (at 200 runs at once on PostgreSQL, most of them waited there). Reads sum the
shards.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite changes a primary key by copying the table.
    with op.batch_alter_table("usage_daily") as batch:
        batch.add_column(
            sa.Column("shard", sa.SmallInteger, nullable=False, server_default=sa.text("0"))
        )
        batch.drop_constraint("pk_usage_daily", type_="primary")
        batch.create_primary_key("pk_usage_daily", ["project", "day", "model", "shard"])


def downgrade() -> None:
    # Each key's shards summed into its first one, the others deleted.
    same = " AND ".join(f"z.{key} = usage_daily.{key}" for key in ("project", "day", "model"))
    first = f"(SELECT min(z.shard) FROM usage_daily AS z WHERE {same})"
    sums = ", ".join(
        f"{column} = (SELECT sum(z.{column}) FROM usage_daily AS z WHERE {same})"
        for column in ("prompt_tokens", "completion_tokens", "requests")
    )
    op.execute(f"UPDATE usage_daily SET {sums} WHERE shard = {first}")
    op.execute(f"DELETE FROM usage_daily WHERE shard <> {first}")
    with op.batch_alter_table("usage_daily") as batch:
        batch.drop_constraint("pk_usage_daily", type_="primary")
        batch.drop_column("shard")
        batch.create_primary_key("pk_usage_daily", ["project", "day", "model"])
