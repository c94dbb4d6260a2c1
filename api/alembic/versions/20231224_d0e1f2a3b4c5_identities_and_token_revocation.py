"""Identities nobody can squat, and tokens that die with a password change or a session

Revision ID: d0e1f2a3b4c5
Revises: a7b8c9d0e1f2
Create Date: 2023-12-24 10:00:00

Issue 14, items 3 and 5.

- A Supabase Auth user (JWT `sub`) maps to a `user` row by `user.auth_user_id` only; the
  row made on first sight was named `sb_<uuid without dashes>`, and when someone had
  registered that name the insert was skipped and the lookup returned NULL (a 500 on
  every request of that Supabase user). Now such names are reserved by a CHECK
  constraint (`ck_user_internal_username`: a name shaped `sb_` + 32 hex digits may only
  be held by the row whose `auth_user_id` it spells), existing squatters are renamed
  (`renamed_<id>`, then `_2`, `_3`… when taken), the first-sight function tries further
  names instead of returning NULL, and the sign-up trigger skips reserved names.
- `user.password_changed_at` is set by a trigger whenever `hashed_password` changes.
  `planwise_resolve_token()` is the one token resolution: it maps the subject (creating
  the row of a new Supabase user), sets the acting user, and refuses in one statement a
  user that is gone (PWU01), deactivated (PWU02), or a token issued before the last
  password change or whose local Auth session has ended (logout, a new password ending
  the other sessions, a deleted auth user: PWU03).
"""

from collections.abc import Sequence

from alembic import op

from planwise.db.migrations import revision_module

revision: str = "d0e1f2a3b4c5"
down_revision: str | None = "a7b8c9d0e1f2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INTERNAL_USERNAME = "'^sb_[0-9a-f]{32}$'"
"""The shape of the usernames first sight gives Supabase users (`sb_` + the uuid's hex)."""
OWN_INTERNAL_NAME = "'sb_' || replace(auth_user_id::text, '-', '')"

RESOLVE_SIGNATURE = "planwise_resolve_token(integer, uuid, text, bigint, uuid)"
SESSION_SIGNATURE = "planwise_auth_session_alive(uuid, uuid)"


SUPABASE = revision_module("20231101_9b0c1d2e3f4a_supabase_compatibility.py")
AUTH = revision_module("20231220_d4e5f6a7b8c9_supabase_auth.py")

RENAME_SQUATTERS = f"""
DO $rename$
DECLARE
    squatter record;
    candidate text;
    attempt integer;
BEGIN
    FOR squatter IN
        SELECT id FROM public."user"
        WHERE username ~ {INTERNAL_USERNAME}
          AND username IS DISTINCT FROM {OWN_INTERNAL_NAME}
    LOOP
        candidate := 'renamed_' || squatter.id;
        attempt := 1;
        WHILE EXISTS (SELECT 1 FROM public."user" WHERE username = candidate) LOOP
            attempt := attempt + 1;
            candidate := 'renamed_' || squatter.id || '_' || attempt;
        END LOOP;
        UPDATE public."user" SET username = candidate WHERE id = squatter.id;
    END LOOP;
END
$rename$
"""

USER_FOR_AUTH_ID = """
CREATE OR REPLACE FUNCTION planwise_user_for_auth_id(p_auth_user_id uuid, p_full_name text)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
-- The Planwise row of a Supabase Auth user, made on first sight. The mapping is
-- auth_user_id alone; the username is only a label: `sb_<hex>` (reserved for this
-- user by ck_user_internal_username), else `sb_<hex>_2`, `_3`… Never NULL.
DECLARE
    found_id integer;
    base constant text := 'sb_' || replace(p_auth_user_id::text, '-', '');
    candidate text := base;
    attempt integer := 1;
BEGIN
    IF p_auth_user_id IS NULL THEN
        RAISE EXCEPTION 'no Supabase user id' USING ERRCODE = 'PWU01';
    END IF;
    SELECT u.id INTO found_id FROM public."user" u WHERE u.auth_user_id = p_auth_user_id;
    IF found_id IS NOT NULL THEN
        RETURN found_id;
    END IF;
    LOOP
        BEGIN
            INSERT INTO public."user" (username, hashed_password, full_name, role,
                                       auth_user_id)
            VALUES (candidate, '!supabase-auth',
                    left(coalesce(nullif(p_full_name, ''), 'Supabase user'), 100), 'user',
                    p_auth_user_id)
            ON CONFLICT ON CONSTRAINT uq_user_auth_user_id DO NOTHING
            RETURNING id INTO found_id;
            IF found_id IS NULL THEN  -- a concurrent first sight won: read its row
                SELECT u.id INTO found_id FROM public."user" u
                WHERE u.auth_user_id = p_auth_user_id;
            END IF;
            RETURN found_id;
        EXCEPTION WHEN unique_violation THEN
            attempt := attempt + 1;  -- the name is taken: try the next one
            IF attempt > 100 THEN
                RAISE EXCEPTION 'no free username for Supabase user %', p_auth_user_id
                    USING ERRCODE = 'PWU04';
            END IF;
            candidate := base || '_' || attempt;
        END;
    END LOOP;
END
$$
"""

EARLIER_USER_FOR_AUTH_ID: str = SUPABASE.USER_FOR_AUTH_ID.replace(
    "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1
)
EARLIER_ROW_TRIGGER: str = AUTH.PLANWISE_ROW_TRIGGER.replace(
    "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1
)
# The sign-up trigger's loop, skipping the names reserved for first sight.
ROW_TRIGGER = EARLIER_ROW_TRIGGER.replace(
    """IF NOT EXISTS (SELECT 1 FROM public."user" x WHERE x.username = candidate) THEN""",
    f"""IF candidate !~ {INTERNAL_USERNAME}
           AND NOT EXISTS (SELECT 1 FROM public."user" x WHERE x.username = candidate) THEN""",
)
assert ROW_TRIGGER != EARLIER_ROW_TRIGGER

