"""Recommendation candidates by category and location together, index-only

Revision ID: b8c9d0e1f2a3
Revises: e1f2a3b4c5d6
Create Date: 2023-12-24 10:00:00

Before, `recommend_places()` read every place of every category in the search box
through `idx_place_location`, fetched each from the heap and measured it as a geography,
and only then joined the user's categories, which threw most of them away (issue 13).

- `ix_place_category_location`: GiST on (category, point(lng, lat)) with btree_gist for
  the category, INCLUDE (lat, lng, rating, user_ratings_total, id): for each preferred
  category and each search box one index scan reads only that category's places in the
  box, index-only (the columns the score needs are in the index; the point expression is
  the key, lat/lng the returned copies). `idx_place_location` stays as the document names
  it (places near, the document's own query).
- `planwise_sphere_distance_m`: the great-circle distance on the same sphere and by the
  same formula as `ST_DistanceSphere` (PostGIS's sphere_distance, R = (2a + b) / 3 of
  WGS84), in plain float arithmetic on the returned columns; it agrees with
  `ST_DistanceSphere` to within 1e-8 m (rounding of the last bits, tested).
- `planwise_search_boxes`: the one or two boxes of `planwise_search_box` as `box` values
  (the point opclass's type), one row when there is no split at ±180°.
- The heap is read only for the rows returned (name, types, description by primary key).
- The plan has one shape whatever the box holds (a nested loop of preferences by boxes
  over the index), so `planwise_recommend_for` no longer forces a custom plan: PL/pgSQL
  keeps its plan for the session (`plan_cache_mode = force_generic_plan`), which saves
  planning the statement on every request.

The downgrade restores the previous definitions and drops btree_gist only if this
revision created it (recorded in the index's comment).
"""

from collections.abc import Sequence

from alembic import op

from planwise.db.migrations import revision_module

revision: str = "b8c9d0e1f2a3"
down_revision: str | None = "e1f2a3b4c5d6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_place_category_location"
CREATED_EXTENSION_MARK = "planwise: btree_gist created by b8c9d0e1f2a3"
RECOMMEND_FOR = (
    "planwise_recommend_for(integer, uuid, text, double precision, double precision, "
    "double precision, integer, boolean, text)"
)
HELPERS = (
    "planwise_sphere_distance_m(double precision, double precision, double precision, "
    "double precision)",
    "planwise_search_boxes(double precision, double precision, double precision)",
)

CREATE_INDEX = f"""
CREATE INDEX {INDEX} ON public.place USING gist (category, point(lng, lat))
INCLUDE (lat, lng, rating, user_ratings_total, id)
"""

# PostGIS's sphere_distance (lwgeodetic.c) with s = the place, e = the origin: atan2 of
# the chord's cross and dot parts, times the WGS84 mean radius (2a + b) / 3. Written out
# in one expression so the planner inlines it; degrees to radians as PostGIS does.
SPHERE_DISTANCE = """
CREATE FUNCTION planwise_sphere_distance_m(
    lat1 double precision, lng1 double precision, lat2 double precision, lng2 double precision
) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT 6371008.771415059 * atan2(
        sqrt((cos(pi() * lat2 / 180) * sin(pi() * lng2 / 180 - pi() * lng1 / 180))
             * (cos(pi() * lat2 / 180) * sin(pi() * lng2 / 180 - pi() * lng1 / 180))
             + (cos(pi() * lat1 / 180) * sin(pi() * lat2 / 180)
                - sin(pi() * lat1 / 180) * cos(pi() * lat2 / 180)
                  * cos(pi() * lng2 / 180 - pi() * lng1 / 180))
             * (cos(pi() * lat1 / 180) * sin(pi() * lat2 / 180)
                - sin(pi() * lat1 / 180) * cos(pi() * lat2 / 180)
                  * cos(pi() * lng2 / 180 - pi() * lng1 / 180))),
        sin(pi() * lat1 / 180) * sin(pi() * lat2 / 180)
        + cos(pi() * lat1 / 180) * cos(pi() * lat2 / 180)
          * cos(pi() * lng2 / 180 - pi() * lng1 / 180))
$$
"""

SEARCH_BOXES = """
CREATE FUNCTION planwise_search_boxes(
    p_lat double precision, p_lng double precision, p_radius_km double precision
) RETURNS SETOF box
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE ROWS 2 AS $$
-- planwise_search_box's parts as boxes (lng, lat): the second only when it differs, so a
-- point is never found twice (the two parts of a split are disjoint).
DECLARE
    west constant box := box(planwise_search_box(p_lat, p_lng, p_radius_km, 1));
    east constant box := box(planwise_search_box(p_lat, p_lng, p_radius_km, 2));
BEGIN
    RETURN NEXT west;
    IF NOT east ~= west THEN
        RETURN NEXT east;
    END IF;
END
$$
"""

