"""GoTrue's tables in the local `auth` stand-in, its SQL for /auth/v1, Planwise rows by trigger

Revision ID: d4e5f6a7b8c9
Revises: b2c3d4e5f6a7
Create Date: 2023-12-20 10:00:00

The local Auth (`/auth/v1`, planwise/auth) keeps its users, identities, sessions and
refresh tokens where Supabase Auth (GoTrue) keeps them: `auth.users`, `auth.identities`,
`auth.sessions`, `auth.refresh_tokens`, with GoTrue's column names, types, defaults,
constraints and indexes as its own migrations leave them (supabase/auth, migrations/,
through 20251111201300; `sessions.oauth_client_id` is kept without its foreign key, as
there is no `oauth_clients` table here). So a dump of a Supabase project's auth tables
restores here, and ours restores into Supabase.

Only in the marked stand-in schema that 9b0c1d2e3f4a creates where Supabase's does not
exist. On a Supabase project `auth` belongs to Supabase Auth: nothing here touches it,
and the Planwise row of a Supabase user is made at first sight
(`planwise_user_for_auth_id`, 9b0c1d2e3f4a) instead of by the trigger below.

Who may write `auth.*`: the API logs in as `app_service`, which RLS applies to. It gets
no privilege on these tables. Each thing /auth/v1 does (sign up, look up a login, open a
session, rotate a refresh token, read or change the signed-in user, log out, the admin
operations) is one SECURITY DEFINER function owned by `planwise_auth` (the NOLOGIN role
that already owns the login functions of 5c6d7e8f9a0b; nobody can log in as it or
SET ROLE to it), with `search_path` pinned and EXECUTE granted to `app_service` only. We
chose functions over giving `app_service` a role to switch to: a role it could SET ROLE
into would hand it every row of `auth.*` (and planwise_auth's rights on "user") for the
whole connection, defeating tests/test_rls.py; a function can only do its one operation.
`planwise_auth` owns the tables (as `supabase_auth_admin` does on Supabase), RLS is
enabled on them without policies (as GoTrue does), so only the owner, i.e. those functions,
reads them. Each function is one round trip, and the refresh-token rotation runs under
row locks in one statement, so concurrent refreshes of one token serialise.

Passwords are hashed and verified in Python (bcrypt, as GoTrue); the functions store and
return hashes but never see a password.

A trigger on `auth.users` (AFTER INSERT, SECURITY DEFINER, owned by `planwise_auth`)
gives each new auth user its Planwise "user" row, mapped by `auth_user_id`: username from
`raw_user_meta_data->>'username'` when it is a valid Planwise username, else from the
email's local part; made unique with a `_2`, `_3`… suffix; full name from `full_name` or
`name` in the metadata, else the email. `hashed_password` is '!supabase-auth', which no
password matches (users/security.py). The row is made for restored auth users too.

The downgrade removes exactly this: the functions, the trigger, the four tables and the
`aal_level` type, and the schema grants; Planwise rows made by the trigger are data and stay.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "d4e5f6a7b8c9"
down_revision: str | None = "b2c3d4e5f6a7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOCAL_AUTH_MARK = "planwise: local stand-in for Supabase auth"  # as in 9b0c1d2e3f4a
AUTH_IS_OURS = (
    "coalesce((SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace "
    f"WHERE nspname = 'auth'), '') = '{LOCAL_AUTH_MARK}'"
)
NIL_INSTANCE = "'00000000-0000-0000-0000-000000000000'::uuid"
DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, pg_temp"

TABLES = """
CREATE TYPE auth.aal_level AS ENUM ('aal1', 'aal2', 'aal3');

