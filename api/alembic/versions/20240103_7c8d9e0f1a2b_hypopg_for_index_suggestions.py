"""hypopg for the console's index suggestions, where the server has it; column widths for
its bloat estimate

Revision ID: 7c8d9e0f1a2b
Revises: 6b7c8d9e0f1a
Create Date: 2023-12-30 10:00:00

The console's Indexes page tries hypothetical indexes (hypopg: Debian's
postgresql-15-hypopg, and on Supabase) on the statements of tables read mostly
sequentially. Created only where the server offers it and the migrating role may create
it (in schema `extensions` where there is one, as Supabase keeps them); without it the
page says that it has no suggestions. Its functions are executable by
PUBLIC, and a hypothetical index exists only in the memory of the session that made it.

The bloat estimate needs each column's average width and null fraction, which `pg_stats`
hides from the API's role on every table with row-level security (most of ours).
`planwise_column_stats()` returns just those two figures (no values: nothing of the rows
leaks) with its owner's rights, executable by app_service only.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "7c8d9e0f1a2b"
down_revision: str | None = "6b7c8d9e0f1a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "DO $$ BEGIN "
        "IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg') THEN "
        "RETURN; END IF; "
        "IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'extensions') THEN "
        "CREATE EXTENSION IF NOT EXISTS hypopg SCHEMA extensions; "
        "ELSE CREATE EXTENSION IF NOT EXISTS hypopg; END IF; "
        "EXCEPTION WHEN insufficient_privilege THEN "
        "RAISE NOTICE 'hypopg not created: %', SQLERRM; END $$"
    )

    op.execute(
        "CREATE FUNCTION planwise_column_stats() RETURNS TABLE (schemaname name, "
        "tablename name, attname name, inherited boolean, null_frac real, avg_width integer) "
        "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$ "
        "SELECT schemaname, tablename, attname, inherited, null_frac, avg_width "
        "FROM pg_catalog.pg_stats $$"
    )
    op.execute("REVOKE ALL ON FUNCTION planwise_column_stats() FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION planwise_column_stats() TO app_service")


def downgrade() -> None:
    op.execute("DROP FUNCTION planwise_column_stats()")
    op.execute("DROP EXTENSION IF EXISTS hypopg")
