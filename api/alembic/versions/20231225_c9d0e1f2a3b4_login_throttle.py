"""Login throttling: failure counters in PostgreSQL, shared by every API worker

Revision ID: c9d0e1f2a3b4
Revises: d0e1f2a3b4c5
Create Date: 2023-12-24 10:00:00

`login_throttle` holds one row per counter (planwise/users/throttle.py decides the keys):

* `pair`: one username from one client address (the strict limit);
* `username`: one username from anywhere (looser), not counted for an address the user
  logged in from before (`known`), so strangers cannot lock a user out of their usual
  address;
* `address`: one client address, any username (password spraying);
* `known`: a username and an address that logged in successfully, until `expires_at`.

Keys are SHA-256 digests (of the surface, the case-folded username and the address), so
no guessed username, and no password typed into the username field, is stored.

A login attempt is counted before its password is checked (`planwise_login_attempt`,
one statement, under row locks taken in one order: pair, username, address), so
concurrent guesses cannot all pass a check made before any of them failed. It answers
how many seconds to wait instead: after `free` counted attempts a counter asks for
`base * 2^(failures - free)` seconds (at most `max`) after its last attempt; a refused
attempt is not counted. `planwise_login_succeeded` deletes the pair and username
counters, takes the attempt back from the address counter and remembers the address as
known; `planwise_login_released` takes back an attempt whose password was never checked
(no hashing slot free). Counters untouched for `forget` seconds start again from zero;
expired rows are deleted by one attempt in a hundred.

The API connects as `app_service`, which gets no privilege on the table, only EXECUTE on
the three functions (SECURITY DEFINER, owned by the NOLOGIN `planwise_auth`, search_path
pinned), which can do nothing but count. RLS is enabled without policies for anyone but
`supabase_admin`, as on the `auth` tables. The downgrade drops exactly this.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c9d0e1f2a3b4"
down_revision: str | None = "d0e1f2a3b4c5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, pg_temp"
ATTEMPT = (
    "planwise_login_attempt(bytea, bytea, bytea, integer, integer, integer, "
    "double precision, double precision, double precision)"
)
SUCCEEDED = "planwise_login_succeeded(bytea, bytea, bytea, double precision)"
RELEASED = "planwise_login_released(bytea, bytea, bytea)"

TABLE = """
CREATE TABLE public.login_throttle (
    scope varchar(10) NOT NULL,
    key bytea NOT NULL,
    failures integer NOT NULL DEFAULT 0,
    last_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    CONSTRAINT pk_login_throttle PRIMARY KEY (scope, key)
);
CREATE INDEX ix_login_throttle_expires_at ON public.login_throttle (expires_at);
"""

ATTEMPT_FUNCTION = f"""
CREATE FUNCTION planwise_login_attempt(
    p_pair bytea, p_username bytea, p_address bytea,
    pair_free integer, username_free integer, address_free integer,
    base_seconds double precision, max_seconds double precision,
    forget_seconds double precision
) RETURNS double precision
LANGUAGE plpgsql VOLATILE {DEFINER} AS $fn$
DECLARE
    counters text[] := ARRAY['pair', 'username', 'address'];
    wait double precision;