NOTE_NEW_HASH = """
CREATE FUNCTION planwise_note_password_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.password_changed_at := now();
    RETURN NEW;
END
$$
"""

SESSION_ALIVE_LOCAL = f"""
CREATE FUNCTION planwise_auth_session_alive(p_session_id uuid, p_auth_user_id uuid)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    -- Does the local Auth session a token names still exist (logout and a new password
    -- delete sessions)?
    SELECT EXISTS (SELECT 1 FROM auth.sessions s
                   WHERE s.id = p_session_id AND s.user_id = p_auth_user_id)
$fn$;
ALTER FUNCTION {SESSION_SIGNATURE} OWNER TO planwise_auth;
"""
SESSION_ALIVE_ELSEWHERE = """
CREATE FUNCTION planwise_auth_session_alive(p_session_id uuid, p_auth_user_id uuid)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $fn$
    -- On a Supabase project its Auth owns the sessions, which we cannot read.
    SELECT true
$fn$;
"""

RESOLVER = """
CREATE FUNCTION planwise_resolve_token(
    p_user_id integer, p_auth_user_id uuid, p_full_name text, p_issued_at bigint,
    p_session_id uuid
) RETURNS SETOF public."user"
LANGUAGE plpgsql VOLATILE AS $$
-- A verified token's user, acting for RLS for the rest of the transaction, in one round
-- trip: our tokens name p_user_id, Supabase's p_auth_user_id (its row made on first
-- sight). Caller's rights, so the row is what RLS lets that user see.
DECLARE
    acting integer := p_user_id;
    acting_row public."user";
BEGIN
    IF acting IS NULL THEN
        acting := planwise_user_for_auth_id(p_auth_user_id, p_full_name);
    END IF;
    PERFORM set_config('app.user_id', acting::text, true);
    SELECT * INTO acting_row FROM public."user" u WHERE u.id = acting;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the token''s user no longer exists' USING ERRCODE = 'PWU01';
    END IF;
    IF NOT acting_row.is_active THEN
        RAISE EXCEPTION 'account is deactivated' USING ERRCODE = 'PWU02';
    END IF;
    -- JWT `iat` has whole seconds: a token of the change's own second is let through.
    IF coalesce(p_issued_at, 0) < floor(extract(epoch FROM acting_row.password_changed_at)) THEN
        RAISE EXCEPTION 'the token was issued before the password changed'
            USING ERRCODE = 'PWU03';
    END IF;
    IF p_session_id IS NOT NULL
       AND NOT planwise_auth_session_alive(p_session_id, p_auth_user_id) THEN
        RAISE EXCEPTION 'the token''s session has ended' USING ERRCODE = 'PWU03';
    END IF;
    RETURN NEXT acting_row;
END
$$
"""


def _on_local_auth(statements: str) -> None:
    op.execute(
        f"""
        DO $gotrue$
        BEGIN
            IF {AUTH.AUTH_IS_OURS} THEN
                {statements}
            END IF;
        END
        $gotrue$
        """
    )


def upgrade() -> None:
    op.execute(RENAME_SQUATTERS)
    op.execute(
        'ALTER TABLE "user" ADD CONSTRAINT ck_user_internal_username CHECK '
        f"(username !~ {INTERNAL_USERNAME} OR username = {OWN_INTERNAL_NAME})"
    )
    op.execute(USER_FOR_AUTH_ID)
    _on_local_auth(ROW_TRIGGER)

    op.execute('ALTER TABLE "user" ADD COLUMN password_changed_at timestamptz')
    op.execute('GRANT SELECT (password_changed_at) ON "user" TO app_read')
    op.execute(NOTE_NEW_HASH)
    op.execute(
        'CREATE TRIGGER planwise_password_changed BEFORE UPDATE OF hashed_password ON "user" '
        "FOR EACH ROW WHEN (OLD.hashed_password IS DISTINCT FROM NEW.hashed_password) "
        "EXECUTE FUNCTION planwise_note_password_change()"
    )

    op.execute(
        f"""
        DO $session$
        BEGIN
            IF {AUTH.AUTH_IS_OURS} AND to_regclass('auth.sessions') IS NOT NULL THEN
                {SESSION_ALIVE_LOCAL}
            ELSE
                {SESSION_ALIVE_ELSEWHERE}
            END IF;
        END
        $session$
        """
    )
    op.execute(RESOLVER)
    for signature in (SESSION_SIGNATURE, RESOLVE_SIGNATURE):
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO app_service")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {RESOLVE_SIGNATURE}")
    op.execute(f"DROP FUNCTION {SESSION_SIGNATURE}")
    op.execute('DROP TRIGGER planwise_password_changed ON "user"')
    op.execute("DROP FUNCTION planwise_note_password_change()")
    op.execute('REVOKE SELECT (password_changed_at) ON "user" FROM app_read')
    op.execute('ALTER TABLE "user" DROP COLUMN password_changed_at')
    _on_local_auth(EARLIER_ROW_TRIGGER)
    op.execute(EARLIER_USER_FOR_AUTH_ID)
    # Squatters renamed by the upgrade keep their new names.
    op.execute('ALTER TABLE "user" DROP CONSTRAINT ck_user_internal_username')
