"""Realtime: a change log only triggers write, a bus for broadcast and presence, and
Supabase's `realtime.messages` for private channels

Revision ID: e1f2a3b4c5d6
Revises: c9d0e1f2a3b4
Create Date: 2023-12-24 10:00:00

Change log. The statement-level triggers of a1b2c3d4e5f6 sent the changed keys in the
NOTIFY payload, and anyone with a database login can `NOTIFY planwise_changes` with any
payload. Now the triggers call `planwise_realtime.log_changes()`, SECURITY DEFINER, which
writes one `planwise_realtime.change_log` row per statement (the changed rows' keys, as
text, and owners) and NOTIFYs only its id. The API's role may read the log, nobody but the owner may
write it, so a forged NOTIFY names no row or a row already delivered. Rows older than
`RETENTION` are pruned by the same function (every 64th statement); the listener
replays missed rows after a reconnect from what is left.

Bus. Broadcast and presence messages go from one API process to every other one through
`planwise_realtime.bus` (INSERT and NOTIFY `planwise_bus` with the id, in one statement)
and presences live in `planwise_realtime.presence`, so several API processes behave as one.
Only `app_service` may write them (it is the API).

`realtime.messages`. Private channels are authorised by RLS policies on
`realtime.messages`, as Supabase Realtime does it. On a Supabase project that schema is
Supabase's and is left alone; elsewhere this creates the same table (not partitioned),
`realtime.topic()` and grants, marked by a comment so the downgrade drops only its own.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "e1f2a3b4c5d6"
down_revision: str | None = "c9d0e1f2a3b4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> (primary key column, owner column or '' for rows everyone may read)
PUBLISHED = {
    "user": ("id", "id"),
    "place": ("id", ""),
    "review": ("id", "user_id"),
    "preference": ("id", "user_id"),
}
EVENTS = (
    ("INSERT", "NEW TABLE AS new_rows"),
    ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    ("DELETE", "OLD TABLE AS old_rows"),
)
RETENTION = "10 minutes"
REALTIME_MARK = "planwise: local realtime messages"

LOG_FUNCTION = f"""
CREATE FUNCTION planwise_realtime.log_changes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    key_column text := TG_ARGV[0];
    owners_expr text := CASE WHEN TG_ARGV[1] = '' THEN 'NULL::integer[]'
                             ELSE format('array_agg(r.%I)', TG_ARGV[1]) END;
    rows_query text;
    changed_keys text[];
    changed_owners integer[];
    log_id bigint;
BEGIN
    -- Arrays, not JSON: aggregating 25,000 keys (an import batch) costs ~5 ms, jsonb ~50.
    IF TG_OP = 'INSERT' THEN
        rows_query := format('SELECT array_agg(r.%I::text), %s FROM new_rows r',
                             key_column, owners_expr);
    ELSIF TG_OP = 'DELETE' THEN
        rows_query := format('SELECT array_agg(r.%I::text), %s FROM old_rows r',
                             key_column, owners_expr);
    ELSE
        rows_query := format(
            'SELECT array_agg(r.%1$I::text), %2$s FROM new_rows r '
            'JOIN old_rows o ON o.%1$I = r.%1$I WHERE r::text IS DISTINCT FROM o::text',
            key_column, owners_expr);
    END IF;
    EXECUTE rows_query INTO changed_keys, changed_owners;
    IF changed_keys IS NULL THEN
        RETURN NULL;  -- nothing really changed: nothing to announce
    END IF;
    INSERT INTO planwise_realtime.change_log (table_name, op, keys, owners)
    VALUES (TG_TABLE_NAME, TG_OP, changed_keys, changed_owners) RETURNING id INTO log_id;
    PERFORM pg_notify('planwise_changes', log_id::text);
    IF log_id % 64 = 0 THEN
        DELETE FROM planwise_realtime.change_log
        WHERE logged_at < clock_timestamp() - interval '{RETENTION}';
        DELETE FROM planwise_realtime.bus
        WHERE logged_at < clock_timestamp() - interval '{RETENTION}';
    END IF;
    RETURN NULL;
