CREATE SCHEMA IF NOT EXISTS proto;
CREATE OR REPLACE FUNCTION proto.distance_m(lat1 double precision, lng1 double precision, lat2 double precision, lng2 double precision)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 6371008.771415059 * atan2(
        sqrt((cos(pi() * lat2 / 180) * sin(pi() * lng2 / 180 - pi() * lng1 / 180))
             * (cos(pi() * lat2 / 180) * sin(pi() * lng2 / 180 - pi() * lng1 / 180))
             + (cos(pi() * lat1 / 180) * sin(pi() * lat2 / 180)
                - sin(pi() * lat1 / 180) * cos(pi() * lat2 / 180) * cos(pi() * lng2 / 180 - pi() * lng1 / 180))
             * (cos(pi() * lat1 / 180) * sin(pi() * lat2 / 180)
                - sin(pi() * lat1 / 180) * cos(pi() * lat2 / 180) * cos(pi() * lng2 / 180 - pi() * lng1 / 180))),
        sin(pi() * lat1 / 180) * sin(pi() * lat2 / 180)
        + cos(pi() * lat1 / 180) * cos(pi() * lat2 / 180) * cos(pi() * lng2 / 180 - pi() * lng1 / 180))
$$;
CREATE OR REPLACE FUNCTION proto.search_boxes(p_lat double precision, p_lng double precision, p_radius_km double precision)
RETURNS SETOF box LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT box(planwise_search_box(p_lat, p_lng, p_radius_km, 1))
    UNION
    SELECT box(planwise_search_box(p_lat, p_lng, p_radius_km, 2))
$$;
CREATE OR REPLACE FUNCTION proto.search_boxes(p_lat double precision, p_lng double precision, p_radius_km double precision)
RETURNS SETOF box LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE ROWS 2 AS $$
DECLARE
    west constant box := box(planwise_search_box(p_lat, p_lng, p_radius_km, 1));
    east constant box := box(planwise_search_box(p_lat, p_lng, p_radius_km, 2));
BEGIN
    RETURN NEXT west;
    IF NOT east ~= west THEN
        RETURN NEXT east;
    END IF;
END
$$;
CREATE OR REPLACE FUNCTION proto.recommend_places(
    lat double precision, lng double precision, radius_km double precision DEFAULT 5,
    max_results integer DEFAULT 20, exclude_reviewed boolean DEFAULT false, only_category text DEFAULT NULL
) RETURNS SETOF recommend_places_row LANGUAGE sql STABLE AS $$
    WITH user_prefs AS (
        SELECT p.category, p.rating FROM public.preference p
        WHERE p.user_id = planwise_acting_user_id()
          AND planwise_check_recommendation_request(
              recommend_places.lat, recommend_places.lng, recommend_places.radius_km,
              recommend_places.max_results)
          AND (recommend_places.only_category IS NULL OR p.category = recommend_places.only_category)
    ),
    boxes AS MATERIALIZED (
        SELECT b.box FROM proto.search_boxes(
            recommend_places.lat, recommend_places.lng, recommend_places.radius_km) b(box)
    ),
    candidates AS (
        SELECT c.id, c.lat, c.lng, up.category, c.rating, c.user_ratings_total,
               up.rating AS preference, c.distance_m / 1000.0 AS distance_km
        FROM user_prefs up
        CROSS JOIN boxes b
        CROSS JOIN LATERAL (
            SELECT pl.id, pl.lat, pl.lng, pl.rating, pl.user_ratings_total,
                   proto.distance_m(pl.lat, pl.lng, recommend_places.lat, recommend_places.lng) AS distance_m
            FROM public.place pl
            WHERE pl.category = up.category AND point(pl.lng, pl.lat) <@ b.box
        ) c
        WHERE c.distance_m <= recommend_places.radius_km * 1000.0
          AND NOT (recommend_places.exclude_reviewed AND EXISTS (
              SELECT 1 FROM public.review r
              WHERE r.place_id = c.id AND r.user_id = planwise_acting_user_id()))
    ),
    ranked AS (
        SELECT c.*,
               coalesce(c.rating, 0) / 5 AS rating_component,
               least(1.0, log(coalesce(c.user_ratings_total, 0) + 1) / 10)::double precision AS popularity,
               (1 - least(1.0, c.distance_km / recommend_places.radius_km))::double precision AS proximity
        FROM candidates c
    ),
    top AS (
        SELECT k.*, k.preference * 0.6 + k.rating_component * 0.2 + k.popularity * 0.1 + k.proximity * 0.1 AS score
        FROM ranked k
        ORDER BY score DESC, k.distance_km, k.id
        LIMIT recommend_places.max_results
    )
    SELECT t.id, pl.name, t.lat, t.lng, t.category, t.rating, t.user_ratings_total, pl.types,
           pl.description, t.distance_km, t.preference, t.rating_component, t.popularity,
           t.proximity, t.score
    FROM top t JOIN public.place pl ON pl.id = t.id
    ORDER BY t.score DESC, t.distance_km, t.id
