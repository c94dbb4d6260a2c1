"""Cheaper per-request SQL: the search box in PL/pgSQL, acting user and user row in one call

Revision ID: b2c3d4e5f6a7
Revises: a1b2c3d4e5f6
Create Date: 2023-12-10 10:00:00

Found by `planwise bench` at a million places (README, Performance):
- `planwise_search_box` was a SQL function with a FROM clause, which PostgreSQL cannot
  inline: every call parsed and planned its body again, twice per recommendation while the
  planner folded it into a constant (0.4 of the 0.9 ms planning). PL/pgSQL caches its
  compiled body per session; the result is the same box.
- `planwise_begin_request(user_id)` sets `app.user_id` for the transaction and returns the
  user's row as RLS lets that user see it: one round trip per request instead of two. It
  runs with the caller's rights, so it shows nothing RLS would hide.
"""

from collections.abc import Sequence

from alembic import op

from planwise.db.migrations import revision_module

revision: str = "b2c3d4e5f6a7"
down_revision: str | None = "a1b2c3d4e5f6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEARCH_BOX = """
CREATE OR REPLACE FUNCTION planwise_search_box(
    p_lat double precision, p_lng double precision, p_radius_km double precision, p_part integer
) RETURNS geometry
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
-- Part 1 or 2 of a lng/lat box pair whose union holds every point within p_radius_km
-- of (p_lat, p_lng). 110.5 km is less than any degree of latitude (sphere or
-- spheroid), so degrees are only ever overestimated; longitude degrees shrink with
-- the cosine of the highest latitude the circle reaches; a circle reaching a pole
-- spans all longitudes; one crossing ±180° is split in two. Both parts are equal
-- when there is no split.
DECLARE
    dlat constant double precision := p_radius_km / 110.5;
    south constant double precision := greatest(-90, p_lat - dlat);
    north constant double precision := least(90, p_lat + dlat);
    dlng double precision := 360;
BEGIN
    IF abs(p_lat) + dlat < 90 THEN
        dlng := p_radius_km / (110.5 * cos(radians(abs(p_lat) + dlat)));
    END IF;
    RETURN CASE
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
    END;
END
$$
"""

BEGIN_REQUEST = """
CREATE FUNCTION planwise_begin_request(p_user_id integer) RETURNS SETOF public."user"
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- Transaction-local, as set_acting_user() does: gone at COMMIT or ROLLBACK.
    PERFORM set_config('app.user_id', p_user_id::text, true);
    RETURN QUERY SELECT * FROM public."user" u WHERE u.id = p_user_id;
END
$$
"""


def _earlier_search_box() -> str:
    """The SQL-language definition of revision 9b0c1d2e3f4a, for the downgrade."""
    module = revision_module("20231101_9b0c1d2e3f4a_supabase_compatibility.py")
    return str(module.SEARCH_BOX).replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def upgrade() -> None:
    op.execute(SEARCH_BOX)
    op.execute(BEGIN_REQUEST)
    op.execute("REVOKE ALL ON FUNCTION planwise_begin_request(integer) FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION planwise_begin_request(integer) TO app_service")


def downgrade() -> None:
    op.execute("DROP FUNCTION planwise_begin_request(integer)")
    op.execute(_earlier_search_box())
