"""Recommendation arguments checked whatever the plan: the check gates the whole statement

Revision ID: 9f0a1b2c3d4e
Revises: 7c8d9e0f1a2b
Create Date: 2024-01-04 10:00:00

`recommend_places()` checked its arguments (`planwise_check_recommendation_request`) in
the WHERE of its `user_prefs` and `boxes` steps only. With `place` analysed as small or
empty the planner may hash the final join and probe it from `place`; finding that empty,
the executor never runs the other side, so out-of-range arguments (lng 180.5, NaN, a
radius over 50 km, a limit over 100) returned no rows instead of an error, through the
API and Supabase's RPC alike (seen in a full test run, where earlier tests had analysed
the shared database). The same check in the final SELECT's WHERE references no row, so
PostgreSQL evaluates it in a gating Result above the whole join, before any scan.

The function is 5a6b7c8d9e0f's with that one clause added (taken from its text, which
migrations never change); the downgrade restores it.
"""

from collections.abc import Sequence

from alembic import op

from planwise.db.migrations import revision_module

revision: str = "9f0a1b2c3d4e"
down_revision: str | None = "7c8d9e0f1a2b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREVIOUS = "20240101_5a6b7c8d9e0f_recommendations_stop_early.py"
FINAL_JOIN = """    FROM top t
    JOIN public.place pl ON pl.id = t.id
"""
GATE = """    WHERE planwise_check_recommendation_request(  -- first, whatever the join's plan
        recommend_places.lat, recommend_places.lng, recommend_places.radius_km,
        recommend_places.max_results)
"""


def _previous_function() -> str:
    return str(revision_module(PREVIOUS).RECOMMEND_PLACES)


def recommend_places_sql() -> str:
    """This revision's `recommend_places()` (a later revision's downgrade restores it)."""
    previous = _previous_function()
    assert previous.count(FINAL_JOIN) == 1, "5a6b7c8d9e0f's final join is not where expected"
    return previous.replace(FINAL_JOIN, FINAL_JOIN + GATE)


def upgrade() -> None:
    op.execute(recommend_places_sql())


def downgrade() -> None:
    op.execute(_previous_function())
