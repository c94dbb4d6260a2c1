"""Realtime change notifications and the storage schema (buckets, objects, policies)

Revision ID: a1b2c3d4e5f6
Revises: c3d4e5f6a7b8
Create Date: 2023-12-01 10:00:00

Realtime: statement-level AFTER triggers on `user`, `place`, `review` and `preference`
`pg_notify('planwise_changes', …)` the keys and owners of the rows a statement changed,
in batches that stay well under NOTIFY's 8000-byte limit whatever the keys hold. The API
reads the rows back as each subscriber (RLS decides what they receive); no row data
travels through NOTIFY. Updates that change nothing (`OLD::text = NEW::text`) are not
announced, like the `updated_at` trigger, so idempotent re-imports stay silent.

Storage: on a database without a `storage` schema this creates Planwise's own (marked by
a comment, so the downgrade drops only what it created). On a Supabase project the
schema already belongs to Supabase Storage and is left alone.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "a1b2c3d4e5f6"
down_revision: str | None = "c3d4e5f6a7b8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "planwise_changes"
# table -> (primary key column, owner column or '' for rows everyone may read)
PUBLISHED = {
    "user": ("id", "id"),
    "place": ("id", ""),
    "review": ("id", "user_id"),
    "preference": ("id", "user_id"),
}
STORAGE_MARK = "planwise: local object storage"
ACTING_USER = "nullif(current_setting('app.user_id', true), '')::integer"
IS_ADMIN = "(SELECT public.planwise_acting_user_is_admin())"

NOTIFY_FUNCTION = f"""
CREATE FUNCTION public.planwise_notify_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    key_column text := TG_ARGV[0];
    owner_expr text := CASE WHEN TG_ARGV[1] = '' THEN 'NULL'
                            ELSE format('r.%I', TG_ARGV[1]) END;
    changed_at text := to_char(clock_timestamp() AT TIME ZONE 'UTC',
                               'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    head text;
    rows_query text;
    item text;
    batch text := '';
BEGIN
    -- One notification per ~7000 bytes of [key, owner] pairs: NOTIFY refuses 8000+.
    head := format('{{"table":%s,"type":"%s","at":"%s","rows":[',
                   to_json(TG_TABLE_NAME::text), TG_OP, changed_at);
    IF TG_OP = 'INSERT' THEN
        rows_query := format('SELECT json_build_array(r.%I, %s)::text FROM new_rows r',
                             key_column, owner_expr);
    ELSIF TG_OP = 'DELETE' THEN
        rows_query := format('SELECT json_build_array(r.%I, %s)::text FROM old_rows r',
                             key_column, owner_expr);
    ELSE
        rows_query := format(
            'SELECT json_build_array(r.%1$I, %2$s)::text FROM new_rows r '
            'JOIN old_rows o ON o.%1$I = r.%1$I WHERE r::text IS DISTINCT FROM o::text',
            key_column, owner_expr);
    END IF;
    FOR item IN EXECUTE rows_query LOOP
        IF batch <> '' AND octet_length(batch) + octet_length(item) > 7000 THEN
            PERFORM pg_notify('{CHANNEL}', head || batch || ']}}');
            batch := '';
        END IF;
        batch := CASE WHEN batch = '' THEN item ELSE batch || ',' || item END;
    END LOOP;
    IF batch <> '' THEN
        PERFORM pg_notify('{CHANNEL}', head || batch || ']}}');
    END IF;
    RETURN NULL;
END
$$
"""

# Executed only when the storage schema is ours (see upgrade).
STORAGE_DDL = f"""
CREATE TABLE storage.buckets (
    id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{{0,62}}$'),
    name text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    owner integer REFERENCES public."user" (id) ON DELETE SET NULL,
    public boolean NOT NULL DEFAULT false,
    file_size_limit bigint CHECK (file_size_limit > 0),
    allowed_mime_types text[],
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- Names compare bytewise (COLLATE "C"): the unique index then serves prefix listings.
CREATE TABLE storage.objects (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    bucket_id text NOT NULL REFERENCES storage.buckets (id),
    name text COLLATE "C" NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 1024),
    owner integer NOT NULL REFERENCES public."user" (id) ON DELETE CASCADE,
    version uuid NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{{}}',
    user_metadata jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT objects_bucket_id_name_key UNIQUE (bucket_id, name)
);
CREATE INDEX objects_owner_idx ON storage.objects (owner);
COMMENT ON COLUMN storage.objects.version IS
    'file name under STORAGE_DIR/objects: a new one per write, so a file never changes';

-- Files whose row went away (deleted, replaced by an upsert, or cascaded from a deleted
-- user): the API removes them from disk after its transaction commits.
CREATE TABLE storage.deleted_files (
    version uuid PRIMARY KEY,
    deleted_at timestamptz NOT NULL DEFAULT now()
);
CREATE FUNCTION storage.queue_deleted_files() RETURNS trigger
LANGUAGE plpgsql AS $f$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO storage.deleted_files (version)
        SELECT version FROM old_rows ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO storage.deleted_files (version)
        SELECT o.version FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE n.version <> o.version ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$f$;
CREATE TRIGGER objects_deleted AFTER DELETE ON storage.objects
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION storage.queue_deleted_files();
CREATE TRIGGER objects_replaced AFTER UPDATE ON storage.objects
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION storage.queue_deleted_files();

GRANT USAGE ON SCHEMA storage TO app_service, app_read, supabase_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON storage.buckets, storage.objects TO app_service;
GRANT SELECT, INSERT, DELETE ON storage.deleted_files TO app_service;
GRANT SELECT ON storage.buckets, storage.objects, storage.deleted_files TO app_read;
GRANT ALL ON storage.buckets, storage.objects, storage.deleted_files TO supabase_admin;

ALTER TABLE storage.buckets ENABLE ROW LEVEL SECURITY;
ALTER TABLE storage.buckets FORCE ROW LEVEL SECURITY;
ALTER TABLE storage.objects ENABLE ROW LEVEL SECURITY;
ALTER TABLE storage.objects FORCE ROW LEVEL SECURITY;

-- Buckets: everyone sees them; active admins create, change and delete them.
CREATE POLICY buckets_read ON storage.buckets FOR SELECT USING (true);
CREATE POLICY buckets_admin_insert ON storage.buckets FOR INSERT WITH CHECK ({IS_ADMIN});
CREATE POLICY buckets_admin_update ON storage.buckets FOR UPDATE
    USING ({IS_ADMIN}) WITH CHECK ({IS_ADMIN});
CREATE POLICY buckets_admin_delete ON storage.buckets FOR DELETE USING ({IS_ADMIN});

-- Objects: read your own and every object of a public bucket; write only your own.
-- Admins may also read and delete any object (moderation, emptying a bucket).
CREATE POLICY objects_read ON storage.objects FOR SELECT USING (
    owner = {ACTING_USER}
    OR EXISTS (SELECT 1 FROM storage.buckets b WHERE b.id = bucket_id AND b.public)
    OR {IS_ADMIN}
);
CREATE POLICY objects_insert ON storage.objects FOR INSERT
    WITH CHECK (owner = {ACTING_USER});
CREATE POLICY objects_update ON storage.objects FOR UPDATE
    USING (owner = {ACTING_USER}) WITH CHECK (owner = {ACTING_USER});
CREATE POLICY objects_delete ON storage.objects FOR DELETE
    USING (owner = {ACTING_USER} OR {IS_ADMIN});

CREATE POLICY buckets_app_read ON storage.buckets FOR SELECT TO app_read USING (true);
CREATE POLICY objects_app_read ON storage.objects FOR SELECT TO app_read USING (true);
CREATE POLICY buckets_supabase_admin ON storage.buckets TO supabase_admin
    USING (true) WITH CHECK (true);
CREATE POLICY objects_supabase_admin ON storage.objects TO supabase_admin
    USING (true) WITH CHECK (true);
"""

STORAGE_IS_OURS = (
    "(SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace "
    f"WHERE nspname = 'storage') = '{STORAGE_MARK}'"
)


def upgrade() -> None:
    op.execute(NOTIFY_FUNCTION)
    for table, (key, owner) in PUBLISHED.items():
        for event, transition in (
            ("INSERT", "NEW TABLE AS new_rows"),
            ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
            ("DELETE", "OLD TABLE AS old_rows"),
        ):
            op.execute(
                f'CREATE TRIGGER planwise_realtime_{event.lower()} AFTER {event} ON "{table}" '
                f"REFERENCING {transition} FOR EACH STATEMENT "
                f"EXECUTE FUNCTION public.planwise_notify_changes('{key}', '{owner}')"
            )

    op.execute(
        f"""
        DO $storage$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'storage') THEN
                CREATE SCHEMA storage;
                COMMENT ON SCHEMA storage IS '{STORAGE_MARK}';
            END IF;
            IF {STORAGE_IS_OURS} THEN
                {STORAGE_DDL}
            END IF;
        END
        $storage$
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        DO $storage$
        BEGIN
            IF {STORAGE_IS_OURS} THEN
                DROP SCHEMA storage CASCADE;
            END IF;
        END
        $storage$
        """
    )
    for table in PUBLISHED:
        for event in ("insert", "update", "delete"):
            op.execute(f'DROP TRIGGER planwise_realtime_{event} ON "{table}"')
    op.execute("DROP FUNCTION public.planwise_notify_changes()")
    # Files under STORAGE_DIR stay: they are data, not schema; delete them by hand if meant.
