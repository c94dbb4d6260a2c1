"""Replication as the monitoring report reads it: planwise_replication()

Revision ID: 8d9e0f1a2b3c
Revises: 2c3d4e5f6a7b
Create Date: 2023-12-30 10:00:00

`planwise monitor`, `GET /api/v1/admin/db` and the console show a server's place in
streaming replication: on a leader its standbys (`pg_stat_replication`) and physical
replication slots, on a standby its WAL receiver and replay position, and the timeline.
Those views show only the process id to a role without pg_read_all_stats, and the API
reads as `app_service`, which must not get that role (it would see every role's
statement texts). So one SECURITY DEFINER function (owned by the migrating owner, who can
read them; search_path pinned) returns exactly these figures as one JSON object, no
statement text and no connection string; `app_service` may execute it. Works on a leader
and on a standby alike (it reaches standbys through replication).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "8d9e0f1a2b3c"
down_revision: str | None = "2c3d4e5f6a7b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "public.planwise_replication()"

FUNCTION = """
CREATE FUNCTION public.planwise_replication() RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
WITH here AS (
    SELECT pg_is_in_recovery() AS standby,
           CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                ELSE pg_current_wal_lsn() END AS lsn
)
SELECT jsonb_build_object(
    'in_recovery', here.standby,
    'server_address', host(inet_server_addr()),
    'server_port', inet_server_port(),
    -- A leader's timeline is its current WAL file's (as Patroni reads it); a standby's
    -- the one it receives, else its last restartpoint's.
    'timeline', CASE WHEN here.standby
        THEN coalesce((SELECT nullif(received_tli, 0) FROM pg_stat_wal_receiver),
                      (pg_control_checkpoint()).timeline_id)
        ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
    'standbys', coalesce((
        SELECT jsonb_agg(jsonb_build_object(
            'name', application_name,
            'client_address', host(client_addr),
            'state', state,
            'sync_state', sync_state,
            -- The *_lag intervals are NULL once a caught-up standby idles: 0 then.
            'sent_lag_bytes', pg_wal_lsn_diff(here.lsn, sent_lsn)::bigint,
            'write_lag_bytes', pg_wal_lsn_diff(here.lsn, write_lsn)::bigint,
            'flush_lag_bytes', pg_wal_lsn_diff(here.lsn, flush_lsn)::bigint,
            'replay_lag_bytes', pg_wal_lsn_diff(here.lsn, replay_lsn)::bigint,
            'write_lag_seconds', coalesce(extract(epoch FROM write_lag)::float8,
                CASE WHEN write_lsn = here.lsn THEN 0::float8 END),
            'flush_lag_seconds', coalesce(extract(epoch FROM flush_lag)::float8,
                CASE WHEN flush_lsn = here.lsn THEN 0::float8 END),
            'replay_lag_seconds', coalesce(extract(epoch FROM replay_lag)::float8,
                CASE WHEN replay_lsn = here.lsn THEN 0::float8 END),
            'reply_time', reply_time) ORDER BY application_name)
        FROM pg_stat_replication), '[]'::jsonb),
    'slots', coalesce((
        SELECT jsonb_agg(jsonb_build_object(
            'name', slot_name,
            'active', active,
            'retained_bytes', pg_wal_lsn_diff(here.lsn, restart_lsn)::bigint,
            'wal_status', wal_status) ORDER BY slot_name)
        FROM pg_replication_slots WHERE slot_type = 'physical'), '[]'::jsonb),
    'receiver', (
        SELECT jsonb_build_object(
            'status', status,
            'sender_host', sender_host,
            'sender_port', sender_port,
            'slot_name', slot_name,
            'last_message_at', last_msg_receipt_time)
        FROM pg_stat_wal_receiver),
    'replay', CASE WHEN here.standby THEN jsonb_build_object(
        'lag_bytes', pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint,
        -- Idle caught-up standbys replay nothing new: behind only while WAL waits.
        'lag_seconds', CASE
            WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END,
        'last_replayed_at', pg_last_xact_replay_timestamp(),
        'paused', pg_get_wal_replay_pause_state() <> 'not paused') END)
FROM here
$$
"""


def upgrade() -> None:
    op.execute(FUNCTION)
    # Supabase's default privileges hand new public functions to its API roles: not this.
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC, anon, authenticated, service_role")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO app_service")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
