"""Replication lag readable by the API's role, for /metrics

Revision ID: 0f1a2b3c4d5e
Revises: a4b5c6d7e8f9
Create Date: 2023-12-30 10:00:00

pg_stat_replication shows a role without pg_read_all_stats (the API's app_service) one row
per standby but not its state or positions. `planwise_replication()` is SECURITY DEFINER,
owned by the migration role, and returns only each standby's name, state and replay lag
(bytes and seconds; for a WAL receiver that replays nothing, such as pg_receivewal, what
it flushed or wrote), nothing of its connection; app_service may execute it, PUBLIC not.
When the migration role itself may not read the details (a hosted database without
pg_read_all_stats), the lag columns stay NULL, as the view would show them.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0f1a2b3c4d5e"
down_revision: str | None = "a4b5c6d7e8f9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION public.planwise_replication()
        RETURNS TABLE (standby text, state text, lag_bytes bigint, lag_seconds float8)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
            SELECT coalesce(nullif(application_name, ''), pid::text), state,
                   CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_wal_lsn_diff(
                       pg_current_wal_lsn(), coalesce(replay_lsn, flush_lsn, write_lsn)
                   )::bigint END,
                   extract(epoch FROM coalesce(replay_lag, flush_lag, write_lag))::float8
            FROM pg_stat_replication ORDER BY 1
        $$
    """)
    op.execute("REVOKE ALL ON FUNCTION public.planwise_replication() FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION public.planwise_replication() TO app_service")


def downgrade() -> None:
    op.execute("DROP FUNCTION public.planwise_replication()")
