"""Recommendations on sorted point keys: the category (and static band) shift the point

Revision ID: a1c2e3f4a5b6
Revises: 9f0a1b2c3d4e
Create Date: 2024-01-05 10:00:00

`ix_place_category_band_location` (5a6b7c8d9e0f) keyed (category, band, point) with
btree_gist. On PostgreSQL 15 btree_gist has no sortsupport, so that GiST is built (and
grown) tuple by tuple, ordered by category, then band, then point: a scan of a common
band in a small box read 84 buffers to find nothing (465 µs on the 1M bench), and the
nearest-first scan of step 1 descended into every band's subtree (4.2 ms to its first
row at 10M). The point opclass alone has sortsupport (a sorted, Z-ordered build) and
splits by area, so both indexes here key one point that carries the category and band:

- `planwise_category_code(category)`: 16 bits of md5 (0..65535); IMMUTABLE, the same on
  every server. `planwise_category_point` shifts the longitude by 400° per code, and
  `planwise_category_band_point` the latitude by 200° per static band (-1..16) too:
  each (category, band) has a region of its own, 40° and 20° apart from the next.
- `ix_place_category_point`: GiST on `planwise_category_point(category, lng, lat)`,
  INCLUDE the score's columns and the category: step 1 (nearest first) and the whole
  circle when T is unknown. `ix_place_category_band_point`: the same with the band: step
  2, one scan per band from floor(S0 / 0.02) to 16, each within the distance it allows
  (a box cannot select several bands, so the merged upper range is gone; an empty band's
  scan costs ~15 µs). It replaces `ix_place_category_band_location`, whose comment (b8c9d0e1f2a3's
  btree_gist mark) moves to it.

Exactness: a query box is shifted by the same float additions as the keys, and rounding
is monotone, so a place inside a box has its key inside the shifted box (no margin is
needed; extra rows from rounding fail the exact distance test). Codes may collide, so the
category is compared again, `COLLATE "C"` (bytewise, as equality is under any
deterministic collation) so that the planner cannot make that recheck a search of
`idx_place_category`: with the LIMIT unknown at planning it chose a BitmapAnd of both
(38 ms instead of 3). The key rounds to 3.7e-9° (0.4 mm) at the largest shift, so step 1
is nearest first up to that; T stays a score that k real candidates reach, and a
category whose scan ends before 4k rows is still complete. Results, order and scores are
those of 9f0a1b2c3d4e (`tests/test_recommendations_topk.py`; README, Performance).

`planwise_recommend_for` gets `jit = off`: the estimated box selectivity is a fixed
0.001 of the table (contsel) without the category's 1/34 now, so the generic plan's cost
(22,500 at 1M) grows with the table past `jit_above_cost`, and compiling costs more than
a few-ms statement.

The downgrade restores 9f0a1b2c3d4e's function and index.
"""

from collections.abc import Sequence

from alembic import op

from planwise.db.migrations import revision_module

revision: str = "a1c2e3f4a5b6"
down_revision: str | None = "9f0a1b2c3d4e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STOP_EARLY = "20240101_5a6b7c8d9e0f_recommendations_stop_early.py"
GATED = "20240104_9f0a1b2c3d4e_recommendation_checks_gate_the_statement.py"
PREVIOUS_INDEX = "ix_place_category_band_location"
POINT_INDEX = "ix_place_category_point"
BAND_INDEX = "ix_place_category_band_point"
RECOMMEND_FOR = (
    "planwise_recommend_for(integer, uuid, text, double precision, double precision, "
    "double precision, integer, boolean, text, bigint, uuid)"
)
FUNCTIONS = (
    "planwise_category_band_point(text, integer, double precision, double precision)",
    "planwise_category_point(text, double precision, double precision)",
    "planwise_category_code(text)",
)

# Plain SQL functions: the planner inlines them, into the index expressions as into the
# queries, so both sides match. Qualified: pg_restore builds the indexes with an empty
# search_path.
KEY_FUNCTIONS = (
    """
    CREATE FUNCTION planwise_category_code(category text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT ('x' || left(md5(category), 4))::bit(16)::integer
    $$
    """,
    """
    CREATE FUNCTION planwise_category_point(
        category text, lng double precision, lat double precision
    ) RETURNS point
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT point(lng + 400 * public.planwise_category_code(category), lat)
    $$
    """,
    """
    CREATE FUNCTION planwise_category_band_point(
        category text, band integer, lng double precision, lat double precision
    ) RETURNS point
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT point(lng + 400 * public.planwise_category_code(category), lat + 200 * (band + 1))
    $$
    """,
)

INCLUDED = "INCLUDE (lat, lng, category, rating, user_ratings_total, id)"
CREATE_INDEXES = (
    f"""
    CREATE INDEX {POINT_INDEX} ON public.place
    USING gist (planwise_category_point(category, lng, lat)) {INCLUDED}
    """,
    f"""
    CREATE INDEX {BAND_INDEX} ON public.place
    USING gist (planwise_category_band_point(
        category, planwise_static_band(rating, user_ratings_total), lng, lat)) {INCLUDED}
    """,
)

