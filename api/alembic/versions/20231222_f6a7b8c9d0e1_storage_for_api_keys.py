"""Storage for Supabase's API keys: service_role reaches every bucket and object

Revision ID: f6a7b8c9d0e1
Revises: e5f6a7b8c9d0
Create Date: 2023-12-22 10:00:00

With the service_role key, `/storage/v1` runs its transaction as `service_role` (which
bypasses RLS, as on Supabase): it needs the privileges on Planwise's own `storage` tables,
and an object it uploads belongs to no user, so `objects.owner` may be NULL, as in
Supabase Storage. The anon key needs nothing: it acts as nobody, and the policies already
let nobody read public buckets. A Supabase project's own `storage` schema is left alone.

The downgrade deletes the objects that belong to no user (their files stay on disk, as
every storage downgrade leaves files) before `owner` is NOT NULL again.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "f6a7b8c9d0e1"
down_revision: str | None = "e5f6a7b8c9d0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STORAGE_MARK = "planwise: local object storage"
STORAGE_IS_OURS = (
    "(SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace "
    f"WHERE nspname = 'storage') = '{STORAGE_MARK}'"
)
TABLES = "storage.buckets, storage.objects, storage.deleted_files"


def _on_our_storage(statements: str) -> None:
    op.execute(
        f"""
        DO $storage$
        BEGIN
            IF {STORAGE_IS_OURS} THEN
                {statements}
            END IF;
        END
        $storage$
        """
    )


def upgrade() -> None:
    _on_our_storage(
        f"""
        GRANT USAGE ON SCHEMA storage TO service_role;
        GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLES} TO service_role;
        ALTER TABLE storage.objects ALTER COLUMN owner DROP NOT NULL;
        """
    )


def downgrade() -> None:
    _on_our_storage(
        f"""
        DELETE FROM storage.objects WHERE owner IS NULL;
        ALTER TABLE storage.objects ALTER COLUMN owner SET NOT NULL;
        REVOKE ALL ON {TABLES} FROM service_role;
        REVOKE USAGE ON SCHEMA storage FROM service_role;
        """
    )