CREATE TABLE auth.users (
    instance_id uuid NULL,
    id uuid NOT NULL,
    aud varchar(255) NULL,
    "role" varchar(255) NULL,
    email varchar(255) NULL,
    encrypted_password varchar(255) NULL,
    email_confirmed_at timestamptz NULL,
    invited_at timestamptz NULL,
    confirmation_token varchar(255) NULL,
    confirmation_sent_at timestamptz NULL,
    recovery_token varchar(255) NULL,
    recovery_sent_at timestamptz NULL,
    email_change_token_new varchar(255) NULL,
    email_change varchar(255) NULL,
    email_change_sent_at timestamptz NULL,
    last_sign_in_at timestamptz NULL,
    raw_app_meta_data jsonb NULL,
    raw_user_meta_data jsonb NULL,
    is_super_admin bool NULL,
    created_at timestamptz NULL,
    updated_at timestamptz NULL,
    phone text NULL DEFAULT NULL,
    phone_confirmed_at timestamptz NULL DEFAULT NULL,
    phone_change text NULL DEFAULT '',
    phone_change_token varchar(255) NULL DEFAULT '',
    phone_change_sent_at timestamptz NULL DEFAULT NULL,
    confirmed_at timestamptz GENERATED ALWAYS AS (LEAST(email_confirmed_at, phone_confirmed_at))
        STORED,
    email_change_token_current varchar(255) NULL DEFAULT '',
    email_change_confirm_status smallint DEFAULT 0
        CHECK (email_change_confirm_status >= 0 AND email_change_confirm_status <= 2),
    banned_until timestamptz NULL,
    reauthentication_token varchar(255) NULL DEFAULT '',
    reauthentication_sent_at timestamptz NULL DEFAULT NULL,
    is_sso_user boolean NOT NULL DEFAULT false,
    deleted_at timestamptz NULL,
    is_anonymous boolean NOT NULL DEFAULT false,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_phone_key UNIQUE (phone)
);
CREATE INDEX users_instance_id_idx ON auth.users USING btree (instance_id);
CREATE INDEX users_instance_id_email_idx ON auth.users USING btree (instance_id, lower(email));
CREATE UNIQUE INDEX confirmation_token_idx ON auth.users USING btree (confirmation_token)
    WHERE confirmation_token !~ '^[0-9 ]*$';
CREATE UNIQUE INDEX recovery_token_idx ON auth.users USING btree (recovery_token)
    WHERE recovery_token !~ '^[0-9 ]*$';
CREATE UNIQUE INDEX email_change_token_current_idx ON auth.users
    USING btree (email_change_token_current) WHERE email_change_token_current !~ '^[0-9 ]*$';
CREATE UNIQUE INDEX email_change_token_new_idx ON auth.users
    USING btree (email_change_token_new) WHERE email_change_token_new !~ '^[0-9 ]*$';
CREATE UNIQUE INDEX reauthentication_token_idx ON auth.users
    USING btree (reauthentication_token) WHERE reauthentication_token !~ '^[0-9 ]*$';
CREATE UNIQUE INDEX users_email_partial_key ON auth.users (email) WHERE (is_sso_user = false);
CREATE INDEX users_is_anonymous_idx ON auth.users USING btree (is_anonymous);
COMMENT ON TABLE auth.users IS 'Auth: Stores user login data within a secure schema.';

CREATE TABLE auth.identities (
    provider_id text NOT NULL,
    user_id uuid NOT NULL,
    identity_data jsonb NOT NULL,
    provider text NOT NULL,
    last_sign_in_at timestamptz NULL,
    created_at timestamptz NULL,
    updated_at timestamptz NULL,
    email text GENERATED ALWAYS AS (lower(identity_data ->> 'email')) STORED,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    CONSTRAINT identities_pkey PRIMARY KEY (id),
    CONSTRAINT identities_provider_id_provider_unique UNIQUE (provider_id, provider),
    CONSTRAINT identities_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES auth.users (id) ON DELETE CASCADE
);
CREATE INDEX identities_user_id_idx ON auth.identities USING btree (user_id);
CREATE INDEX identities_email_idx ON auth.identities (email text_pattern_ops);
COMMENT ON TABLE auth.identities IS 'Auth: Stores identities associated to a user.';

CREATE TABLE auth.sessions (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    created_at timestamptz NULL,
    updated_at timestamptz NULL,
    factor_id uuid NULL,
    aal auth.aal_level NULL,
    not_after timestamptz,
    refreshed_at timestamp without time zone,
    user_agent text,
    ip inet,
    tag text,
    oauth_client_id uuid,
    refresh_token_hmac_key text,
    refresh_token_counter bigint,
    scopes text,
    CONSTRAINT sessions_pkey PRIMARY KEY (id),
    CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES auth.users (id) ON DELETE CASCADE,
    CONSTRAINT sessions_scopes_length CHECK (char_length(scopes) <= 4096)
);
CREATE INDEX sessions_user_id_idx ON auth.sessions (user_id);
CREATE INDEX sessions_not_after_idx ON auth.sessions (not_after DESC);
CREATE INDEX sessions_oauth_client_id_idx ON auth.sessions (oauth_client_id);
COMMENT ON TABLE auth.sessions IS 'Auth: Stores session data associated to a user.';

