"""Recommendations refuse revoked tokens too: planwise_recommend_for resolves its token
through planwise_resolve_token

Revision ID: f3a4b5c6d7e8
Revises: b8c9d0e1f2a3
Create Date: 2023-12-28 10:00:00

`GET /api/v1/recommendations` resolves its token inside its one statement,
`planwise_recommend_for`, which checked only that the user exists and is active: a token
refused everywhere else after a password change or a logout (d0e1f2a3b4c5) still got
recommendations. The function now takes the token's `iat` and GoTrue `session_id` and
leaves the whole check to `planwise_resolve_token` (SQLSTATE PWU01 gone, PWU02
deactivated, PWU03 revoked, PWU04 no username left), so there is one resolution. The two
new parameters default to NULL, so a call without them (the bench's) is unchanged; the
plan stays generic (b8c9d0e1f2a3).
"""

from collections.abc import Sequence

from alembic import op

from planwise.db.migrations import revision_module

revision: str = "f3a4b5c6d7e8"
down_revision: str | None = "b8c9d0e1f2a3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_SIGNATURE = (
    "planwise_recommend_for(integer, uuid, text, double precision, double precision, "
    "double precision, integer, boolean, text)"
)
SIGNATURE = (
    "planwise_recommend_for(integer, uuid, text, double precision, double precision, "
    "double precision, integer, boolean, text, bigint, uuid)"
)

RECOMMEND_FOR = """
CREATE FUNCTION planwise_recommend_for(
    p_user_id integer, p_auth_user_id uuid, p_full_name text,
    lat double precision, lng double precision, radius_km double precision,
    max_results integer, exclude_reviewed boolean, only_category text,
    p_issued_at bigint DEFAULT NULL, p_session_id uuid DEFAULT NULL
) RETURNS SETOF recommend_places_row
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    -- Names the acting user for RLS, or raises PWU01..PWU04.
    PERFORM FROM planwise_resolve_token(
        p_user_id, p_auth_user_id, p_full_name, p_issued_at, p_session_id);
    RETURN QUERY SELECT * FROM recommend_places(
        lat, lng, radius_km, max_results, exclude_reviewed, only_category);
END
$$
"""


def _grant(signature: str) -> None:
    op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO app_service")


def upgrade() -> None:
    op.execute(f"DROP FUNCTION {OLD_SIGNATURE}")
    op.execute(RECOMMEND_FOR)
    _grant(SIGNATURE)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
    module = revision_module("20231223_a7b8c9d0e1f2_recommendations_in_one_statement.py")
    op.execute(module.RECOMMEND_FOR)
    op.execute(f"ALTER FUNCTION {OLD_SIGNATURE} SET plan_cache_mode = force_generic_plan")
    _grant(OLD_SIGNATURE)
