-- Issue 13, migration a1c2e3f4a5b6: one scan, repeated in a PL/pgSQL loop (generic plan),
-- on the btree_gist (category, band, point) GiST of 5a6b7c8d9e0f and on the shifted point
-- keys of a1c2e3f4a5b6, in planwise_bench (1M places) with both indexes present. The boxes
-- are those `recommend_places()` scanned for bench request 1 (user 25333 at 35.157486,
-- 136.913799: cafe bands 8 and 10, hiking band 16; art_gallery's 80 nearest).
SET plan_cache_mode = force_generic_plan;
CREATE FUNCTION pg_temp.band_scan(c text, lo int, hi int, bx box, n int)
RETURNS TABLE(us float8, rows bigint) LANGUAGE plpgsql AS $f$
DECLARE t0 timestamptz; k bigint;
BEGIN
  t0 := clock_timestamp();
  FOR i IN 1..n LOOP
    SELECT count(*) INTO k FROM place pl WHERE pl.category = c
      AND planwise_static_band(pl.rating, pl.user_ratings_total) BETWEEN lo AND hi
      AND point(pl.lng, pl.lat) <@ bx;
  END LOOP;
  us := extract(epoch from clock_timestamp() - t0) * 1e6 / n; rows := k; RETURN NEXT;
END $f$;
CREATE FUNCTION pg_temp.shifted_band_scan(c text, b int, bx box, n int)
RETURNS TABLE(us float8, rows bigint) LANGUAGE plpgsql AS $f$
DECLARE t0 timestamptz; k bigint;
  sb box := bx + point(400 * planwise_category_code(c), 200 * (b + 1));
BEGIN
  t0 := clock_timestamp();
  FOR i IN 1..n LOOP
    SELECT count(*) INTO k FROM place pl
    WHERE planwise_category_band_point(pl.category,
              planwise_static_band(pl.rating, pl.user_ratings_total), pl.lng, pl.lat) <@ sb
      AND pl.category = c COLLATE "C";
  END LOOP;
  us := extract(epoch from clock_timestamp() - t0) * 1e6 / n; rows := k; RETURN NEXT;
END $f$;
CREATE FUNCTION pg_temp.nearest(c text, bx box, o point, lim int, n int)
RETURNS TABLE(us float8, rows bigint) LANGUAGE plpgsql AS $f$
DECLARE t0 timestamptz; k bigint;
BEGIN
  t0 := clock_timestamp();
  FOR i IN 1..n LOOP
    SELECT count(*) INTO k FROM (SELECT pl.id FROM place pl
      WHERE pl.category = c AND point(pl.lng, pl.lat) <@ bx
      ORDER BY point(pl.lng, pl.lat) <-> o LIMIT lim) s;
  END LOOP;
  us := extract(epoch from clock_timestamp() - t0) * 1e6 / n; rows := k; RETURN NEXT;
END $f$;
CREATE FUNCTION pg_temp.shifted_nearest(c text, bx box, o point, lim int, n int)
RETURNS TABLE(us float8, rows bigint) LANGUAGE plpgsql AS $f$
DECLARE t0 timestamptz; k bigint; shift int := 400 * planwise_category_code(c);
BEGIN
  t0 := clock_timestamp();
  FOR i IN 1..n LOOP
    SELECT count(*) INTO k FROM (SELECT pl.id FROM place pl
      WHERE planwise_category_point(pl.category, pl.lng, pl.lat) <@ (bx + point(shift, 0))
        AND pl.category = c COLLATE "C"
      ORDER BY planwise_category_point(pl.category, pl.lng, pl.lat) <-> (o + point(shift, 0))
      LIMIT lim) s;
  END LOOP;
  us := extract(epoch from clock_timestamp() - t0) * 1e6 / n; rows := k; RETURN NEXT;
END $f$;
\set big '(136.9691752161067,35.20273486877828),(136.85842278389333,35.11223713122172)'
SELECT 'cafe band 8, 1.1 km box' scan, * FROM pg_temp.band_scan('cafe', 8, 8, '(136.92531398403986,35.16689924355287),(136.90228401596016,35.14807275644713)', 500)
UNION ALL SELECT '  shifted', * FROM pg_temp.shifted_band_scan('cafe', 8, '(136.92531398403986,35.16689924355287),(136.90228401596016,35.14807275644713)', 500)
UNION ALL SELECT 'cafe band 10, 3.1 km box', * FROM pg_temp.band_scan('cafe', 10, 10, '(136.94746219921086,35.18499879106418),(136.88013580078916,35.129973208935816)', 500)
UNION ALL SELECT '  shifted', * FROM pg_temp.shifted_band_scan('cafe', 10, '(136.94746219921086,35.18499879106418),(136.88013580078916,35.129973208935816)', 500)
UNION ALL SELECT 'hiking band 16, 5 km box', * FROM pg_temp.band_scan('hiking', 16, 16, :'big', 500)
UNION ALL SELECT '  shifted', * FROM pg_temp.shifted_band_scan('hiking', 16, :'big', 500)
UNION ALL SELECT 'art_gallery, 80 nearest', * FROM pg_temp.nearest('art_gallery', :'big', point(136.913799, 35.157486), 80, 500)
UNION ALL SELECT '  shifted', * FROM pg_temp.shifted_nearest('art_gallery', :'big', point(136.913799, 35.157486), 80, 500);