NEW_STEPS = """\
    -- The candidates come from two point GiSTs whose keys shift each category (and band)
    -- to a region of its own (migration a1c2e3f4a5b6): a box shifted the same way finds
    -- them.
    WITH user_prefs AS MATERIALIZED (
        SELECT p.category, p.rating,
               400 * planwise_category_code(p.category) AS shift  -- the keys' lng shift
        FROM public.preference p
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
            WHERE planwise_category_point(pl.category, pl.lng, pl.lat)
                  <@ (b.box + point(up.shift, 0))
              AND pl.category = up.category COLLATE "C"  -- codes collide; "C": no btree search
              AND s.distance_m <= recommend_places.radius_km * 1000.0
              AND NOT (recommend_places.exclude_reviewed AND EXISTS (
                  SELECT 1 FROM public.review r
                  WHERE r.place_id = pl.id AND r.user_id = planwise_acting_user_id()
              ))
            ORDER BY planwise_category_point(pl.category, pl.lng, pl.lat)
                     <-> point(recommend_places.lng + up.shift, recommend_places.lat)
            LIMIT 4 * recommend_places.max_results
        ) c
        WHERE up.rating = (SELECT max(u.rating) FROM user_prefs u)
    ),
    complete AS MATERIALIZED (  -- categories whose nearest-first scan ran out: all found
        SELECT f.category FROM first f GROUP BY f.category
        HAVING count(*) < 4 * recommend_places.max_results
    ),
    floors AS MATERIALIZED (  -- S0: the static part a place needs at distance 0 to reach T
        SELECT up.category, up.rating AS preference, up.shift,
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
    bands AS MATERIALIZED (  -- step 2: disjoint (band, box) scans covering score ≥ T
        SELECT f.category, f.preference, g.band,
               sb.box + point(f.shift, coalesce(200 * (g.band + 1), 0)) AS box
        FROM floors f
        CROSS JOIN LATERAL (
            SELECT NULL::integer AS band, recommend_places.radius_km AS reach
            WHERE f.s0 IS NULL  -- fewer than k found, or no usable T: the whole circle
            UNION ALL  -- else each band that can reach T, within the distance it allows
            SELECT b.band,
                   CASE WHEN b.band = 16 THEN recommend_places.radius_km
                        ELSE least(recommend_places.radius_km,
                                   recommend_places.radius_km * 10
                                   * ((b.band + 1) * 0.02 - f.s0) + 1e-6)
                   END
            FROM generate_series(-1, 16) AS b(band)
            WHERE f.s0 IS NOT NULL AND b.band >= least(16, floor(f.s0 / 0.02))
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
            SELECT s.id, s.lat, s.lng, s.rating, s.user_ratings_total,
                   planwise_sphere_distance_m(
                       s.lat, s.lng, recommend_places.lat, recommend_places.lng
                   ) AS distance_m
            FROM (
                SELECT pl.id, pl.lat, pl.lng, pl.rating, pl.user_ratings_total
                FROM public.place pl
                WHERE b.band IS NOT NULL  -- one band of the category
                  AND planwise_category_band_point(pl.category,
                          planwise_static_band(pl.rating, pl.user_ratings_total), pl.lng, pl.lat)
                      <@ b.box
                  AND pl.category = b.category COLLATE "C"
                UNION ALL
                SELECT pl.id, pl.lat, pl.lng, pl.rating, pl.user_ratings_total
                FROM public.place pl
                WHERE b.band IS NULL  -- the whole category
                  AND planwise_category_point(pl.category, pl.lng, pl.lat) <@ b.box
                  AND pl.category = b.category COLLATE "C"
            ) s
            OFFSET 0  -- a subquery scan: the distance is computed once per row, not per use
        ) c
        WHERE c.distance_m <= recommend_places.radius_km * 1000.0
          AND NOT (recommend_places.exclude_reviewed AND EXISTS (
              SELECT 1 FROM public.review r
              WHERE r.place_id = c.id AND r.user_id = planwise_acting_user_id()
          ))
    ),
"""
"""From `WITH` up to `components`: the steps that read the new indexes. The signature,
the scoring and the final join are 9f0a1b2c3d4e's (`recommend_places_sql()`)."""
FIRST_STEP = "    WITH user_prefs AS MATERIALIZED ("
SCORING = "    components AS ("


def recommend_places_sql() -> str:
    """9f0a1b2c3d4e's `recommend_places()` with its steps up to the scoring replaced."""
    previous = revision_module(GATED).recommend_places_sql()
    assert previous.count(FIRST_STEP) == 1 and previous.count(SCORING) == 1, (
        "9f0a1b2c3d4e's steps are not where expected"
    )
    head, rest = previous.split(FIRST_STEP)
    return head + NEW_STEPS + SCORING + rest.split(SCORING)[1]


def upgrade() -> None:
    for statement in (*KEY_FUNCTIONS, *CREATE_INDEXES):
        op.execute(statement)
    revision_module(STOP_EARLY).move_comment(PREVIOUS_INDEX, BAND_INDEX)
    op.execute(recommend_places_sql())
    op.execute(f"ALTER FUNCTION {RECOMMEND_FOR} SET jit = off")
    op.execute(f"DROP INDEX public.{PREVIOUS_INDEX}")


def downgrade() -> None:
    stop_early = revision_module(STOP_EARLY)
    op.execute(str(stop_early.CREATE_INDEX))
    stop_early.move_comment(BAND_INDEX, PREVIOUS_INDEX)
    op.execute(revision_module(GATED).recommend_places_sql())
    op.execute(f"ALTER FUNCTION {RECOMMEND_FOR} RESET jit")
    op.execute(f"DROP INDEX public.{BAND_INDEX}")
    op.execute(f"DROP INDEX public.{POINT_INDEX}")
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION {function}")
