"""Shared SQLModel metadata with a constraint naming convention.

Named constraints let every later migration refer to them by a predictable name
(`uq_user_username`, `fk_review_user_id_user`, ...) instead of server-chosen ones.
"""

from sqlalchemy import DateTime, func
from sqlmodel import Column, SQLModel

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata = SQLModel.metadata


def timestamp_column() -> Column:  # type: ignore[type-arg]
    """`TIMESTAMP WITH TIME ZONE DEFAULT NOW()`, nullable as in the design document."""
    return Column(DateTime(timezone=True), server_default=func.now(), nullable=True)
