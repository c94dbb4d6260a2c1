"""Recommendations stop early: an exact top-k whose cost follows k, not the places nearby

Revision ID: 5a6b7c8d9e0f
Revises: 8d9e0f1a2b3c
Create Date: 2023-12-30 10:00:00

Since b8c9d0e1f2a3 every preferred place within the circle was scored, so the cost grew
with the density of places (issue 13: dense data 3.8-6.2x the sparse p50). The score is

    preference * 0.6 + S + (1 - min(1, d/R)) * 0.1,   S = rating/5 * 0.2 + popularity * 0.1

(S is the "static" part of a place). A place can reach a score T only if
S ≥ S0 + 0.1 d/R with S0 = T - 0.6 * preference - 0.1: the better its static part, the
farther it may be. So, with places filed by static band (`planwise_static_band`:
floor(S / 0.02), -1 for S < 0, 16 for S ≥ 0.32 and for any value the score cannot order
normally), `recommend_places()` runs in two steps, both of fixed plan shape:

1. For the user's most preferred category (all of them, if tied): its 80 (4k) nearest
   places in the circle (a KNN scan of the new index). The k-th best of their scores is a
   score T that k real candidates reach, so the true k-th best is ≥ T. If the scan ran out
   before 80, it found every place of that category in the circle ("complete").
2. For every other category: only the bands that can reach T, each within the distance
   it allows: band b (S < (b + 1) * 0.02) within 10R((b + 1) * 0.02 - S0) of the user,
   five single bands from floor(S0 / 0.02) up, then all higher bands (and band 16, whose
   S is unbounded) within the full radius. Every place scoring ≥ T is in one of those
   disjoint scans; the final order and LIMIT are today's, on a superset of the true top k,
   so the result (order, ties by distance then id) is exactly the full scoring's.

Margins (1e-9 on S0, 1e-6 km on every reach) absorb float rounding; unusual stored data
(NULL, NaN, ±Infinity or huge ratings, review counts outside 0..2^31-2, for which the
score itself is NaN, infinite or an error) falls in band 16 and is always read, so no
bound depends on the data being within Google's 1-5 ratings (`place` has no CHECK).

- `ix_place_category_band_location`: GiST on (category, planwise_static_band(rating,
  user_ratings_total), point(lng, lat)) with btree_gist, INCLUDE the score's columns: it
  replaces `ix_place_category_location` (same columns plus the band; one GiST per row to
  maintain, as before). `idx_place_location` stays as the document names it.

The downgrade restores b8c9d0e1f2a3's function and index. cube and PostGIS's n-D GiST
(a 4-D key of the unit-sphere point and S, best-first) were tried first and were slower
than before on the same data (README, Performance).
"""

from collections.abc import Sequence

from alembic import op

from planwise.db.migrations import revision_module

revision: str = "5a6b7c8d9e0f"
down_revision: str | None = "8d9e0f1a2b3c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_place_category_band_location"
PREVIOUS_INDEX = "ix_place_category_location"
BAND_FUNCTION = "planwise_static_band(double precision, integer)"

# The static part exactly as the score computes it (rating_component * 0.2 + popularity
# * 0.1), in bands of 0.02; what the score cannot order normally goes to band 16.
STATIC_BAND = """
CREATE FUNCTION planwise_static_band(rating double precision, user_ratings_total integer)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN coalesce(user_ratings_total, 0) BETWEEN 0 AND 2147483646
             AND coalesce(rating, 0) BETWEEN -1e300 AND 1e300
        THEN greatest(-1, least(16, floor(
            (coalesce(rating, 0) / 5 * 0.2
             + least(1.0, log(coalesce(user_ratings_total, 0) + 1) / 10)::double precision * 0.1)
            / 0.02)))::integer
        ELSE 16
    END
$$
"""

