"""Database size history for growth reports (`planwise monitor sample`)

Revision ID: c3d4e5f6a7b8
Revises: 9b0c1d2e3f4a
Create Date: 2023-11-15 10:00:00

The design document monitors "database and table growth"; statistics views only know
sizes now, so a sampler records them and the monitor reports growth per day.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c3d4e5f6a7b8"
down_revision: str | None = "9b0c1d2e3f4a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "db_size_sample",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column(
            "sampled_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("relation", sa.String(200), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_db_size_sample"),
    )
    op.create_index(
        "ix_db_size_sample_relation_sampled_at", "db_size_sample", ["relation", "sampled_at"]
    )
    op.execute("GRANT SELECT ON db_size_sample TO app_service, app_read")
    op.execute("GRANT ALL ON db_size_sample TO supabase_admin")


def downgrade() -> None:
    op.drop_table("db_size_sample")
