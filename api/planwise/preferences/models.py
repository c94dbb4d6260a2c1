from datetime import datetime

from sqlalchemy import Double, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlmodel import Column, Field, SQLModel

from planwise.db.base import timestamp_column


class Preference(SQLModel, table=True):
    __tablename__ = "preference"
    __table_args__ = (
        UniqueConstraint("user_id", "category"),
        Index("idx_preference_user_id", "user_id"),
        Index("idx_preference_category", "category"),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=False)
    )
    category: str = Field(sa_column=Column(String(100), nullable=False))
    rating: float = Field(sa_column=Column(Double, nullable=False))
    created_at: datetime | None = Field(default=None, sa_column=timestamp_column())
    updated_at: datetime | None = Field(default=None, sa_column=timestamp_column())