END
$$
"""

REALTIME_DDL = """
CREATE TABLE realtime.messages (
    topic text NOT NULL,
    extension text NOT NULL,
    payload jsonb,
    event text,
    private boolean DEFAULT false,
    updated_at timestamp without time zone NOT NULL DEFAULT now(),
    inserted_at timestamp without time zone NOT NULL DEFAULT now(),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    binary_payload bytea,
    CONSTRAINT messages_payload_exclusive CHECK (payload IS NULL OR binary_payload IS NULL),
    CONSTRAINT messages_pkey PRIMARY KEY (id, inserted_at)
);
ALTER TABLE realtime.messages ENABLE ROW LEVEL SECURITY;
GRANT USAGE ON SCHEMA realtime TO anon, authenticated, service_role;
GRANT INSERT, SELECT, UPDATE ON realtime.messages TO anon, authenticated, service_role;
-- service_role bypasses RLS on Supabase; where it could not be made BYPASSRLS, say so.
CREATE POLICY planwise_service_role_all ON realtime.messages TO service_role
    USING (true) WITH CHECK (true);
CREATE FUNCTION realtime.topic() RETURNS text LANGUAGE sql STABLE AS
    $f$ select nullif(current_setting('realtime.topic', true), '')::text; $f$;
GRANT EXECUTE ON FUNCTION realtime.topic() TO anon, authenticated, service_role;
"""

REALTIME_IS_OURS = (
    "(SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace "
    f"WHERE nspname = 'realtime') = '{REALTIME_MARK}'"
)


def _retrigger(function: str) -> None:
    for table, (key, owner) in PUBLISHED.items():
        for event, transition in EVENTS:
            name = f"planwise_realtime_{event.lower()}"
            op.execute(f'DROP TRIGGER {name} ON "{table}"')
            op.execute(
                f'CREATE TRIGGER {name} AFTER {event} ON "{table}" '
                f"REFERENCING {transition} FOR EACH STATEMENT "
                f"EXECUTE FUNCTION {function}('{key}', '{owner}')"
            )


def upgrade() -> None:
    op.execute("CREATE SCHEMA planwise_realtime")
    op.execute("REVOKE ALL ON SCHEMA planwise_realtime FROM PUBLIC")
    op.execute("GRANT USAGE ON SCHEMA planwise_realtime TO app_service")
    op.execute(
        """
        CREATE TABLE planwise_realtime.change_log (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            logged_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            table_name text NOT NULL,
            op text NOT NULL CHECK (op IN ('INSERT', 'UPDATE', 'DELETE')),
            at text NOT NULL DEFAULT to_char(clock_timestamp() AT TIME ZONE 'UTC',
                                             'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
            keys text[] NOT NULL,
            owners integer[]
        )
        """
    )
    op.execute("CREATE INDEX ix_change_log_logged_at ON planwise_realtime.change_log (logged_at)")
    op.execute("GRANT SELECT ON planwise_realtime.change_log TO app_service")
    op.execute(
        """
        CREATE TABLE planwise_realtime.bus (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            logged_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            topic text NOT NULL,
            kind text NOT NULL,
            body jsonb NOT NULL,
            binary_body bytea
        )
        """
    )
    op.execute("CREATE INDEX ix_bus_logged_at ON planwise_realtime.bus (logged_at)")
    op.execute("GRANT SELECT, INSERT, DELETE ON planwise_realtime.bus TO app_service")
    op.execute(
        """
        CREATE TABLE planwise_realtime.presence (
            ref text PRIMARY KEY,
            topic text NOT NULL,
            key text NOT NULL,
            worker text NOT NULL,
            meta jsonb NOT NULL,
            expires_at timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX ix_presence_topic ON planwise_realtime.presence (topic)")
    op.execute("CREATE INDEX ix_presence_worker ON planwise_realtime.presence (worker)")
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON planwise_realtime.presence TO app_service")
    op.execute(LOG_FUNCTION)
    op.execute("REVOKE ALL ON FUNCTION planwise_realtime.log_changes() FROM PUBLIC")
    _retrigger("planwise_realtime.log_changes")
    op.execute(
        f"""
        DO $realtime$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'realtime') THEN
                CREATE SCHEMA realtime;
                COMMENT ON SCHEMA realtime IS '{REALTIME_MARK}';
            END IF;
            IF {REALTIME_IS_OURS} THEN
                {REALTIME_DDL}
            END IF;
        END
        $realtime$
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        DO $realtime$
        BEGIN
            IF {REALTIME_IS_OURS} THEN
                DROP SCHEMA realtime CASCADE;
            END IF;
        END
        $realtime$
        """
    )
    _retrigger("public.planwise_notify_changes")
    op.execute("DROP SCHEMA planwise_realtime CASCADE")
