import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Uuid,
    func,
    text,
)
from sqlmodel import Column, Field, SQLModel

from planwise.db.base import timestamp_column

INTERNAL_USERNAME_PATTERN = "^sb_[0-9a-f]{32}$"
"""`sb_` and a uuid's 32 hex digits: the username a Supabase user's row gets on first sight."""


class User(SQLModel, table=True):
    __tablename__ = "user"
    __table_args__ = (
        Index("idx_user_username", "username"),
        # Names shaped like those first sight gives Supabase users are theirs alone
        # (migration d0e1f2a3b4c5).
        CheckConstraint(
            f"username !~ '{INTERNAL_USERNAME_PATTERN}' "
            "OR username = 'sb_' || replace(auth_user_id::text, '-', '')",
            name="internal_username",
        ),
    )

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
    # Set by a trigger when `hashed_password` changes: tokens issued before are refused.
    password_changed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class LoginThrottle(SQLModel, table=True):
    """One login-throttling counter (migration c9d0e1f2a3b4; users/throttle.py). Only the
    SECURITY DEFINER functions of that migration read or write it; the API cannot."""

    __tablename__ = "login_throttle"
    __table_args__ = (Index("ix_login_throttle_expires_at", "expires_at"),)

    scope: str = Field(sa_column=Column(String(10), primary_key=True))
    key: bytes = Field(sa_column=Column(LargeBinary, primary_key=True))
    failures: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default=text("0"))
    )
    last_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
