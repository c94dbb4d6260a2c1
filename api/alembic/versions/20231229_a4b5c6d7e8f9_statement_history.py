"""Statement history for the console's Queries page (`planwise monitor sample`)

Revision ID: a4b5c6d7e8f9
Revises: f3a4b5c6d7e8
Create Date: 2023-12-29 10:00:00

pg_stat_statements only knows totals since its last reset. The sampler keeps the totals it
last read per statement in `statement_counters` and writes what changed since then to
`statement_sample` (one row per statement and sample, deltas only). The console's
"reset statistics" runs pg_stat_statements_reset(0, <this database>, 0) as the API's role
and empties `statement_counters` (the sampler then starts again), so that role may execute
the function (only a superuser may by default) and delete those rows.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a4b5c6d7e8f9"
down_revision: str | None = "f3a4b5c6d7e8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _reset_function(grant: str) -> str:
    """GRANT/REVOKE on pg_stat_statements_reset, whatever its signature (it differs between
    PostgreSQL versions), if the extension is installed."""
    return (
        "DO $$ DECLARE f regprocedure; BEGIN FOR f IN SELECT oid::regprocedure FROM pg_proc "
        "WHERE proname = 'pg_stat_statements_reset' LOOP "
        f"EXECUTE format('{grant}', f); END LOOP; END $$"
    )


def upgrade() -> None:
    op.create_table(
        "statement_sample",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("sampled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queryid", sa.BigInteger(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("total_exec_ms", sa.Float(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_statement_sample"),
    )
    op.create_index(
        "ix_statement_sample_queryid_sampled_at", "statement_sample", ["queryid", "sampled_at"]
    )
    op.create_table(
        "statement_counters",
        sa.Column("queryid", sa.BigInteger(), nullable=False),
        sa.Column("sampled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stats_reset", sa.DateTime(timezone=True), nullable=True),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("total_exec_ms", sa.Float(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("queryid", name="pk_statement_counters"),
    )
    op.execute("GRANT SELECT ON statement_sample, statement_counters TO app_service, app_read")
    op.execute("GRANT ALL ON statement_sample, statement_counters TO supabase_admin")
    op.execute("GRANT DELETE ON statement_counters TO app_service")
    op.execute(_reset_function("GRANT EXECUTE ON FUNCTION %s TO app_service"))


def downgrade() -> None:
    op.execute(_reset_function("REVOKE EXECUTE ON FUNCTION %s FROM app_service"))
    op.drop_table("statement_counters")
    op.drop_table("statement_sample")