CREATE TABLE auth.refresh_tokens (
    instance_id uuid NULL,
    id bigserial NOT NULL,
    "token" varchar(255) NULL,
    user_id varchar(255) NULL,
    revoked bool NULL,
    created_at timestamptz NULL,
    updated_at timestamptz NULL,
    parent varchar(255) NULL,
    session_id uuid NULL,
    CONSTRAINT refresh_tokens_pkey PRIMARY KEY (id),
    CONSTRAINT refresh_tokens_token_unique UNIQUE ("token"),
    CONSTRAINT refresh_tokens_session_id_fkey FOREIGN KEY (session_id)
        REFERENCES auth.sessions (id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_instance_id_idx ON auth.refresh_tokens USING btree (instance_id);
CREATE INDEX refresh_tokens_instance_id_user_id_idx ON auth.refresh_tokens
    USING btree (instance_id, user_id);
CREATE INDEX refresh_tokens_parent_idx ON auth.refresh_tokens USING btree (parent);
CREATE INDEX refresh_tokens_session_id_revoked_idx ON auth.refresh_tokens (session_id, revoked);
CREATE INDEX refresh_tokens_updated_at_idx ON auth.refresh_tokens (updated_at DESC);
COMMENT ON TABLE auth.refresh_tokens IS
    'Auth: Store of tokens used to refresh JWT tokens once they expire.';
"""

# -- helpers (not callable by app_service) -------------------------------------------------
TIMESTAMP = """
CREATE FUNCTION auth.planwise_ts(t timestamptz) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$fn$;
"""

MERGE_METADATA = """
CREATE FUNCTION auth.planwise_merge_metadata(current_data jsonb, updates jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $fn$
    -- GoTrue's UpdateUserMetaData: top-level keys set to null are removed, the others
    -- replaced (values are kept as sent, nulls inside them included).
    SELECT CASE WHEN updates IS NULL THEN current_data ELSE
        (coalesce(current_data, '{}')
         || (SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}') FROM jsonb_each(updates) e
             WHERE jsonb_typeof(e.value) <> 'null'))
        - coalesce(ARRAY(SELECT e.key FROM jsonb_each(updates) e
                         WHERE jsonb_typeof(e.value) = 'null'), '{}')
    END
$fn$;
"""

# GoTrue's user JSON (internal/models/user.go): omitempty fields only when set.
USER_JSON = """
CREATE FUNCTION auth.planwise_user_json(p_user_id uuid) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT jsonb_build_object(
        'id', u.id,
        'aud', coalesce(u.aud, ''),
        'role', coalesce(u.role, ''),
        'email', coalesce(u.email, ''),
        'phone', coalesce(u.phone, ''),
        'app_metadata', coalesce(u.raw_app_meta_data, '{}'),
        'user_metadata', coalesce(u.raw_user_meta_data, '{}'),
        'identities', coalesce((
            SELECT jsonb_agg(
                jsonb_strip_nulls(jsonb_build_object(
                    'identity_id', i.id, 'id', i.provider_id, 'user_id', i.user_id,
                    'provider', i.provider, 'email', i.email,
                    'last_sign_in_at', auth.planwise_ts(i.last_sign_in_at),
                    'created_at', coalesce(auth.planwise_ts(i.created_at),
                                           '0001-01-01T00:00:00Z'),
                    'updated_at', coalesce(auth.planwise_ts(i.updated_at),
                                           '0001-01-01T00:00:00Z')))
                || jsonb_build_object('identity_data', i.identity_data)
                ORDER BY i.created_at, i.id)
            FROM auth.identities i WHERE i.user_id = u.id), '[]'),
        'created_at', coalesce(auth.planwise_ts(u.created_at), '0001-01-01T00:00:00Z'),
        'updated_at', coalesce(auth.planwise_ts(u.updated_at), '0001-01-01T00:00:00Z'),
        'is_anonymous', u.is_anonymous
    ) || jsonb_strip_nulls(jsonb_build_object(
        'email_confirmed_at', auth.planwise_ts(u.email_confirmed_at),
        'phone_confirmed_at', auth.planwise_ts(u.phone_confirmed_at),
        'confirmed_at', auth.planwise_ts(u.confirmed_at),
        'confirmation_sent_at', auth.planwise_ts(u.confirmation_sent_at),
        'recovery_sent_at', auth.planwise_ts(u.recovery_sent_at),
        'invited_at', auth.planwise_ts(u.invited_at),
        'last_sign_in_at', auth.planwise_ts(u.last_sign_in_at),
        'banned_until', auth.planwise_ts(u.banned_until),
        'deleted_at', auth.planwise_ts(u.deleted_at),
        'new_email', nullif(u.email_change, ''),
        'new_phone', nullif(u.phone_change, '')
    ))
    FROM auth.users u WHERE u.id = p_user_id
$fn$;
"""

NEW_USER = f"""
CREATE FUNCTION auth.planwise_new_user(
    p_id uuid, p_email text, p_encrypted_password text, p_confirmed boolean,
    p_user_meta jsonb, p_app_meta jsonb, p_role text, p_banned_until timestamptz
) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    now_at timestamptz := now();
    address text := lower(p_email);
BEGIN
    IF EXISTS (SELECT 1 FROM auth.users u WHERE u.instance_id = {NIL_INSTANCE}
               AND lower(u.email) = address AND NOT u.is_sso_user) THEN
        RETURN '{{"error": "email_exists"}}';
    END IF;
    IF EXISTS (SELECT 1 FROM auth.users u WHERE u.id = p_id) THEN
        RETURN '{{"error": "id_exists"}}';
    END IF;
    INSERT INTO auth.users (
        instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
        confirmation_token, recovery_token, email_change_token_new, email_change,
        raw_app_meta_data, raw_user_meta_data, created_at, updated_at, banned_until
    ) VALUES (
        {NIL_INSTANCE}, p_id, 'authenticated', coalesce(p_role, 'authenticated'), address,
        coalesce(p_encrypted_password, ''), CASE WHEN p_confirmed THEN now_at END, '', '', '', '',
        '{{"provider": "email", "providers": ["email"]}}'::jsonb || coalesce(p_app_meta, '{{}}'),
        coalesce(p_user_meta, '{{}}'), now_at, now_at, p_banned_until
    )
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN  -- the same address or id, concurrently
        RETURN '{{"error": "email_exists"}}';
    END IF;
    INSERT INTO auth.identities (
        provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at
    ) VALUES (
        p_id::text, p_id,
        jsonb_build_object('sub', p_id::text, 'email', address, 'email_verified', p_confirmed,
                           'phone_verified', false)
            || (coalesce(p_user_meta, '{{}}') - ARRAY['sub', 'email', 'email_verified',
                                                    'phone_verified']),
        'email', now_at, now_at, now_at
    );
    RETURN auth.planwise_user_json(p_id);
END
$fn$;
"""

# -- what app_service may call ---------------------------------------------------------------
SIGNUP = f"""
CREATE FUNCTION auth.planwise_signup(
    p_email text, p_encrypted_password text, p_user_meta jsonb
) RETURNS jsonb
LANGUAGE sql VOLATILE {DEFINER} AS $fn$
    -- Email confirmation is off locally (mailer_autoconfirm): confirmed at sign-up.
    -- An "email_exists" error object when the address is taken.
    SELECT auth.planwise_new_user(gen_random_uuid(), p_email, p_encrypted_password, true,
                                  p_user_meta, NULL, NULL, NULL)
$fn$;
"""

FIND_LOGIN = f"""
CREATE FUNCTION auth.planwise_find_login(p_email text)
RETURNS TABLE (user_id uuid, encrypted_password text, banned boolean, confirmed boolean)
LANGUAGE sql STABLE {DEFINER} AS $fn$
    -- GoTrue's FindUserByEmailAndAudience.
    SELECT u.id, u.encrypted_password, coalesce(u.banned_until > now(), false),
           u.email_confirmed_at IS NOT NULL
    FROM auth.users u
    WHERE u.instance_id = {NIL_INSTANCE} AND lower(u.email) = lower(p_email)
      AND u.aud = 'authenticated' AND NOT u.is_sso_user
    LIMIT 1
$fn$;
"""

PASSWORD_HASH = f"""
CREATE FUNCTION auth.planwise_password_hash(p_user_id uuid) RETURNS text
LANGUAGE sql STABLE {DEFINER} AS $fn$
    SELECT u.encrypted_password FROM auth.users u WHERE u.id = p_user_id
$fn$;
"""

START_SESSION = f"""
CREATE FUNCTION auth.planwise_start_session(
    p_user_id uuid, p_refresh_token text, p_user_agent text, p_ip inet
) RETURNS jsonb
LANGUAGE plpgsql VOLATILE {DEFINER} AS $fn$
DECLARE
    session_id uuid := gen_random_uuid();
    now_at timestamptz := now();
BEGIN
    PERFORM 1 FROM auth.users u WHERE u.id = p_user_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO auth.sessions (id, user_id, created_at, updated_at, aal, user_agent, ip)
    VALUES (session_id, p_user_id, now_at, now_at, 'aal1', p_user_agent, p_ip);
    INSERT INTO auth.refresh_tokens (
        instance_id, token, user_id, revoked, created_at, updated_at, parent, session_id
    ) VALUES ({NIL_INSTANCE}, p_refresh_token, p_user_id::text, false, now_at, now_at, NULL,
              session_id);
    UPDATE auth.users SET last_sign_in_at = now_at WHERE id = p_user_id;
    UPDATE auth.identities SET last_sign_in_at = now_at
    WHERE user_id = p_user_id AND provider = 'email';
    RETURN jsonb_build_object(
        'session_id', session_id, 'refresh_token', p_refresh_token,
        'authenticated_at', extract(epoch FROM now_at)::bigint,
        'user', auth.planwise_user_json(p_user_id));
END
$fn$;
"""

# GoTrue's legacy (v1) refresh tokens, internal/tokens/service.go RefreshTokenGrant:
# - the active token rotates: it is revoked and a child with `parent` = it is issued;
# - a revoked token whose child is the session's active token returns that child (the
#   client lost the answer of its last refresh);
# - a revoked token that was rotated less than p_reuse_interval seconds ago rotates again
#   (concurrent refreshes from several tabs);
# - any other revoked token is a reuse: every token of its session is revoked and the
#   answer is refresh_token_already_used. Unlike GoTrue, a token revoked that way (it has
#   no child) can never be reused, not even within the interval.
REFRESH = f"""
CREATE FUNCTION auth.planwise_refresh(
    p_refresh_token text, p_new_token text, p_reuse_interval integer
) RETURNS jsonb
LANGUAGE plpgsql VOLATILE {DEFINER} AS $fn$
DECLARE
    t auth.refresh_tokens;
    s auth.sessions;
    u auth.users;
    active auth.refresh_tokens;
    issued text;
BEGIN
    SELECT * INTO t FROM auth.refresh_tokens r WHERE r.token = p_refresh_token FOR UPDATE;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('error', 'refresh_token_not_found');
    END IF;
    -- user_id is varchar in GoTrue's table: compare as uuid (indexed) only when it is one.
    SELECT * INTO u FROM auth.users x
    WHERE x.id = CASE WHEN t.user_id ~* '^[0-9a-f]{{8}}-([0-9a-f]{{4}}-){{3}}[0-9a-f]{{12}}$'
                      THEN t.user_id::uuid END;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('error', 'refresh_token_not_found');
    END IF;
    IF u.banned_until > now() THEN
        RETURN jsonb_build_object('error', 'user_banned');
    END IF;
    SELECT * INTO s FROM auth.sessions x WHERE x.id = t.session_id FOR UPDATE;
    IF NOT FOUND THEN
        DELETE FROM auth.refresh_tokens WHERE id = t.id;
        RETURN jsonb_build_object('error', 'session_not_found');
    END IF;
    IF s.not_after IS NOT NULL AND s.not_after < now() THEN
        RETURN jsonb_build_object('error', 'session_expired');
    END IF;
    IF t.revoked THEN
        SELECT * INTO active FROM auth.refresh_tokens r
        WHERE r.session_id = s.id AND NOT r.revoked ORDER BY r.id DESC LIMIT 1;
        IF active.id IS NOT NULL AND active.parent = t.token THEN
            issued := active.token;
        ELSIF NOT EXISTS (SELECT 1 FROM auth.refresh_tokens c WHERE c.parent = t.token)
              OR now() > t.updated_at + make_interval(secs => p_reuse_interval) THEN
            UPDATE auth.refresh_tokens SET revoked = true, updated_at = now()
            WHERE session_id = s.id AND NOT revoked;
            RETURN jsonb_build_object('error', 'refresh_token_already_used');
        END IF;
    ELSE
        UPDATE auth.refresh_tokens SET revoked = true, updated_at = now() WHERE id = t.id;
    END IF;
    IF issued IS NULL THEN
        INSERT INTO auth.refresh_tokens (
            instance_id, token, user_id, revoked, created_at, updated_at, parent, session_id
        ) VALUES ({NIL_INSTANCE}, p_new_token, t.user_id, false, now(), now(), t.token, s.id);
        issued := p_new_token;
    END IF;
    UPDATE auth.sessions SET refreshed_at = now() AT TIME ZONE 'UTC', updated_at = now()
    WHERE id = s.id;
    RETURN jsonb_build_object(
        'session_id', s.id, 'refresh_token', issued,
        'authenticated_at', extract(epoch FROM coalesce(s.created_at, now()))::bigint,
        'user', auth.planwise_user_json(u.id));
END
$fn$;
"""

CURRENT_USER = f"""
CREATE FUNCTION auth.planwise_current_user(p_user_id uuid, p_session_id uuid) RETURNS jsonb
LANGUAGE sql STABLE {DEFINER} AS $fn$
    -- The user a token names and whether its session still exists (NULL: no session).
    SELECT jsonb_build_object(
        'user', auth.planwise_user_json(p_user_id),
        'banned', coalesce((SELECT u.banned_until > now() FROM auth.users u
                            WHERE u.id = p_user_id), false),
        'session', p_session_id IS NULL OR EXISTS (
            SELECT 1 FROM auth.sessions s WHERE s.id = p_session_id AND s.user_id = p_user_id))
$fn$;
"""

UPDATE_USER = f"""
CREATE FUNCTION auth.planwise_update_user(
    p_user_id uuid, p_session_id uuid, p_email text, p_encrypted_password text,
    p_user_meta jsonb, p_app_meta jsonb, p_email_confirm boolean, p_role text,
    p_banned_until timestamptz, p_unban boolean
) RETURNS jsonb
LANGUAGE plpgsql VOLATILE {DEFINER} AS $fn$
-- PUT /user (the user's own fields) and PUT /admin/users/{{id}} (all of them). The email
-- changes at once: there is no mailer to confirm it with. A new password ends every
-- other session of the user (all of them when p_session_id is NULL), as GoTrue does.
DECLARE
    u auth.users;
    address text := lower(p_email);
BEGIN
    SELECT * INTO u FROM auth.users x WHERE x.id = p_user_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('error', 'user_not_found');
    END IF;
    IF address IS NOT NULL AND address IS DISTINCT FROM lower(u.email) THEN
        IF EXISTS (SELECT 1 FROM auth.users o WHERE o.instance_id = {NIL_INSTANCE}
                   AND lower(o.email) = address AND o.id <> u.id AND NOT o.is_sso_user) THEN
            RETURN jsonb_build_object('error', 'email_exists');
        END IF;
        UPDATE auth.users SET email = address,
               email_confirmed_at = coalesce(email_confirmed_at, now())
        WHERE id = u.id;
        UPDATE auth.identities
        SET identity_data = identity_data || jsonb_build_object('email', address),
            updated_at = now()
        WHERE user_id = u.id AND provider = 'email';
    END IF;
    IF p_encrypted_password IS NOT NULL THEN
        UPDATE auth.users SET encrypted_password = p_encrypted_password, recovery_token = '',
               confirmation_token = '', reauthentication_token = ''
        WHERE id = u.id;
        DELETE FROM auth.sessions
        WHERE user_id = u.id AND (p_session_id IS NULL OR id <> p_session_id);
    END IF;
    IF p_email_confirm THEN
        UPDATE auth.users SET email_confirmed_at = coalesce(email_confirmed_at, now())
        WHERE id = u.id;
    END IF;
    UPDATE auth.users SET
        raw_user_meta_data = auth.planwise_merge_metadata(raw_user_meta_data, p_user_meta),
        raw_app_meta_data = auth.planwise_merge_metadata(raw_app_meta_data, p_app_meta),
        role = coalesce(p_role, role),
        banned_until = CASE WHEN p_unban THEN NULL
                            ELSE coalesce(p_banned_until, banned_until) END,
        updated_at = now()
    WHERE id = u.id;
    RETURN jsonb_build_object('user', auth.planwise_user_json(u.id));
END
$fn$;
"""

LOGOUT = f"""
CREATE FUNCTION auth.planwise_logout(p_user_id uuid, p_session_id uuid, p_scope text)
RETURNS integer
LANGUAGE plpgsql VOLATILE {DEFINER} AS $fn$
-- GoTrue's Logout: sessions are deleted, their refresh tokens with them (cascade).
-- Without a session (a token with no session_id) every scope is global.
DECLARE
    ended integer;
BEGIN
    IF p_scope = 'local' AND p_session_id IS NOT NULL THEN
        DELETE FROM auth.sessions WHERE id = p_session_id AND user_id = p_user_id;
    ELSIF p_scope = 'others' AND p_session_id IS NOT NULL THEN
        DELETE FROM auth.sessions WHERE user_id = p_user_id AND id <> p_session_id;
    ELSE
        DELETE FROM auth.sessions WHERE user_id = p_user_id;
    END IF;
    GET DIAGNOSTICS ended = ROW_COUNT;
    RETURN ended;
END
$fn$;
"""

ADMIN_GET_USER = f"""
CREATE FUNCTION auth.planwise_admin_get_user(p_user_id uuid) RETURNS jsonb
LANGUAGE sql STABLE {DEFINER} AS $fn$
    SELECT auth.planwise_user_json(p_user_id)
$fn$;
"""

ADMIN_LIST_USERS = f"""
CREATE FUNCTION auth.planwise_admin_list_users(p_page integer, p_per_page integer)
RETURNS jsonb
LANGUAGE sql STABLE {DEFINER} AS $fn$
    -- GoTrue's default order: newest first.
    SELECT jsonb_build_object(
        'total', (SELECT count(*) FROM auth.users WHERE aud = 'authenticated'),
        'users', coalesce((
            SELECT jsonb_agg(auth.planwise_user_json(page.id) ORDER BY page.n)
            FROM (
                SELECT u.id, row_number() OVER (ORDER BY u.created_at DESC, u.id) AS n
                FROM auth.users u WHERE u.aud = 'authenticated'
                ORDER BY u.created_at DESC, u.id
                LIMIT p_per_page OFFSET (p_page - 1) * p_per_page
            ) page), '[]'))
$fn$;
"""

ADMIN_CREATE_USER = f"""
CREATE FUNCTION auth.planwise_admin_create_user(
    p_id uuid, p_email text, p_encrypted_password text, p_email_confirm boolean,
    p_user_meta jsonb, p_app_meta jsonb, p_role text, p_banned_until timestamptz
) RETURNS jsonb
LANGUAGE sql VOLATILE {DEFINER} AS $fn$
    SELECT auth.planwise_new_user(p_id, p_email, p_encrypted_password, p_email_confirm,
                                  p_user_meta, p_app_meta, p_role, p_banned_until)
$fn$;
"""

ADMIN_DELETE_USER = f"""
CREATE FUNCTION auth.planwise_admin_delete_user(p_user_id uuid, p_soft boolean)
RETURNS boolean
LANGUAGE plpgsql VOLATILE {DEFINER} AS $fn$
-- Hard: the row goes, with its identities, sessions and refresh tokens (cascades).
-- Soft (should_soft_delete): the row stays with deleted_at; its email, phone, password,
-- metadata, identities and sessions go, so it can neither sign in nor be found.
BEGIN
    IF NOT p_soft THEN
        DELETE FROM auth.users WHERE id = p_user_id;
        RETURN FOUND;
    END IF;
    UPDATE auth.users SET email = NULL, phone = NULL, encrypted_password = '',
           raw_user_meta_data = '{{}}', raw_app_meta_data = '{{}}', deleted_at = now(),
           updated_at = now()
    WHERE id = p_user_id AND deleted_at IS NULL;
    IF NOT FOUND THEN
        RETURN EXISTS (SELECT 1 FROM auth.users WHERE id = p_user_id);
    END IF;
    DELETE FROM auth.identities WHERE user_id = p_user_id;
    DELETE FROM auth.sessions WHERE user_id = p_user_id;
    RETURN true;
END
$fn$;
"""

PLANWISE_ROW_TRIGGER = """
CREATE FUNCTION auth.planwise_create_planwise_user() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
-- The Planwise "user" row of a new auth user (see the migration's docstring).
DECLARE
    meta jsonb := coalesce(NEW.raw_user_meta_data, '{}');
    base text := meta ->> 'username';
    candidate text;
    attempt integer := 1;
BEGIN
    IF base IS NULL OR base !~ '^[A-Za-z0-9_.@+-]{3,50}$' THEN
        base := regexp_replace(split_part(coalesce(NEW.email, ''), '@', 1),
                               '[^A-Za-z0-9_.+-]', '', 'g');
        IF length(base) < 3 THEN
            base := 'user' || base;
        END IF;
        base := left(base, 50);
    END IF;
    candidate := base;
    LOOP
        IF NOT EXISTS (SELECT 1 FROM public."user" x WHERE x.username = candidate) THEN
            BEGIN
                INSERT INTO public."user" (username, hashed_password, full_name, role,
                                           auth_user_id)
                VALUES (candidate, '!supabase-auth',
                        left(coalesce(nullif(btrim(meta ->> 'full_name'), ''),
                                      nullif(btrim(meta ->> 'name'), ''),
                                      NEW.email, 'Supabase user'), 100),
                        'user', NEW.id)
                ON CONFLICT ON CONSTRAINT uq_user_auth_user_id DO NOTHING;
                RETURN NULL;
            EXCEPTION WHEN unique_violation THEN
                NULL;  -- the username was taken concurrently: try the next one
            END;
        END IF;
        attempt := attempt + 1;
        candidate := left(base, 50 - length(attempt::text) - 1) || '_' || attempt;
    END LOOP;
END
$fn$;
"""

HELPERS = (
    "auth.planwise_ts(timestamptz)",
    "auth.planwise_merge_metadata(jsonb, jsonb)",
    "auth.planwise_user_json(uuid)",
    "auth.planwise_new_user(uuid, text, text, boolean, jsonb, jsonb, text, timestamptz)",
    "auth.planwise_create_planwise_user()",
)
CALLABLE = (
    "auth.planwise_signup(text, text, jsonb)",
    "auth.planwise_find_login(text)",
    "auth.planwise_password_hash(uuid)",
    "auth.planwise_start_session(uuid, text, text, inet)",
    "auth.planwise_refresh(text, text, integer)",
    "auth.planwise_current_user(uuid, uuid)",
    "auth.planwise_update_user(uuid, uuid, text, text, jsonb, jsonb, boolean, text, "
    "timestamptz, boolean)",
    "auth.planwise_logout(uuid, uuid, text)",
    "auth.planwise_admin_get_user(uuid)",
    "auth.planwise_admin_list_users(integer, integer)",
    "auth.planwise_admin_create_user(uuid, text, text, boolean, jsonb, jsonb, text, timestamptz)",
    "auth.planwise_admin_delete_user(uuid, boolean)",
)
FUNCTIONS_SQL = (
    TIMESTAMP, MERGE_METADATA, USER_JSON, NEW_USER, PLANWISE_ROW_TRIGGER, SIGNUP, FIND_LOGIN,
    PASSWORD_HASH, START_SESSION, REFRESH, CURRENT_USER, UPDATE_USER, LOGOUT,
    ADMIN_GET_USER, ADMIN_LIST_USERS, ADMIN_CREATE_USER, ADMIN_DELETE_USER,
)  # fmt: skip
GOTRUE_TABLES = ("auth.refresh_tokens", "auth.sessions", "auth.identities", "auth.users")


def _ownership_and_grants() -> str:
    statements = [
        # planwise_auth must be able to create in the schema to be given objects there;
        # it keeps only USAGE afterwards.
        "GRANT USAGE, CREATE ON SCHEMA auth TO planwise_auth",
        "ALTER TYPE auth.aal_level OWNER TO planwise_auth",
    ]
    for table in GOTRUE_TABLES:
        statements += [
            f"ALTER TABLE {table} OWNER TO planwise_auth",
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            f"REVOKE ALL ON {table} FROM PUBLIC",
        ]
    for signature in (*HELPERS, *CALLABLE):
        statements += [
            f"ALTER FUNCTION {signature} OWNER TO planwise_auth",
            f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC",
        ]
    statements += [f"GRANT EXECUTE ON FUNCTION {name} TO app_service" for name in CALLABLE]
    statements += [
        "REVOKE CREATE ON SCHEMA auth FROM planwise_auth",
        "GRANT USAGE ON SCHEMA auth TO app_service",
        "CREATE TRIGGER planwise_user_from_auth_user AFTER INSERT ON auth.users "
        "FOR EACH ROW EXECUTE FUNCTION auth.planwise_create_planwise_user()",
    ]
    return ";\n".join(statements) + ";\n"


def upgrade() -> None:
    body = TABLES + "".join(FUNCTIONS_SQL) + _ownership_and_grants()
    op.execute(
        f"""
        DO $gotrue$
        BEGIN
            IF {AUTH_IS_OURS} THEN
                {body}
            END IF;
        END
        $gotrue$
        """
    )


def downgrade() -> None:
    drops = [f"DROP FUNCTION {signature}" for signature in CALLABLE]
    drops += [f"DROP TABLE {table}" for table in GOTRUE_TABLES]  # the trigger goes with users
    drops += [f"DROP FUNCTION {signature}" for signature in HELPERS]
    drops += [
        "DROP TYPE auth.aal_level",
        "REVOKE ALL ON SCHEMA auth FROM app_service, planwise_auth",
    ]
    body = ";\n".join(drops) + ";\n"
    op.execute(
        f"""
        DO $gotrue$
        BEGIN
            IF {AUTH_IS_OURS} THEN
                {body}
            END IF;
        END
        $gotrue$
        """
    )