$$;
GRANT USAGE ON SCHEMA proto TO app_service;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA proto TO app_service;
CREATE OR REPLACE FUNCTION proto.recommend_places_geo(
    lat double precision, lng double precision, radius_km double precision DEFAULT 5,
    max_results integer DEFAULT 20, exclude_reviewed boolean DEFAULT false, only_category text DEFAULT NULL
) RETURNS SETOF recommend_places_row LANGUAGE sql STABLE AS $$
    WITH user_prefs AS (
        SELECT p.category, p.rating FROM public.preference p
        WHERE p.user_id = planwise_acting_user_id()
          AND planwise_check_recommendation_request(
              recommend_places_geo.lat, recommend_places_geo.lng, recommend_places_geo.radius_km,
              recommend_places_geo.max_results)
          AND (recommend_places_geo.only_category IS NULL OR p.category = recommend_places_geo.only_category)
    ),
    boxes AS MATERIALIZED (
        SELECT b.box FROM proto.search_boxes(
            recommend_places_geo.lat, recommend_places_geo.lng, recommend_places_geo.radius_km) b(box)
    ),
    candidates AS (
        SELECT c.id, c.lat, c.lng, up.category, c.rating, c.user_ratings_total,
               up.rating AS preference, c.distance_m / 1000.0 AS distance_km
        FROM user_prefs up
        CROSS JOIN boxes b
        CROSS JOIN LATERAL (
            SELECT pl.id, pl.lat, pl.lng, pl.rating, pl.user_ratings_total,
                   ST_DistanceSphere(ST_SetSRID(ST_MakePoint(pl.lng, pl.lat), 4326), ST_SetSRID(ST_MakePoint(recommend_places_geo.lng, recommend_places_geo.lat), 4326)) AS distance_m
            FROM public.place pl
            WHERE pl.category = up.category AND point(pl.lng, pl.lat) <@ b.box
        ) c
        WHERE c.distance_m <= recommend_places_geo.radius_km * 1000.0
          AND NOT (recommend_places_geo.exclude_reviewed AND EXISTS (
              SELECT 1 FROM public.review r
              WHERE r.place_id = c.id AND r.user_id = planwise_acting_user_id()))
    ),
    ranked AS (
        SELECT c.*,
               coalesce(c.rating, 0) / 5 AS rating_component,
               least(1.0, log(coalesce(c.user_ratings_total, 0) + 1) / 10)::double precision AS popularity,
               (1 - least(1.0, c.distance_km / recommend_places_geo.radius_km))::double precision AS proximity
        FROM candidates c
    ),
    top AS (
        SELECT k.*, k.preference * 0.6 + k.rating_component * 0.2 + k.popularity * 0.1 + k.proximity * 0.1 AS score
        FROM ranked k
        ORDER BY score DESC, k.distance_km, k.id
        LIMIT recommend_places_geo.max_results
    )
    SELECT t.id, pl.name, t.lat, t.lng, t.category, t.rating, t.user_ratings_total, pl.types,
           pl.description, t.distance_km, t.preference, t.rating_component, t.popularity,
           t.proximity, t.score
    FROM top t JOIN public.place pl ON pl.id = t.id
    ORDER BY t.score DESC, t.distance_km, t.id
$$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA proto TO app_service;

CREATE OR REPLACE FUNCTION proto.recommend_for_custom(
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
    RETURN QUERY SELECT * FROM proto.recommend_places(
        lat, lng, radius_km, max_results, exclude_reviewed, only_category);
END
$$
;

CREATE OR REPLACE FUNCTION proto.recommend_for_generic(
    p_user_id integer, p_auth_user_id uuid, p_full_name text,
    lat double precision, lng double precision, radius_km double precision,
    max_results integer, exclude_reviewed boolean, only_category text
) RETURNS SETOF recommend_places_row
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
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
    RETURN QUERY SELECT * FROM proto.recommend_places(
        lat, lng, radius_km, max_results, exclude_reviewed, only_category);
END
$$
;

CREATE OR REPLACE FUNCTION proto.recommend_for_auto(
    p_user_id integer, p_auth_user_id uuid, p_full_name text,
    lat double precision, lng double precision, radius_km double precision,
    max_results integer, exclude_reviewed boolean, only_category text
) RETURNS SETOF recommend_places_row
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = auto AS $$
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
    RETURN QUERY SELECT * FROM proto.recommend_places(
        lat, lng, radius_km, max_results, exclude_reviewed, only_category);
END
$$
;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA proto TO app_service;CREATE OR REPLACE FUNCTION proto.recommend_for_geo(
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
    RETURN QUERY SELECT * FROM proto.recommend_places_geo(
        lat, lng, radius_km, max_results, exclude_reviewed, only_category);
END
$$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA proto TO app_service;
