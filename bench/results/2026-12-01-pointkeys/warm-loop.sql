-- Issue 13: warm, in-server timing of recommend_places() over the bench's requests (generic plans),
-- as used for the 1M vs 10M comparison: psql -d <bench db> -f warm-loop.sql, then
-- SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM pg_temp.loop(300, 2);
\set QUIET on
SET plan_cache_mode = force_generic_plan;
CREATE OR REPLACE FUNCTION pg_temp.loop(lim int, rounds int) RETURNS TABLE(ms double precision) LANGUAGE plpgsql AS $f$
DECLARE q record; t0 timestamptz; r text;
BEGIN
  FOR i IN 1..rounds LOOP
  FOR q IN SELECT * FROM bench.request WHERE n <= lim ORDER BY n LOOP
    PERFORM set_config('app.user_id', q.user_id::text, false);
    t0 := clock_timestamp();
    SELECT string_agg(x.id, ',') INTO r FROM recommend_places(q.lat, q.lng) x;
    ms := extract(epoch from clock_timestamp() - t0) * 1000;
    RETURN NEXT;
  END LOOP;
  END LOOP;
END $f$;
