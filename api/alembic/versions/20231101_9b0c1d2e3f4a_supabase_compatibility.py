"""Supabase compatibility: auth schema and roles, JWT identities in RLS, recommend_places()

Revision ID: 9b0c1d2e3f4a
Revises: 5c6d7e8f9a0b
Create Date: 2023-11-01 10:00:00

On a Supabase project the `auth` schema, `auth.uid()`/`auth.jwt()` and the roles `anon`,
`authenticated` and `service_role` exist: they are used as they are. Elsewhere (the
managed cluster) this creates compatible ones that read the JWT claims from the
`request.jwt.claims` setting exactly as Supabase's do, and marks the schema as ours so
the downgrade removes only what it created.

A Supabase user (JWT `sub`, a uuid) maps to a Planwise `user` row through the new
`user.auth_user_id`. Policies for the `authenticated` role let such a user reach their own
rows without the API; the API keeps using `app.user_id`. `recommend_places()` is the
recommendation query as a SQL function for `/rest/v1/rpc/recommend_places`, and the one
implementation the Python service calls too.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "9b0c1d2e3f4a"
down_revision: str | None = "5c6d7e8f9a0b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOCAL_AUTH_MARK = "planwise: local stand-in for Supabase auth"

# The Supabase user behind the current request, as auth.uid() reads it; written out so
# that roles without USAGE on Supabase's `auth` schema (app_service) can evaluate it.
JWT_SUB = "(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')::uuid"
ACTING_USER = "nullif(current_setting('app.user_id', true), '')::integer"
USER_DATA = {"review": "user_id", "preference": "user_id"}

CREATE_AUTH = f"""
DO $auth$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'auth') THEN
        CREATE SCHEMA auth;
        COMMENT ON SCHEMA auth IS '{LOCAL_AUTH_MARK}';
        CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $f$
            SELECT coalesce(
                nullif(current_setting('request.jwt.claim', true), ''),
                nullif(current_setting('request.jwt.claims', true), '')
            )::jsonb
        $f$;
        CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $f$
            SELECT coalesce(
                nullif(current_setting('request.jwt.claim.sub', true), ''),
                (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
            )::uuid
        $f$;
        CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $f$
            SELECT coalesce(
                nullif(current_setting('request.jwt.claim.role', true), ''),
                (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
            )::text
        $f$;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
        IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
            CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
        ELSE
            CREATE ROLE service_role NOLOGIN NOINHERIT;
        END IF;
    END IF;
    IF (SELECT obj_description('auth'::regnamespace, 'pg_namespace')) = '{LOCAL_AUTH_MARK}' THEN
        GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
    END IF;
END
$auth$
"""

# PostGIS's schema must be on the search path of the roles that run spatial SQL; on
# Supabase it is `extensions`, which the API roles there already have.
POSTGIS_SEARCH_PATH = """
DO $path$
DECLARE
    postgis_schema name := (
        SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = 'postgis'
    );
    role_name name;
BEGIN
    IF postgis_schema <> 'public' THEN
        FOREACH role_name IN ARRAY ARRAY['app_service', 'app_read'] LOOP
            EXECUTE format(
                'ALTER ROLE %I IN DATABASE %I SET search_path = "$user", public, %I',
                role_name, current_database(), postgis_schema
            );
        END LOOP;
    END IF;
END
$path$
"""

ACTING_USER_ID = f"""
CREATE FUNCTION planwise_acting_user_id() RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        {ACTING_USER},
        (SELECT u.id FROM public."user" u WHERE u.auth_user_id = {JWT_SUB})
    )
$$
"""
"""The Planwise user acting: `app.user_id` (the API) or the Supabase JWT's user."""

SEARCH_BOX = """
CREATE FUNCTION planwise_search_box(
    p_lat double precision, p_lng double precision, p_radius_km double precision, p_part integer
) RETURNS geometry
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- Part 1 or 2 of a lng/lat box pair whose union holds every point within p_radius_km
    -- of (p_lat, p_lng). 110.5 km is less than any degree of latitude (sphere or
    -- spheroid), so degrees are only ever overestimated; longitude degrees shrink with
    -- the cosine of the highest latitude the circle reaches; a circle reaching a pole
    -- spans all longitudes; one crossing ±180° is split in two. Both parts are equal
    -- when there is no split.
    WITH extent AS (
        SELECT greatest(-90, p_lat - d.dlat) AS south,
               least(90, p_lat + d.dlat) AS north,
               CASE WHEN abs(p_lat) + d.dlat >= 90 THEN 360
                    ELSE p_radius_km / (110.5 * cos(radians(abs(p_lat) + d.dlat)))
               END AS dlng
        FROM (SELECT p_radius_km / 110.5 AS dlat) AS d
    )
    SELECT CASE
        WHEN dlng >= 180 THEN ST_MakeEnvelope(-180, south, 180, north, 4326)
        WHEN p_lng - dlng < -180 AND p_part = 1
            THEN ST_MakeEnvelope(-180, south, p_lng + dlng, north, 4326)
        WHEN p_lng - dlng < -180
            THEN ST_MakeEnvelope(p_lng - dlng + 360, south, 180, north, 4326)
        WHEN p_lng + dlng > 180 AND p_part = 1
            THEN ST_MakeEnvelope(p_lng - dlng, south, 180, north, 4326)
        WHEN p_lng + dlng > 180
            THEN ST_MakeEnvelope(-180, south, p_lng + dlng - 360, north, 4326)
        ELSE ST_MakeEnvelope(p_lng - dlng, south, p_lng + dlng, north, 4326)
    END
    FROM extent
$$
"""

CHECK_REQUEST = """
CREATE FUNCTION planwise_check_recommendation_request(
    lat double precision, lng double precision, radius_km double precision, max_results integer
) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF planwise_acting_user_id() IS NULL THEN
        RAISE EXCEPTION 'no acting user: set app.user_id or call with a user''s JWT'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT (lat BETWEEN -90 AND 90 AND lng BETWEEN -180 AND 180) THEN
        RAISE EXCEPTION 'lat must be within [-90, 90] and lng within [-180, 180]'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT (radius_km > 0 AND radius_km <= 50) THEN
        RAISE EXCEPTION 'radius_km must be within (0, 50]'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT (max_results BETWEEN 1 AND 100) THEN
        RAISE EXCEPTION 'max_results must be within [1, 100]'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN true;
END
$$
"""

RECOMMEND_PLACES = """
CREATE FUNCTION recommend_places(
    lat double precision,
    lng double precision,
    radius_km double precision DEFAULT 5,
    max_results integer DEFAULT 20,
    exclude_reviewed boolean DEFAULT false,
    only_category text DEFAULT NULL
) RETURNS TABLE (
    id varchar, name varchar, place_lat double precision, place_lng double precision,
    category varchar, rating double precision, user_ratings_total integer, types varchar,
    description text, distance_km double precision, preference double precision,
    rating_component double precision, popularity double precision,
    proximity double precision, score double precision
)
LANGUAGE sql STABLE AS $$
    -- The design document's scoring with true great-circle distance, for the acting user
    -- (the API's app.user_id or a Supabase JWT's user), with the caller's rights (RLS).
    -- Plain SQL so the planner inlines it: EXPLAIN shows idx_place_location at work.
    WITH user_prefs AS (
        SELECT p.category, p.rating FROM public.preference p
        WHERE p.user_id = planwise_acting_user_id()
          AND planwise_check_recommendation_request(
              recommend_places.lat, recommend_places.lng, recommend_places.radius_km,
              recommend_places.max_results)
    ),
    candidates AS (
        SELECT pl.id, pl.name, pl.lat, pl.lng, pl.category, pl.rating,
               pl.user_ratings_total, pl.types, pl.description, up.rating AS preference,
               ST_DistanceSphere(
                   ST_SetSRID(ST_MakePoint(pl.lng, pl.lat), 4326),
                   ST_SetSRID(ST_MakePoint(recommend_places.lng, recommend_places.lat), 4326)
               ) / 1000.0 AS distance_km
        FROM public.place pl
        JOIN user_prefs up ON up.category = pl.category
        WHERE (ST_SetSRID(ST_MakePoint(pl.lng, pl.lat), 4326) && planwise_search_box(
                   recommend_places.lat, recommend_places.lng, recommend_places.radius_km, 1)
               OR ST_SetSRID(ST_MakePoint(pl.lng, pl.lat), 4326) && planwise_search_box(
                   recommend_places.lat, recommend_places.lng, recommend_places.radius_km, 2))
          AND ST_DistanceSphere(
                  ST_SetSRID(ST_MakePoint(pl.lng, pl.lat), 4326),
                  ST_SetSRID(ST_MakePoint(recommend_places.lng, recommend_places.lat), 4326)
              ) <= recommend_places.radius_km * 1000.0
          AND (recommend_places.only_category IS NULL
               OR pl.category = recommend_places.only_category)
          AND NOT (recommend_places.exclude_reviewed AND EXISTS (
              SELECT 1 FROM public.review r
              WHERE r.place_id = pl.id AND r.user_id = planwise_acting_user_id()
          ))
    ),
    components AS (
        SELECT c.*,
               coalesce(c.rating, 0) / 5 AS rating_component,
               least(1.0, log(coalesce(c.user_ratings_total, 0) + 1) / 10)::double precision
                   AS popularity,
               (1 - least(1.0, c.distance_km / recommend_places.radius_km))::double precision
                   AS proximity
        FROM candidates c
    )
    SELECT k.id, k.name, k.lat, k.lng, k.category, k.rating, k.user_ratings_total, k.types,
           k.description, k.distance_km, k.preference, k.rating_component, k.popularity,
           k.proximity,
           k.preference * 0.6 + k.rating_component * 0.2 + k.popularity * 0.1
               + k.proximity * 0.1 AS score
    FROM components k
    ORDER BY score DESC, k.distance_km, k.id
    LIMIT recommend_places.max_results
$$
"""

USER_FOR_AUTH_ID = """
CREATE FUNCTION planwise_user_for_auth_id(p_auth_user_id uuid, p_full_name text)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    found_id integer;
BEGIN
    SELECT u.id INTO found_id FROM public."user" u WHERE u.auth_user_id = p_auth_user_id;
    IF found_id IS NOT NULL THEN
        RETURN found_id;
    END IF;
    INSERT INTO public."user" (username, hashed_password, full_name, role, auth_user_id)
    VALUES ('sb_' || replace(p_auth_user_id::text, '-', ''), '!supabase-auth',
            left(coalesce(nullif(p_full_name, ''), 'Supabase user'), 100), 'user',
            p_auth_user_id)
    ON CONFLICT DO NOTHING
    RETURNING id INTO found_id;
    IF found_id IS NULL THEN  -- a concurrent first sight won: read its row
        SELECT u.id INTO found_id FROM public."user" u
        WHERE u.auth_user_id = p_auth_user_id;
    END IF;
    RETURN found_id;
END
$$
"""
"""The first sight of a Supabase user creates their Planwise row (narrow definer); later
sights only read it, so a request never writes for the lookup."""

FUNCTIONS = (
    "recommend_places(double precision, double precision, double precision, integer, "
    "boolean, text)",
    "planwise_check_recommendation_request(double precision, double precision, "
    "double precision, integer)",
    "planwise_search_box(double precision, double precision, double precision, integer)",
    "planwise_acting_user_id()",
)


def upgrade() -> None:
    op.execute(CREATE_AUTH)
    op.execute(POSTGIS_SEARCH_PATH)

    op.add_column("user", sa.Column("auth_user_id", postgresql.UUID(), nullable=True))
    op.create_unique_constraint("uq_user_auth_user_id", "user", ["auth_user_id"])
    op.execute('GRANT SELECT (auth_user_id) ON "user" TO app_read')
    op.execute('GRANT SELECT (auth_user_id), INSERT (auth_user_id) ON "user" TO planwise_auth')

    op.execute(ACTING_USER_ID)
    op.execute(SEARCH_BOX)
    op.execute(CHECK_REQUEST)
    op.execute(RECOMMEND_PLACES)

    op.execute(USER_FOR_AUTH_ID)
    op.execute("ALTER FUNCTION planwise_user_for_auth_id(uuid, text) OWNER TO planwise_auth")
    op.execute("REVOKE ALL ON FUNCTION planwise_user_for_auth_id(uuid, text) FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION planwise_user_for_auth_id(uuid, text) TO app_service")

    # Supabase's API roles: anon reads places; authenticated works on its own rows.
    op.execute("GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role")
    op.execute("GRANT SELECT ON place TO anon, authenticated")
    op.execute('GRANT SELECT, UPDATE (full_name) ON "user" TO authenticated')
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON review, preference TO authenticated")
    op.execute("GRANT USAGE ON SEQUENCE review_id_seq, preference_id_seq TO authenticated")
    op.execute('GRANT ALL ON "user", place, review, preference TO service_role')
    op.execute(
        "GRANT ALL ON SEQUENCE user_id_seq, review_id_seq, preference_id_seq TO service_role"
    )
    op.execute(f"GRANT EXECUTE ON FUNCTION {FUNCTIONS[0]} TO app_service, authenticated")

    op.execute(
        'CREATE POLICY user_jwt_self ON "user" TO authenticated '
        f"USING (auth_user_id = {JWT_SUB}) WITH CHECK (auth_user_id = {JWT_SUB})"
    )
    for table, column in USER_DATA.items():
        mine = f'{column} = (SELECT u.id FROM "user" u WHERE u.auth_user_id = {JWT_SUB})'
        op.execute(
            f"CREATE POLICY {table}_jwt_access ON {table} TO authenticated "
            f"USING ({mine}) WITH CHECK ({mine})"
        )


def downgrade() -> None:
    for table in USER_DATA:
        op.execute(f"DROP POLICY {table}_jwt_access ON {table}")
    op.execute('DROP POLICY user_jwt_self ON "user"')
    op.execute(
        'REVOKE ALL ON "user", place, review, preference FROM anon, authenticated, service_role'
    )
    op.execute(
        "REVOKE ALL ON SEQUENCE user_id_seq, review_id_seq, preference_id_seq "
        "FROM authenticated, service_role"
    )
    op.execute("DROP FUNCTION planwise_user_for_auth_id(uuid, text)")
    for signature in FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature}")
    op.drop_constraint("uq_user_auth_user_id", "user", type_="unique")
    op.drop_column("user", "auth_user_id")
    op.execute(
        f"""
        DO $auth$
        BEGIN
            IF (SELECT obj_description('auth'::regnamespace, 'pg_namespace'))
                    = '{LOCAL_AUTH_MARK}' THEN
                DROP SCHEMA auth CASCADE;
            END IF;
        END
        $auth$
        """
    )
    # Roles (anon, authenticated, service_role) are cluster-wide and stay, as in 5c6d7e8f9a0b.