BEGIN
    IF random() < 0.01 THEN
        DELETE FROM public.login_throttle WHERE expires_at < now();
    END IF;
    IF EXISTS (SELECT FROM public.login_throttle t WHERE t.scope = 'known'
               AND t.key = p_pair AND t.expires_at > now()) THEN
        counters := ARRAY['pair', 'address'];
    END IF;
    -- Create the missing counters, then lock all of them, in one order (no deadlocks).
    INSERT INTO public.login_throttle AS t (scope, key, failures, last_at, expires_at)
    SELECT c.scope, c.key, 0, now(), now()
    FROM (VALUES (1, 'pair', p_pair), (2, 'username', p_username), (3, 'address', p_address))
         AS c(ord, scope, key)
    WHERE c.scope = ANY (counters)
    ORDER BY c.ord
    ON CONFLICT (scope, key) DO NOTHING;

    SELECT coalesce(max(
        CASE WHEN l.expires_at <= now() OR l.failures < l.free THEN 0
             ELSE extract(epoch FROM l.last_at - now())
                  + least(max_seconds, base_seconds * 2 ^ least(l.failures - l.free, 60))
        END), 0)
    INTO wait
    FROM (
        SELECT t.failures, t.last_at, t.expires_at, c.free
        FROM public.login_throttle t
        JOIN (VALUES (1, 'pair', p_pair, pair_free), (2, 'username', p_username, username_free),
                     (3, 'address', p_address, address_free)) AS c(ord, scope, key, free)
          ON t.scope = c.scope AND t.key = c.key
        WHERE c.scope = ANY (counters)
        ORDER BY c.ord
        FOR UPDATE OF t
    ) l;
    IF wait > 0 THEN
        RETURN wait;  -- refused: not counted
    END IF;

    UPDATE public.login_throttle t
    SET failures = CASE WHEN t.expires_at <= now() THEN 1 ELSE t.failures + 1 END,
        last_at = now(),
        expires_at = now() + make_interval(secs => greatest(forget_seconds, max_seconds))
    WHERE (t.scope = 'pair' AND t.key = p_pair)
       OR (t.scope = 'username' AND t.key = p_username AND 'username' = ANY (counters))
       OR (t.scope = 'address' AND t.key = p_address);
    RETURN 0;
END
$fn$;
"""

SUCCEEDED_FUNCTION = f"""
CREATE FUNCTION planwise_login_succeeded(
    p_pair bytea, p_username bytea, p_address bytea, known_seconds double precision
) RETURNS void
LANGUAGE plpgsql VOLATILE {DEFINER} AS $fn$
BEGIN
    DELETE FROM public.login_throttle t
    WHERE (t.scope = 'pair' AND t.key = p_pair) OR (t.scope = 'username' AND t.key = p_username);
    UPDATE public.login_throttle t SET failures = greatest(t.failures - 1, 0)
    WHERE t.scope = 'address' AND t.key = p_address;
    INSERT INTO public.login_throttle AS t (scope, key, failures, last_at, expires_at)
    VALUES ('known', p_pair, 0, now(), now() + make_interval(secs => known_seconds))
    ON CONFLICT (scope, key) DO UPDATE SET last_at = excluded.last_at,
                                           expires_at = excluded.expires_at;
END
$fn$;
"""

RELEASED_FUNCTION = f"""
CREATE FUNCTION planwise_login_released(p_pair bytea, p_username bytea, p_address bytea)
RETURNS void
LANGUAGE sql VOLATILE {DEFINER} AS $fn$
    UPDATE public.login_throttle t SET failures = greatest(t.failures - 1, 0)
    WHERE (t.scope = 'pair' AND t.key = p_pair) OR (t.scope = 'username' AND t.key = p_username)
       OR (t.scope = 'address' AND t.key = p_address);
$fn$;
"""


def upgrade() -> None:
    op.execute(TABLE)
    op.execute("ALTER TABLE public.login_throttle OWNER TO planwise_auth")
    op.execute("ALTER TABLE public.login_throttle ENABLE ROW LEVEL SECURITY")
    # Supabase's default privileges hand new public tables to its API roles: not this one.
    op.execute(
        "REVOKE ALL ON public.login_throttle FROM PUBLIC, anon, authenticated, service_role, "
        "app_service, app_read"
    )
    op.execute("GRANT ALL ON public.login_throttle TO supabase_admin")
    op.execute(
        "CREATE POLICY login_throttle_supabase_admin ON public.login_throttle "
        "TO supabase_admin USING (true) WITH CHECK (true)"
    )
    for body, signature in (
        (ATTEMPT_FUNCTION, ATTEMPT),
        (SUCCEEDED_FUNCTION, SUCCEEDED),
        (RELEASED_FUNCTION, RELEASED),
    ):
        op.execute(body)
        op.execute(f"ALTER FUNCTION {signature} OWNER TO planwise_auth")
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO app_service")


def downgrade() -> None:
    for signature in (RELEASED, SUCCEEDED, ATTEMPT):
        op.execute(f"DROP FUNCTION {signature}")
    op.execute("DROP TABLE public.login_throttle")