RECOMMEND_PLACES = """
CREATE OR REPLACE FUNCTION recommend_places(
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
    -- Plain SQL so the planner inlines it. For each preferred category and each search
    -- box, ix_place_category_location yields that category's places in the box, index-only;
    -- the exact distance keeps those within the circle; the heap is read for the top rows.
    WITH user_prefs AS (
        SELECT p.category, p.rating FROM public.preference p
        WHERE p.user_id = planwise_acting_user_id()
          AND planwise_check_recommendation_request(
              recommend_places.lat, recommend_places.lng, recommend_places.radius_km,
              recommend_places.max_results)
          AND (recommend_places.only_category IS NULL
               OR p.category = recommend_places.only_category)
    ),
    boxes AS MATERIALIZED (
        SELECT b.box FROM planwise_search_boxes(
            recommend_places.lat, recommend_places.lng, recommend_places.radius_km) AS b(box)
        WHERE planwise_check_recommendation_request(
              recommend_places.lat, recommend_places.lng, recommend_places.radius_km,
              recommend_places.max_results)
    ),
    candidates AS (
        SELECT c.id, c.lat, c.lng, up.category, c.rating, c.user_ratings_total,
               up.rating AS preference, c.distance_m / 1000.0 AS distance_km
        FROM user_prefs up
        CROSS JOIN boxes b
        CROSS JOIN LATERAL (
            SELECT pl.id, pl.lat, pl.lng, pl.rating, pl.user_ratings_total,
                   planwise_sphere_distance_m(
                       pl.lat, pl.lng, recommend_places.lat, recommend_places.lng
                   ) AS distance_m
            FROM public.place pl
            WHERE pl.category = up.category AND point(pl.lng, pl.lat) <@ b.box
            OFFSET 0  -- a subquery scan: the distance is computed once per row, not per use
        ) c
        WHERE c.distance_m <= recommend_places.radius_km * 1000.0
          AND NOT (recommend_places.exclude_reviewed AND EXISTS (
              SELECT 1 FROM public.review r
              WHERE r.place_id = c.id AND r.user_id = planwise_acting_user_id()
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
    ),
    top AS (
        SELECT k.*,
               k.preference * 0.6 + k.rating_component * 0.2 + k.popularity * 0.1
                   + k.proximity * 0.1 AS score
        FROM components k
        ORDER BY score DESC, k.distance_km, k.id
        LIMIT recommend_places.max_results
    )
    SELECT t.id, pl.name, t.lat, t.lng, t.category, t.rating, t.user_ratings_total, pl.types,
           pl.description, t.distance_km, t.preference, t.rating_component, t.popularity,
           t.proximity, t.score
    FROM top t
    JOIN public.place pl ON pl.id = t.id
    ORDER BY t.score DESC, t.distance_km, t.id
$$
"""


def previous_recommend_places() -> str:
    """`recommend_places` as revision 9b0c1d2e3f4a wrote it, as CREATE OR REPLACE."""
    module = revision_module("20231101_9b0c1d2e3f4a_supabase_compatibility.py")
    return str(module.RECOMMEND_PLACES).replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def upgrade() -> None:
    op.execute(
        """
        DO $ext$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'btree_gist') THEN
                CREATE EXTENSION btree_gist;
                PERFORM set_config('planwise.created_btree_gist', 'yes', true);
            END IF;
        END
        $ext$
        """
    )
    op.execute(CREATE_INDEX)
    op.execute(
        f"""
        DO $mark$
        BEGIN
            IF current_setting('planwise.created_btree_gist', true) = 'yes' THEN
                COMMENT ON INDEX public.{INDEX} IS '{CREATED_EXTENSION_MARK}';
            END IF;
        END
        $mark$
        """
    )
    op.execute(SPHERE_DISTANCE)
    op.execute(SEARCH_BOXES)
    op.execute(RECOMMEND_PLACES)
    op.execute(f"ALTER FUNCTION {RECOMMEND_FOR} SET plan_cache_mode = force_generic_plan")


def downgrade() -> None:
    op.execute(f"ALTER FUNCTION {RECOMMEND_FOR} SET plan_cache_mode = force_custom_plan")
    op.execute(previous_recommend_places())
    for helper in reversed(HELPERS):
        op.execute(f"DROP FUNCTION {helper}")
    op.execute(
        f"""
        DO $drop$
        BEGIN
            IF obj_description('public.{INDEX}'::regclass, 'pg_class')
                    = '{CREATED_EXTENSION_MARK}' THEN
                DROP INDEX public.{INDEX};
                DROP EXTENSION btree_gist;
            ELSE
                DROP INDEX public.{INDEX};
            END IF;
        END
        $drop$
        """
    )
