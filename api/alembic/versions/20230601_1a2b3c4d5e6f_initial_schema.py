"""Initial schema: the design document's four tables, seven indexes and updated_at triggers

Revision ID: 1a2b3c4d5e6f
Revises:
Create Date: 2023-06-01 09:00:00

Constraint names follow planwise.db.base.NAMING_CONVENTION; index names are the
document's. `updated_at` is kept by a trigger so no code path can forget it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1a2b3c4d5e6f"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES_WITH_UPDATED_AT = ("place", "preference")


def timestamps(*names: str) -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column(name, sa.DateTime(timezone=True), server_default=sa.text("now()"))
        for name in names
    ]


def upgrade() -> None:
    # Supabase keeps extensions in the `extensions` schema; elsewhere the default applies.
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT FROM pg_namespace WHERE nspname = 'extensions') THEN
                CREATE EXTENSION IF NOT EXISTS postgis SCHEMA extensions;
            ELSE
                CREATE EXTENSION IF NOT EXISTS postgis;
            END IF;
        END
        $$
        """
    )

    op.create_table(
        "user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(50), nullable=False),
        sa.Column("hashed_password", sa.String(100), nullable=False),
        sa.Column("full_name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        *timestamps("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_user"),
        sa.UniqueConstraint("username", name="uq_user_username"),
    )
    op.create_table(
        "place",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("lng", sa.Double(), nullable=False),
        sa.Column("types", sa.String(500)),
        sa.Column("category", sa.String(100)),
        sa.Column("rating", sa.Double()),
        sa.Column("user_ratings_total", sa.Integer()),
        sa.Column("description", sa.Text()),
        *timestamps("created_at", "updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_place"),
    )
    op.create_table(
        "review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("place_id", sa.String(100), nullable=False),
        sa.Column("rating", sa.Double(), nullable=False),
        sa.Column("comment", sa.Text()),
        *timestamps("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_review"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name="fk_review_user_id_user", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["place_id"], ["place.id"], name="fk_review_place_id_place", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("user_id", "place_id", name="uq_review_user_id_place_id"),
    )
    op.create_table(
        "preference",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("rating", sa.Double(), nullable=False),
        *timestamps("created_at", "updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_preference"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name="fk_preference_user_id_user", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("user_id", "category", name="uq_preference_user_id_category"),
    )

    op.create_index("idx_user_username", "user", ["username"])
    op.execute(
        'CREATE INDEX idx_place_location ON "place" USING gist '
        "(ST_SetSRID(ST_MakePoint(lng, lat), 4326))"
    )
    op.create_index("idx_place_category", "place", ["category"])
    op.create_index("idx_review_user_id", "review", ["user_id"])
    op.create_index("idx_review_place_id", "review", ["place_id"])
    op.create_index("idx_preference_user_id", "preference", ["user_id"])
    op.create_index("idx_preference_category", "preference", ["category"])

    # Only a real change bumps updated_at: an idempotent re-import leaves it alone.
    # Rows are compared as text because json (place.opening_hours) has no "=" operator.
    op.execute(
        """
        CREATE FUNCTION planwise_set_updated_at() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            NEW.updated_at := now();
            RETURN NEW;
        END
        $$
        """
    )
    for table in TABLES_WITH_UPDATED_AT:
        op.execute(
            f'CREATE TRIGGER trg_{table}_updated_at BEFORE UPDATE ON "{table}" '
            "FOR EACH ROW WHEN (OLD::text IS DISTINCT FROM NEW::text) "
            "EXECUTE FUNCTION planwise_set_updated_at()"
        )


def downgrade() -> None:
    for table in ("preference", "review", "place", "user"):
        op.drop_table(table)  # indexes, constraints and triggers go with their table
    op.execute("DROP FUNCTION planwise_set_updated_at()")
    # The postgis extension stays: other databases objects may use it, and
    # `CREATE EXTENSION IF NOT EXISTS` above makes re-upgrading safe.
