from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Double, Index, Integer, String, Text, text
from sqlmodel import Column, Field, SQLModel

from planwise.db.base import timestamp_column

PLACE_POINT_SQL = "ST_SetSRID(ST_MakePoint(lng, lat), 4326)"
"""The expression `idx_place_location` indexes; spatial queries must use it verbatim."""
CANDIDATE_COLUMNS = ["lat", "lng", "category", "rating", "user_ratings_total", "id"]
"""What a recommendation reads of a candidate, in its indexes (the heap only for the k)."""


class Place(SQLModel, table=True):
    __tablename__ = "place"
    __table_args__ = (
        Index("idx_place_location", text(PLACE_POINT_SQL), postgresql_using="gist"),
        Index("idx_place_category", "category"),
        # Recommendation candidates, index-only: a point GiST whose key shifts each
        # category (and static band) to a region of its own (migration a1c2e3f4a5b6).
        Index(
            "ix_place_category_point",
            text("planwise_category_point(category, lng, lat)"),
            postgresql_using="gist",
            postgresql_include=CANDIDATE_COLUMNS,
        ),
        Index(
            "ix_place_category_band_point",
            text(
                "planwise_category_band_point(category, "
                "planwise_static_band(rating, user_ratings_total), lng, lat)"
            ),
            postgresql_using="gist",
            postgresql_include=CANDIDATE_COLUMNS,
        ),
    )

    id: str = Field(sa_column=Column(String(100), primary_key=True))  # Google Place ID
    name: str = Field(sa_column=Column(String(200), nullable=False))
    lat: float = Field(sa_column=Column(Double, nullable=False))
    lng: float = Field(sa_column=Column(Double, nullable=False))
    types: str | None = Field(default=None, sa_column=Column(String(500)))
    category: str | None = Field(default=None, sa_column=Column(String(100)))
    rating: float | None = Field(default=None, sa_column=Column(Double))
    user_ratings_total: int | None = Field(default=None, sa_column=Column(Integer))
    description: str | None = Field(default=None, sa_column=Column(Text))
    opening_hours: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    created_at: datetime | None = Field(default=None, sa_column=timestamp_column())
    updated_at: datetime | None = Field(default=None, sa_column=timestamp_column())
