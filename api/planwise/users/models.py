import uuid
from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, Uuid, text
from sqlmodel import Column, Field, SQLModel

from planwise.db.base import timestamp_column


class User(SQLModel, table=True):
    __tablename__ = "user"
    __table_args__ = (Index("idx_user_username", "username"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    username: str = Field(sa_column=Column(String(50), unique=True, nullable=False))
    hashed_password: str = Field(sa_column=Column(String(100), nullable=False))
    full_name: str = Field(sa_column=Column(String(100), nullable=False))
    role: str = Field(sa_column=Column(String(20), nullable=False))
    is_active: bool = Field(
        default=True,
        sa_column=Column(Boolean, nullable=False, server_default=text("true")),
    )
    created_at: datetime | None = Field(default=None, sa_column=timestamp_column())
    # The Supabase Auth user (JWT `sub`) this account belongs to, if any.
    auth_user_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, unique=True, nullable=True)
    )
