"""Roles and row-level security: app_service, app_read, supabase_admin and the policies

Revision ID: 5c6d7e8f9a0b
Revises: 3a4b5c6d7e8f
Create Date: 2023-07-01 10:00:00

Roles are cluster-wide and may already exist (Supabase has `supabase_admin`), so they
are created only when absent and never dropped by the downgrade, which revokes what
this revision granted instead. Passwords are not set here: `planwise db roles` sets
them from the environment.

The document's three policies are hardened:
* the acting user is `nullif(current_setting('app.user_id', true), '')::integer`, so an
  unset or empty setting matches no row instead of raising or matching everything;
* every policy has WITH CHECK, so no row can be written or moved into another user's name;
* FORCE makes the table owner obey them too.
Login and registration run before `app.user_id` is known; they go through two narrow
SECURITY DEFINER functions owned by the NOLOGIN role `planwise_auth`, whose own policies
let it read login fields and insert plain users, and nothing else.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "5c6d7e8f9a0b"
down_revision: str | None = "3a4b5c6d7e8f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTING_USER = "nullif(current_setting('app.user_id', true), '')::integer"
USER_DATA_TABLES = {"user": "id", "review": "user_id", "preference": "user_id"}
DOCUMENT_POLICY = {
    "user": "user_self_access",
    "review": "review_user_access",
    "preference": "preference_user_access",
}
ALL_TABLES = ("user", "place", "review", "preference")
GRANTEES = "app_service, app_read, supabase_admin, planwise_auth"
SEQUENCES = "user_id_seq, review_id_seq, preference_id_seq"

CREATE_ROLES = """
DO $roles$
DECLARE
    creator_is_superuser boolean := (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_service') THEN
        CREATE ROLE app_service LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
            NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_read') THEN
        CREATE ROLE app_read LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
            NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'planwise_auth') THEN
        CREATE ROLE planwise_auth NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'supabase_admin') THEN
        IF creator_is_superuser THEN
            CREATE ROLE supabase_admin LOGIN SUPERUSER CREATEDB CREATEROLE REPLICATION
                BYPASSRLS;
        ELSE
            CREATE ROLE supabase_admin LOGIN CREATEDB CREATEROLE;
        END IF;
    END IF;
    IF EXISTS (
        SELECT FROM pg_roles
        WHERE rolname IN ('app_service', 'app_read', 'planwise_auth')
          AND (rolsuper OR rolbypassrls)
    ) THEN
        RAISE EXCEPTION 'app_service, app_read or planwise_auth exists with SUPERUSER or '
            'BYPASSRLS: row-level security would not apply to it. Fix the role and retry.';
    END IF;
    IF NOT creator_is_superuser THEN
        -- A non-superuser migrator must belong to planwise_auth to hand it functions.
        EXECUTE format('GRANT planwise_auth TO %I', current_user);
    END IF;
