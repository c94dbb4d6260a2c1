from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Identity, Index, String, func
from sqlmodel import Column, Field, SQLModel


class DbSizeSample(SQLModel, table=True):
    """One relation's size at one moment (the whole database is relation `database`)."""

    __tablename__ = "db_size_sample"
    __table_args__ = (Index("ix_db_size_sample_relation_sampled_at", "relation", "sampled_at"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    sampled_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), server_default=func.now(), nullable=False),
    )
    relation: str = Field(sa_column=Column(String(200), nullable=False))
    bytes: int = Field(sa_column=Column(BigInteger, nullable=False))
    rows: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
