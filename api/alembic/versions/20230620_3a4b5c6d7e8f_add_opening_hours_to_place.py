"""Add opening_hours to place table (the design document's migration example)

Revision ID: 3a4b5c6d7e8f
Revises: 1a2b3c4d5e6f
Create Date: 2023-06-20 14:30:45.123456

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3a4b5c6d7e8f"
down_revision: str | None = "1a2b3c4d5e6f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("place", sa.Column("opening_hours", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("place", "opening_hours")
