"""Merge the two heads of issue 12: /auth/v1 (d4e5f6a7b8c9) and /rest/v1 (e5f6a7b8c9d0)

Revision ID: f0e1d2c3b4a5
Revises: d4e5f6a7b8c9, e5f6a7b8c9d0
Create Date: 2023-12-22 10:00:00

Both revisions follow b2c3d4e5f6a7 and touch different objects; this only joins them, so
`alembic upgrade head` has one head to reach.
"""

from collections.abc import Sequence

revision: str = "f0e1d2c3b4a5"
down_revision: str | Sequence[str] | None = ("d4e5f6a7b8c9", "e5f6a7b8c9d0")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
