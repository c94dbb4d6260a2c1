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