CREATE_INDEX = f"""
CREATE INDEX {INDEX} ON public.place
USING gist (category, planwise_static_band(rating, user_ratings_total), point(lng, lat))
INCLUDE (lat, lng, rating, user_ratings_total, id)
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
    -- An exact top-k that stops early (migration 5a6b7c8d9e0f): the most preferred
    -- category's nearest places give a score T that k candidates reach; every other
    -- category is read only in the static bands, and within the distances, that can
    -- still reach T. Plain SQL so the planner inlines it; the plan's shape is fixed.
    WITH user_prefs AS MATERIALIZED (
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
    first AS MATERIALIZED (  -- step 1: the top category's 4k nearest places in the circle
        SELECT c.id, c.lat, c.lng, up.category, c.rating, c.user_ratings_total,
               up.rating AS preference, c.distance_m / 1000.0 AS distance_km
        FROM user_prefs up
        CROSS JOIN boxes b
        CROSS JOIN LATERAL (
            SELECT pl.id, pl.lat, pl.lng, pl.rating, pl.user_ratings_total, s.distance_m
            FROM public.place pl
            CROSS JOIN LATERAL (
                SELECT planwise_sphere_distance_m(
                    pl.lat, pl.lng, recommend_places.lat, recommend_places.lng) AS distance_m
            ) s
            WHERE pl.category = up.category AND point(pl.lng, pl.lat) <@ b.box
              AND s.distance_m <= recommend_places.radius_km * 1000.0
              AND NOT (recommend_places.exclude_reviewed AND EXISTS (
                  SELECT 1 FROM public.review r
                  WHERE r.place_id = pl.id AND r.user_id = planwise_acting_user_id()
              ))
            ORDER BY point(pl.lng, pl.lat) <-> point(recommend_places.lng, recommend_places.lat)
            LIMIT 4 * recommend_places.max_results
        ) c
        WHERE up.rating = (SELECT max(u.rating) FROM user_prefs u)
    ),
    complete AS MATERIALIZED (  -- categories whose nearest-first scan ran out: all found
        SELECT f.category FROM first f GROUP BY f.category
        HAVING count(*) < 4 * recommend_places.max_results
    ),
    floors AS MATERIALIZED (  -- S0: the static part a place needs at distance 0 to reach T
        SELECT up.category, up.rating AS preference,
               CASE WHEN t.score - up.rating * 0.6 BETWEEN -1e300 AND 1e300
                    THEN t.score - up.rating * 0.6 - 0.1 - 1e-9 END AS s0
        FROM user_prefs up
        LEFT JOIN LATERAL (
            SELECT f.preference * 0.6 + coalesce(f.rating, 0) / 5 * 0.2
                   + least(1.0, log(coalesce(f.user_ratings_total, 0) + 1) / 10)::double precision
                     * 0.1
                   + (1 - least(1.0, f.distance_km / recommend_places.radius_km))::double precision
                     * 0.1 AS score
            FROM first f
            ORDER BY 1 DESC
            OFFSET recommend_places.max_results - 1 LIMIT 1
        ) t ON true
        WHERE up.category NOT IN (SELECT c.category FROM complete c)
    ),
    bands AS MATERIALIZED (  -- step 2: disjoint (bands, box) scans covering score ≥ T
        SELECT f.category, f.preference, g.low, g.high, sb.box
        FROM floors f
        CROSS JOIN LATERAL (
            SELECT -1 AS low, 16 AS high, recommend_places.radius_km AS reach
            WHERE f.s0 IS NULL  -- fewer than k found, or no usable T: the whole circle
            UNION ALL
            SELECT band.low, CASE WHEN band.last THEN 16 ELSE band.low END,
                   CASE WHEN band.last THEN recommend_places.radius_km
                        ELSE least(recommend_places.radius_km,
                                   recommend_places.radius_km * 10
                                   * ((band.low + 1) * 0.02 - f.s0) + 1e-6)
                   END
            FROM generate_series(0, 5) j
            CROSS JOIN LATERAL (
                SELECT greatest(-1, least(16, floor(f.s0 / 0.02)))::integer + j AS low
            ) b0
            CROSS JOIN LATERAL (SELECT b0.low AS low, j = 5 OR b0.low = 16 AS last) band
            WHERE f.s0 IS NOT NULL AND band.low <= 16
        ) g
        CROSS JOIN LATERAL planwise_search_boxes(
            recommend_places.lat, recommend_places.lng, g.reach) AS sb(box)
    ),
    candidates AS (
        SELECT f.* FROM first f WHERE f.category IN (SELECT c.category FROM complete c)
        UNION ALL
        SELECT c.id, c.lat, c.lng, b.category, c.rating, c.user_ratings_total,
               b.preference, c.distance_m / 1000.0 AS distance_km
        FROM bands b
        CROSS JOIN LATERAL (
            SELECT pl.id, pl.lat, pl.lng, pl.rating, pl.user_ratings_total,
                   planwise_sphere_distance_m(
                       pl.lat, pl.lng, recommend_places.lat, recommend_places.lng
                   ) AS distance_m
            FROM public.place pl
            WHERE pl.category = b.category
              AND planwise_static_band(pl.rating, pl.user_ratings_total) BETWEEN b.low AND b.high
              AND point(pl.lng, pl.lat) <@ b.box
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


def move_comment(source: str, target: str) -> None:
    """b8c9d0e1f2a3 records in its index's comment whether it created btree_gist (its
    downgrade drops the extension only then): the mark moves with the index it replaces."""
    op.execute(
        f"""
        DO $comment$
        BEGIN
            EXECUTE format('COMMENT ON INDEX public.{target} IS %L',
                           obj_description('public.{source}'::regclass, 'pg_class'));
        END
        $comment$
        """
    )


def upgrade() -> None:
    op.execute(STATIC_BAND)
    op.execute(CREATE_INDEX)
    move_comment(PREVIOUS_INDEX, INDEX)
    op.execute(RECOMMEND_PLACES)
    op.execute(f"DROP INDEX public.{PREVIOUS_INDEX}")


def downgrade() -> None:
    previous = revision_module("20231227_b8c9d0e1f2a3_candidates_by_category_and_location.py")
    op.execute(str(previous.CREATE_INDEX))
    move_comment(INDEX, PREVIOUS_INDEX)
    op.execute(str(previous.RECOMMEND_PLACES))
    op.execute(f"DROP INDEX public.{INDEX}")
    op.execute(f"DROP FUNCTION {BAND_FUNCTION}")
