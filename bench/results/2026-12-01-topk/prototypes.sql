CREATE EXTENSION IF NOT EXISTS cube;
CREATE OR REPLACE FUNCTION planwise_sphere_xyz_km(lat double precision, lng double precision)
RETURNS double precision[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN lat BETWEEN -90 AND 90 AND lng BETWEEN -180 AND 180 THEN ARRAY[
        6371.008771415059 * cos(pi() * lat / 180) * cos(pi() * lng / 180),
        6371.008771415059 * cos(pi() * lat / 180) * sin(pi() * lng / 180),
        6371.008771415059 * sin(pi() * lat / 180)]
    ELSE ARRAY[1e300, 1e300, 1e300]::double precision[] END
$$;
CREATE OR REPLACE FUNCTION planwise_place_key(
    lat double precision, lng double precision, rating double precision, user_ratings_total integer
) RETURNS cube LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT cube(planwise_sphere_xyz_km(lat, lng) || CASE
        WHEN coalesce(user_ratings_total, 0) BETWEEN 0 AND 2147483646
             AND coalesce(rating, 0) BETWEEN -1e300 AND 1e300
        THEN 50 * (coalesce(rating, 0) / 5 * 0.2
                   + least(1.0, log(coalesce(user_ratings_total, 0) + 1) / 10)::double precision * 0.1)
        ELSE 5e301 END)
$$;
CREATE OR REPLACE FUNCTION planwise_place_key5(
    category text, lat double precision, lng double precision, rating double precision, user_ratings_total integer
) RETURNS cube LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT cube(ARRAY[hashtext(category)::double precision] || planwise_sphere_xyz_km(lat, lng) || CASE
        WHEN coalesce(user_ratings_total, 0) BETWEEN 0 AND 2147483646
             AND coalesce(rating, 0) BETWEEN -1e300 AND 1e300
        THEN 50 * (coalesce(rating, 0) / 5 * 0.2
                   + least(1.0, log(coalesce(user_ratings_total, 0) + 1) / 10)::double precision * 0.1)
        ELSE 5e301 END)
$$;
CREATE OR REPLACE FUNCTION planwise_place_nd(
    lat double precision, lng double precision, rating double precision, user_ratings_total integer
) RETURNS geometry LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ST_MakePoint(xyz[1], xyz[2], xyz[3], CASE
        WHEN coalesce(user_ratings_total, 0) BETWEEN 0 AND 2147483646
             AND coalesce(rating, 0) BETWEEN -1e300 AND 1e300
        THEN 50 * (coalesce(rating, 0) / 5 * 0.2
                   + least(1.0, log(coalesce(user_ratings_total, 0) + 1) / 10)::double precision * 0.1)
        ELSE 5e301 END)
    FROM (SELECT planwise_sphere_xyz_km(lat, lng) AS xyz) s
$$;
CREATE OR REPLACE FUNCTION planwise_static_bucket(rating double precision, user_ratings_total integer)
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN coalesce(user_ratings_total, 0) BETWEEN 0 AND 2147483646
             AND coalesce(rating, 0) BETWEEN -1e300 AND 1e300
        THEN greatest(-1, least(16, floor((coalesce(rating, 0) / 5 * 0.2
                   + least(1.0, log(coalesce(user_ratings_total, 0) + 1) / 10)::double precision * 0.1) / 0.02)))::integer
        ELSE 16 END
$$;
CREATE OR REPLACE FUNCTION bench.recommend_places_topk1(
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
    WITH user_prefs AS MATERIALIZED (
        SELECT p.category, p.rating FROM public.preference p
        WHERE p.user_id = planwise_acting_user_id()
          AND planwise_check_recommendation_request(
              recommend_places_topk1.lat, recommend_places_topk1.lng, recommend_places_topk1.radius_km,
              recommend_places_topk1.max_results)
          AND (recommend_places_topk1.only_category IS NULL
               OR p.category = recommend_places_topk1.only_category)
    ),
    origin AS MATERIALIZED (
        SELECT planwise_sphere_xyz_km(recommend_places_topk1.lat, recommend_places_topk1.lng) AS xyz,
               recommend_places_topk1.radius_km + 1e-6 AS reach
    ),
    first AS (
        SELECT up.rating * 0.6
               + coalesce(c.rating, 0) / 5 * 0.2
               + least(1.0, log(coalesce(c.user_ratings_total, 0) + 1) / 10)::double precision * 0.1
               + (1 - least(1.0, c.distance_m / 1000.0 / recommend_places_topk1.radius_km))::double precision * 0.1
               AS score
        FROM (SELECT * FROM user_prefs ORDER BY rating DESC, category) up CROSS JOIN origin o
        CROSS JOIN LATERAL (
            SELECT pl.id, pl.rating, pl.user_ratings_total, s.distance_m
            FROM public.place pl
            CROSS JOIN LATERAL (SELECT planwise_sphere_distance_m(
                pl.lat, pl.lng, recommend_places_topk1.lat, recommend_places_topk1.lng) AS distance_m) s
            WHERE pl.category = up.category
              AND planwise_place_key(pl.lat, pl.lng, pl.rating, pl.user_ratings_total)
                  <@ cube(array[o.xyz[1] - o.reach, o.xyz[2] - o.reach, o.xyz[3] - o.reach, -1e308],
                          array[o.xyz[1] + o.reach, o.xyz[2] + o.reach, o.xyz[3] + o.reach, 1e308])
              AND s.distance_m <= recommend_places_topk1.radius_km * 1000.0
              AND NOT (recommend_places_topk1.exclude_reviewed AND EXISTS (
                  SELECT 1 FROM public.review r
                  WHERE r.place_id = pl.id AND r.user_id = planwise_acting_user_id()))
            ORDER BY planwise_place_key(pl.lat, pl.lng, pl.rating, pl.user_ratings_total)
                     <#> cube(o.xyz || 15.0::double precision)
            LIMIT recommend_places_topk1.max_results
        ) c
        LIMIT recommend_places_topk1.max_results
    ),
    threshold AS MATERIALIZED (
        SELECT coalesce((SELECT f.score FROM first f ORDER BY f.score DESC
                         OFFSET recommend_places_topk1.max_results - 1 LIMIT 1), '-Infinity') AS t
    ),
    bands AS MATERIALIZED (
        SELECT up.category, up.rating AS preference, j,
               CASE WHEN th.t BETWEEN -1e300 AND 1e300
                    THEN 50 * (th.t - up.rating * 0.6 - 0.1 + 0.1 * j / 1 - 1e-9) ELSE -1e308 END AS s_low,
               CASE WHEN j < 1 AND th.t BETWEEN -1e300 AND 1e300
                    THEN 50 * (th.t - up.rating * 0.6 - 0.1 + 0.1 * (j + 1) / 1 + 1e-9) ELSE 1e308 END AS s_high,
               CASE WHEN j < 1 AND th.t BETWEEN -1e300 AND 1e300
                    THEN recommend_places_topk1.radius_km * (j + 1) / 1 ELSE recommend_places_topk1.radius_km END
                    + 1e-6 AS reach
        FROM user_prefs up CROSS JOIN threshold th CROSS JOIN generate_series(0, 1) j
    ),
    candidates AS (
        SELECT DISTINCT c.id, c.lat, c.lng, b.category, c.rating, c.user_ratings_total,
               b.preference, c.distance_m / 1000.0 AS distance_km
        FROM bands b CROSS JOIN origin o
        CROSS JOIN LATERAL (
            SELECT pl.id, pl.lat, pl.lng, pl.rating, pl.user_ratings_total,
                   planwise_sphere_distance_m(
                       pl.lat, pl.lng, recommend_places_topk1.lat, recommend_places_topk1.lng
                   ) AS distance_m
            FROM public.place pl
            WHERE pl.category = b.category
              AND planwise_place_key(pl.lat, pl.lng, pl.rating, pl.user_ratings_total)
                  <@ cube(array[o.xyz[1] - b.reach, o.xyz[2] - b.reach, o.xyz[3] - b.reach, b.s_low],
                          array[o.xyz[1] + b.reach, o.xyz[2] + b.reach, o.xyz[3] + b.reach, b.s_high])
            OFFSET 0
        ) c
        WHERE c.distance_m <= recommend_places_topk1.radius_km * 1000.0
          AND NOT (recommend_places_topk1.exclude_reviewed AND EXISTS (
              SELECT 1 FROM public.review r
              WHERE r.place_id = c.id AND r.user_id = planwise_acting_user_id()
          ))
    ),
    components AS (
        SELECT c.*,
               coalesce(c.rating, 0) / 5 AS rating_component,
               least(1.0, log(coalesce(c.user_ratings_total, 0) + 1) / 10)::double precision
                   AS popularity,
               (1 - least(1.0, c.distance_km / recommend_places_topk1.radius_km))::double precision
                   AS proximity
        FROM candidates c
    ),
    top AS (
        SELECT k.*,
               k.preference * 0.6 + k.rating_component * 0.2 + k.popularity * 0.1
                   + k.proximity * 0.1 AS score
        FROM components k
        ORDER BY score DESC, k.distance_km, k.id
        LIMIT recommend_places_topk1.max_results
    )
    SELECT t.id, pl.name, t.lat, t.lng, t.category, t.rating, t.user_ratings_total, pl.types,
           pl.description, t.distance_km, t.preference, t.rating_component, t.popularity,
           t.proximity, t.score
    FROM top t
    JOIN public.place pl ON pl.id = t.id
    ORDER BY t.score DESC, t.distance_km, t.id
$$;
CREATE OR REPLACE FUNCTION bench.recommend_places_topk8(
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
    WITH user_prefs AS MATERIALIZED (
        SELECT p.category, p.rating FROM public.preference p
        WHERE p.user_id = planwise_acting_user_id()
          AND planwise_check_recommendation_request(
              recommend_places_topk8.lat, recommend_places_topk8.lng, recommend_places_topk8.radius_km,
              recommend_places_topk8.max_results)
          AND (recommend_places_topk8.only_category IS NULL
               OR p.category = recommend_places_topk8.only_category)
    ),
    boxes AS MATERIALIZED (
        SELECT b.box FROM planwise_search_boxes(
            recommend_places_topk8.lat, recommend_places_topk8.lng, recommend_places_topk8.radius_km) AS b(box)
    ),
    first AS (
        SELECT up.rating * 0.6
               + coalesce(c.rating, 0) / 5 * 0.2
               + least(1.0, log(coalesce(c.user_ratings_total, 0) + 1) / 10)::double precision * 0.1
               + (1 - least(1.0, c.distance_m / 1000.0 / recommend_places_topk8.radius_km))::double precision * 0.1
               AS score
        FROM (SELECT * FROM user_prefs ORDER BY rating DESC, category) up CROSS JOIN boxes b
        CROSS JOIN LATERAL (
            SELECT pl.id, pl.rating, pl.user_ratings_total, s.distance_m
            FROM public.place pl
            CROSS JOIN LATERAL (SELECT planwise_sphere_distance_m(
                pl.lat, pl.lng, recommend_places_topk8.lat, recommend_places_topk8.lng) AS distance_m) s
            WHERE pl.category = up.category AND point(pl.lng, pl.lat) <@ b.box
              AND s.distance_m <= recommend_places_topk8.radius_km * 1000.0
              AND NOT (recommend_places_topk8.exclude_reviewed AND EXISTS (
                  SELECT 1 FROM public.review r
                  WHERE r.place_id = pl.id AND r.user_id = planwise_acting_user_id()))
            ORDER BY point(pl.lng, pl.lat) <-> point(recommend_places_topk8.lng, recommend_places_topk8.lat)
            LIMIT 4 * recommend_places_topk8.max_results
        ) c
        LIMIT 4 * recommend_places_topk8.max_results
    ),
    threshold AS MATERIALIZED (
        SELECT coalesce((SELECT f.score FROM first f ORDER BY f.score DESC
                         OFFSET recommend_places_topk8.max_results - 1 LIMIT 1), '-Infinity') AS t
    ),
    floors AS MATERIALIZED (
        SELECT up.category, up.rating AS preference,
               CASE WHEN th.t BETWEEN -1e300 AND 1e300
                    THEN th.t - up.rating * 0.6 - 0.1 - 1e-9 END AS s0
        FROM user_prefs up CROSS JOIN threshold th
    ),
    bands AS MATERIALIZED (
        SELECT f.category, f.preference, g.low, g.high, sb.box
        FROM floors f
        CROSS JOIN LATERAL (
            SELECT -1 AS low, 16 AS high, recommend_places_topk8.radius_km AS reach
            WHERE f.s0 IS NULL
            UNION ALL
            SELECT lo.b + j, CASE WHEN j < 5 THEN lo.b + j ELSE 16 END,
                   CASE WHEN j < 5 THEN least(recommend_places_topk8.radius_km,
                            recommend_places_topk8.radius_km * 10 * ((lo.b + j + 1) * 0.02 - f.s0) + 1e-6)
                        ELSE recommend_places_topk8.radius_km END
            FROM (SELECT greatest(-1, least(17, floor(f.s0 / 0.02)))::integer AS b) lo
            CROSS JOIN generate_series(0, 5) j
            WHERE f.s0 IS NOT NULL AND lo.b + j <= 16
        ) g
        CROSS JOIN LATERAL planwise_search_boxes(
            recommend_places_topk8.lat, recommend_places_topk8.lng, g.reach) AS sb(box)
    ),
    candidates AS (
        SELECT c.id, c.lat, c.lng, b.category, c.rating, c.user_ratings_total,
               b.preference, c.distance_m / 1000.0 AS distance_km
        FROM bands b
        CROSS JOIN LATERAL (
            SELECT pl.id, pl.lat, pl.lng, pl.rating, pl.user_ratings_total,
                   planwise_sphere_distance_m(
                       pl.lat, pl.lng, recommend_places_topk8.lat, recommend_places_topk8.lng
                   ) AS distance_m
            FROM public.place pl
            WHERE pl.category = b.category
              AND planwise_static_bucket(pl.rating, pl.user_ratings_total) BETWEEN b.low AND b.high
              AND point(pl.lng, pl.lat) <@ b.box
            OFFSET 0
        ) c
        WHERE c.distance_m <= recommend_places_topk8.radius_km * 1000.0
          AND NOT (recommend_places_topk8.exclude_reviewed AND EXISTS (
              SELECT 1 FROM public.review r
              WHERE r.place_id = c.id AND r.user_id = planwise_acting_user_id()
          ))
    ),
    components AS (
        SELECT c.*,
               coalesce(c.rating, 0) / 5 AS rating_component,
               least(1.0, log(coalesce(c.user_ratings_total, 0) + 1) / 10)::double precision
                   AS popularity,
               (1 - least(1.0, c.distance_km / recommend_places_topk8.radius_km))::double precision
                   AS proximity
        FROM candidates c
    ),
    top AS (
        SELECT k.*,
               k.preference * 0.6 + k.rating_component * 0.2 + k.popularity * 0.1
                   + k.proximity * 0.1 AS score
        FROM components k
        ORDER BY score DESC, k.distance_km, k.id
        LIMIT recommend_places_topk8.max_results
    )
    SELECT t.id, pl.name, t.lat, t.lng, t.category, t.rating, t.user_ratings_total, pl.types,
           pl.description, t.distance_km, t.preference, t.rating_component, t.popularity,
           t.proximity, t.score
    FROM top t
    JOIN public.place pl ON pl.id = t.id
    ORDER BY t.score DESC, t.distance_km, t.id
$$;
\set QUIET on
SET plan_cache_mode = force_generic_plan;
CREATE OR REPLACE FUNCTION pg_temp.dist() RETURNS TABLE(n int, ms_old float8, ms_v1 float8, ms_v2 float8) LANGUAGE plpgsql AS $f$
DECLARE q record; t0 timestamptz; t1 timestamptz; t2 timestamptz; t3 timestamptz; r text;
BEGIN
  FOR q IN SELECT * FROM bench.request WHERE bench.request.n <= 200 ORDER BY 1 LOOP
    PERFORM set_config('app.user_id', q.user_id::text, false);
    t0 := clock_timestamp();
    SELECT string_agg(x.id, ',') INTO r FROM recommend_places(q.lat, q.lng) x;
    t1 := clock_timestamp();
    SELECT string_agg(x.id, ',') INTO r FROM bench.recommend_places_topk1(q.lat, q.lng) x;
    t2 := clock_timestamp();
    SELECT string_agg(x.id, ',') INTO r FROM bench.recommend_places_topk2(q.lat, q.lng) x;
    t3 := clock_timestamp();
    n := q.n; ms_old := extract(epoch from t1 - t0) * 1000; ms_v1 := extract(epoch from t2 - t1) * 1000; ms_v2 := extract(epoch from t3 - t2) * 1000;
    RETURN NEXT;
  END LOOP;
END $f$;
CREATE TEMP TABLE d AS SELECT * FROM pg_temp.dist();
DROP TABLE d; CREATE TEMP TABLE d AS SELECT * FROM pg_temp.dist();
SELECT percentile_cont(array[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY ms_old) old, percentile_cont(array[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY ms_v1) v1, percentile_cont(array[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY ms_v2) v2 FROM d;
SELECT * FROM d ORDER BY ms_v1 DESC LIMIT 5;
\set QUIET on
SET plan_cache_mode = force_generic_plan;
CREATE OR REPLACE FUNCTION pg_temp.run_old(lim int, radius float8, k int, excl bool) RETURNS TABLE(ms double precision, digest text, rows bigint) LANGUAGE plpgsql AS $f$
DECLARE q record; t0 timestamptz; acc text := ''; r text; cnt bigint := 0;
BEGIN
  t0 := clock_timestamp();
  FOR q IN SELECT * FROM bench.request WHERE n <= lim ORDER BY n LOOP
    PERFORM set_config('app.user_id', q.user_id::text, false);
    SELECT string_agg(row(x.id, x.score, x.distance_km, x.category)::text, ','), count(*) INTO r FROM recommend_places(q.lat, q.lng, radius, k, excl) x;
    acc := acc || coalesce(r, '-') || ';';
    cnt := cnt + (SELECT count(*) FROM regexp_split_to_table(coalesce(r, ''), '\),\('));
  END LOOP;
  RETURN QUERY SELECT (extract(epoch from clock_timestamp() - t0) * 1000 / lim)::float8, md5(acc), cnt;
END $f$;
CREATE OR REPLACE FUNCTION pg_temp.run_v9(lim int, radius float8, k int, excl bool) RETURNS TABLE(ms double precision, digest text, rows bigint) LANGUAGE plpgsql AS $f$
DECLARE q record; t0 timestamptz; acc text := ''; r text; cnt bigint := 0;
BEGIN
  t0 := clock_timestamp();
  FOR q IN SELECT * FROM bench.request WHERE n <= lim ORDER BY n LOOP
    PERFORM set_config('app.user_id', q.user_id::text, false);
    SELECT string_agg(row(x.id, x.score, x.distance_km, x.category)::text, ','), count(*) INTO r FROM bench.recommend_places_topk9(q.lat, q.lng, radius, k, excl) x;
    acc := acc || coalesce(r, '-') || ';';
    cnt := cnt + (SELECT count(*) FROM regexp_split_to_table(coalesce(r, ''), '\),\('));
  END LOOP;
  RETURN QUERY SELECT (extract(epoch from clock_timestamp() - t0) * 1000 / lim)::float8, md5(acc), cnt;
END $f$;
SELECT 1000 lim, 5 radius, 20 k, 'old' v, * FROM pg_temp.run_old(1000, 5, 20, false) UNION ALL SELECT 1000, 5, 20, 'v9', * FROM pg_temp.run_v9(1000, 5, 20, false);
SELECT 200 lim, 1 radius, 20 k, 'old' v, * FROM pg_temp.run_old(200, 1, 20, false) UNION ALL SELECT 200, 1, 20, 'v9', * FROM pg_temp.run_v9(200, 1, 20, false);
SELECT 200 lim, 20 radius, 100 k, 'old' v, * FROM pg_temp.run_old(200, 20, 100, false) UNION ALL SELECT 200, 20, 100, 'v9', * FROM pg_temp.run_v9(200, 20, 100, false);
SELECT 200 lim, 5 radius, 1 k, 'old' v, * FROM pg_temp.run_old(200, 5, 1, false) UNION ALL SELECT 200, 5, 1, 'v9', * FROM pg_temp.run_v9(200, 5, 1, false);
SELECT 200 lim, 50 radius, 20 k, 'old' v, * FROM pg_temp.run_old(200, 50, 20, false) UNION ALL SELECT 200, 50, 20, 'v9', * FROM pg_temp.run_v9(200, 50, 20, false);