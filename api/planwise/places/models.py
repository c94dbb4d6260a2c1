from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Double, Index, Integer, String, Text, text
from sqlmodel import Column, Field, SQLModel

from planwise.db.base import timestamp_column

PLACE_POINT_SQL = "ST_SetSRID(ST_MakePoint(lng, lat), 4326)"
"""The expression `idx_place_location` indexes; spatial queries must use it verbatim."""


class Place(SQLModel, table=True):
    __tablename__ = "place"
    __table_args__ = (
        Index("idx_place_location", text(PLACE_POINT_SQL), postgresql_using="gist"),
        Index("idx_place_category", "category"),
        # Recommendation candidates by category, static band and location, index-only
        # (migrations b8c9d0e1f2a3 and 5a6b7c8d9e0f, btree_gist).
        Index(
            "ix_place_category_band_location",
            "category",
            text("planwise_static_band(rating, user_ratings_total)"),
            text("point(lng, lat)"),
            postgresql_using="gist",
            postgresql_include=["lat", "lng", "rating", "user_ratings_total", "id"],
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
