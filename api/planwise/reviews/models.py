from datetime import datetime

from sqlalchemy import Double, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Column, Field, SQLModel

from planwise.db.base import timestamp_column


class Review(SQLModel, table=True):
    __tablename__ = "review"
    __table_args__ = (
        UniqueConstraint("user_id", "place_id"),
        Index("idx_review_user_id", "user_id"),
        Index("idx_review_place_id", "place_id"),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=False)
    )
    place_id: str = Field(
        sa_column=Column(String(100), ForeignKey("place.id", ondelete="CASCADE"), nullable=False)
    )
    rating: float = Field(sa_column=Column(Double, nullable=False))
    comment: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime | None = Field(default=None, sa_column=timestamp_column())