END
$roles$
"""


def upgrade() -> None:
    op.execute(CREATE_ROLES)
    op.execute(f"GRANT USAGE ON SCHEMA public TO {GRANTEES}")

    # app_service: DML for the application. It may not change its own role or activity
    # (column grants), nor insert users directly (registration goes through a function).
    op.execute(
        'GRANT SELECT, UPDATE (username, hashed_password, full_name), DELETE ON "user" '
        "TO app_service"
    )
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON place, review, preference TO app_service")
    op.execute("GRANT USAGE, SELECT ON SEQUENCE review_id_seq, preference_id_seq TO app_service")
    op.execute("GRANT SELECT ON alembic_version TO app_service, app_read")

    # app_read: every row of every table, but not password hashes.
    op.execute(
        'GRANT SELECT (id, username, full_name, role, is_active, created_at) ON "user" TO app_read'
    )
    op.execute("GRANT SELECT ON place, review, preference TO app_read")

    # supabase_admin: full administration even where it cannot be a superuser.
    op.execute('GRANT ALL ON "user", place, review, preference, alembic_version TO supabase_admin')
    op.execute(f"GRANT ALL ON SEQUENCE {SEQUENCES} TO supabase_admin")
    op.execute("GRANT ALL ON SCHEMA public TO supabase_admin")

    # planwise_auth: exactly what login and registration need.
    op.execute(
        "GRANT SELECT (id, username, hashed_password, role, is_active), "
        'INSERT (username, hashed_password, full_name, role) ON "user" TO planwise_auth'
    )
    op.execute("GRANT USAGE ON SEQUENCE user_id_seq TO planwise_auth")

    for table, owner_column in USER_DATA_TABLES.items():
        op.execute(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY')
        op.execute(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY')
        op.execute(
            f'CREATE POLICY {DOCUMENT_POLICY[table]} ON "{table}" '
            f"USING ({owner_column} = {ACTING_USER}) "
            f"WITH CHECK ({owner_column} = {ACTING_USER})"
        )
        op.execute(
            f'CREATE POLICY {table}_app_read ON "{table}" FOR SELECT TO app_read USING (true)'
        )
    op.execute('CREATE POLICY user_auth_lookup ON "user" FOR SELECT TO planwise_auth USING (true)')
    op.execute(
        'CREATE POLICY user_auth_register ON "user" FOR INSERT TO planwise_auth '
        "WITH CHECK (role = 'user')"
    )

    # Places: everyone reads; only an active admin user (or supabase_admin) writes.
    # Not FORCEd: the owner loads places in bulk (`planwise places import`).
    op.execute(
        f"""
        CREATE FUNCTION planwise_acting_user_is_admin() RETURNS boolean
        LANGUAGE sql STABLE AS $$
            SELECT EXISTS (
                SELECT 1 FROM public."user" u
                WHERE u.id = {ACTING_USER} AND u.role = 'admin' AND u.is_active
            )
        $$
        """
    )
    op.execute("ALTER TABLE place ENABLE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY place_public_read ON place FOR SELECT USING (true)")
    op.execute(
        "CREATE POLICY place_admin_insert ON place FOR INSERT "
        "WITH CHECK (planwise_acting_user_is_admin())"
    )
    op.execute(
        "CREATE POLICY place_admin_update ON place FOR UPDATE "
        "USING (planwise_acting_user_is_admin()) WITH CHECK (planwise_acting_user_is_admin())"
    )
    op.execute(
        "CREATE POLICY place_admin_delete ON place FOR DELETE "
        "USING (planwise_acting_user_is_admin())"
    )
    for table in ALL_TABLES:
        op.execute(
            f'CREATE POLICY {table}_supabase_admin ON "{table}" TO supabase_admin '
            "USING (true) WITH CHECK (true)"
        )

    op.execute(
        """
        CREATE FUNCTION planwise_find_login(p_username text)
        RETURNS TABLE (id integer, hashed_password varchar, role varchar, is_active boolean)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
            SELECT u.id, u.hashed_password, u.role, u.is_active
            FROM public."user" u WHERE u.username = p_username
        $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION planwise_register_user(
            p_username text, p_hashed_password text, p_full_name text
        ) RETURNS integer
        LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
            INSERT INTO public."user" (username, hashed_password, full_name, role)
            VALUES (p_username, p_hashed_password, p_full_name, 'user')
            RETURNING id
        $$
        """
    )
    for signature in ("planwise_find_login(text)", "planwise_register_user(text, text, text)"):
        op.execute(f"ALTER FUNCTION {signature} OWNER TO planwise_auth")
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO app_service")


def downgrade() -> None:
    op.execute("DROP FUNCTION planwise_register_user(text, text, text)")
    op.execute("DROP FUNCTION planwise_find_login(text)")
    for table in ALL_TABLES:
        op.execute(f'DROP POLICY {table}_supabase_admin ON "{table}"')
    for policy in (
        "place_public_read",
        "place_admin_insert",
        "place_admin_update",
        "place_admin_delete",
    ):
        op.execute(f"DROP POLICY {policy} ON place")
    op.execute("ALTER TABLE place DISABLE ROW LEVEL SECURITY")
    op.execute("DROP FUNCTION planwise_acting_user_is_admin()")
    op.execute('DROP POLICY user_auth_register ON "user"')
    op.execute('DROP POLICY user_auth_lookup ON "user"')
    for table in USER_DATA_TABLES:
        op.execute(f'DROP POLICY {table}_app_read ON "{table}"')
        op.execute(f'DROP POLICY {DOCUMENT_POLICY[table]} ON "{table}"')
        op.execute(f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY')
        op.execute(f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY')

    op.execute(f'REVOKE ALL ON "user", place, review, preference FROM {GRANTEES}')
    op.execute(f"REVOKE ALL ON SEQUENCE {SEQUENCES} FROM {GRANTEES}")
    op.execute(f"REVOKE ALL ON alembic_version FROM {GRANTEES}")
    # supabase_admin keeps its schema rights: on Supabase they are not ours to take.
    op.execute("REVOKE ALL ON SCHEMA public FROM app_service, app_read, planwise_auth")
