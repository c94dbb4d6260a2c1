"""A recommendation request in one statement: planwise_recommend_for()

Revision ID: a7b8c9d0e1f2
Revises: f6a7b8c9d0e1
Create Date: 2023-12-23 10:00:00

The API's recommendation request used four round trips (BEGIN, `planwise_begin_request`,
the query, COMMIT). `planwise_recommend_for` does all of it in one statement, sent in
autocommit so the statement is its own transaction: it names the acting user for RLS
(`app.user_id`, transaction-local as everywhere, so it ends with the statement), checks
that the user exists and is active (SQLSTATE PWU01 / PWU02, which the API answers 401 /
403), finds the Planwise user of a Supabase Auth token on first sight
(`planwise_user_for_auth_id`), and returns `recommend_places()`, which stays the one
implementation. PL/pgSQL, with the caller's rights; `plan_cache_mode =
force_custom_plan` because a generic plan cannot know the search box and picks a bitmap
plan 15 times slower (measured in b2c3d4e5f6a7's session).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "a7b8c9d0e1f2"
down_revision: str | None = "f6a7b8c9d0e1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = (
    "planwise_recommend_for(integer, uuid, text, double precision, double precision, "
    "double precision, integer, boolean, text)"
)
COUNTS_SIGNATURE = "planwise_preference_counts_for(integer, uuid, text)"

PREFERENCE_COUNTS_FOR = """
CREATE FUNCTION planwise_preference_counts_for(
    p_user_id integer, p_auth_user_id uuid, only_category text
) RETURNS TABLE (preference_count bigint, category_preferred bigint)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- Why a recommendation came back empty: asked only then, in a statement of its own.
    PERFORM set_config('app.user_id', coalesce(
        p_user_id, planwise_user_for_auth_id(p_auth_user_id, NULL))::text, true);
    RETURN QUERY
        SELECT count(*), count(*) FILTER (WHERE p.category = only_category)
        FROM public.preference p WHERE p.user_id = planwise_acting_user_id();
END
$$
"""

RECOMMEND_FOR = """
CREATE FUNCTION planwise_recommend_for(
    p_user_id integer, p_auth_user_id uuid, p_full_name text,
    lat double precision, lng double precision, radius_km double precision,
    max_results integer, exclude_reviewed boolean, only_category text
) RETURNS SETOF recommend_places_row
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    acting integer := p_user_id;
    active boolean;
BEGIN
    IF acting IS NULL THEN
        acting := planwise_user_for_auth_id(p_auth_user_id, p_full_name);
    END IF;
    PERFORM set_config('app.user_id', acting::text, true);
    SELECT u.is_active INTO active FROM public."user" u WHERE u.id = acting;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the token''s user no longer exists' USING ERRCODE = 'PWU01';
    END IF;
    IF NOT active THEN
        RAISE EXCEPTION 'account is deactivated' USING ERRCODE = 'PWU02';
    END IF;
    RETURN QUERY SELECT * FROM recommend_places(
        lat, lng, radius_km, max_results, exclude_reviewed, only_category);
END
$$
"""

ROW_TYPE = """
CREATE TYPE recommend_places_row AS (
    id varchar, name varchar, place_lat double precision, place_lng double precision,
    category varchar, rating double precision, user_ratings_total integer, types varchar,
    description text, distance_km double precision, preference double precision,
    rating_component double precision, popularity double precision,
    proximity double precision, score double precision
)
"""


def upgrade() -> None:
    op.execute(ROW_TYPE)
    op.execute(RECOMMEND_FOR)
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO app_service")
    op.execute(PREFERENCE_COUNTS_FOR)
    op.execute(f"REVOKE ALL ON FUNCTION {COUNTS_SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {COUNTS_SIGNATURE} TO app_service")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {COUNTS_SIGNATURE}")
    op.execute(f"DROP FUNCTION {SIGNATURE}")
    op.execute("DROP TYPE recommend_places_row")
