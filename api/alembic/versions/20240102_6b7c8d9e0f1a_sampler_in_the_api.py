"""The API's own sampler: one run per interval, connections and archiving over time

Revision ID: 6b7c8d9e0f1a
Revises: 5a6b7c8d9e0f
Create Date: 2023-12-30 10:00:00

`monitor_sample_run` records each run of the sampler (its cost, and pg_stat_archiver's
figures then: archive lag over time); its unique `slot` is what lets one API worker of
many claim a scheduled interval. `connection_sample` holds this database's sessions per
state at each run. The sampler prunes by `sampled_at`, hence an index on it in every
sample table: BRIN for the two big ones, whose rows arrive in time order (a b-tree on
`db_size_sample.sampled_at` would also lure the planner away from the (relation,
sampled_at) index the growth figures read).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6b7c8d9e0f1a"
down_revision: str | None = "5a6b7c8d9e0f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "monitor_sample_run",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("sampled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("rows_written", sa.Integer(), nullable=True),
        sa.Column("rows_pruned", sa.Integer(), nullable=True),
        sa.Column("archived_count", sa.BigInteger(), nullable=True),
        sa.Column("archive_failed_count", sa.BigInteger(), nullable=True),
        sa.Column("archive_age_seconds", sa.Float(), nullable=True),
        sa.Column("archive_segments_waiting", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_sample_run"),
        sa.UniqueConstraint("slot", name="uq_monitor_sample_run_slot"),
    )
    op.create_index("ix_monitor_sample_run_sampled_at", "monitor_sample_run", ["sampled_at"])
    op.create_table(
        "connection_sample",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("sampled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_connection_sample"),
    )
    op.create_index("ix_connection_sample_sampled_at", "connection_sample", ["sampled_at"])
    for table in ("db_size_sample", "statement_sample"):  # rows arrive in time order
        op.create_index(f"ix_{table}_sampled_at", table, ["sampled_at"], postgresql_using="brin")
    op.execute("GRANT SELECT ON monitor_sample_run, connection_sample TO app_service, app_read")
    op.execute("GRANT ALL ON monitor_sample_run, connection_sample TO supabase_admin")


def downgrade() -> None:
    op.drop_index("ix_statement_sample_sampled_at", table_name="statement_sample")
    op.drop_index("ix_db_size_sample_sampled_at", table_name="db_size_sample")
    op.drop_table("connection_sample")
    op.drop_table("monitor_sample_run")
