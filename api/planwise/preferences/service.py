"""Preferences: one rating per (user, category). Services never commit."""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import Session, col, select

from planwise.preferences.models import Preference

UPSERT = text(
    """
    INSERT INTO preference (user_id, category, rating) VALUES (:user_id, :category, :rating)
    ON CONFLICT (user_id, category) DO UPDATE SET rating = EXCLUDED.rating
    RETURNING id, (xmax = 0) AS inserted
    """
)


def list_mine(session: Session, user_id: int) -> list[Preference]:
    query = select(Preference).where(Preference.user_id == user_id)
    return list(session.exec(query.order_by(col(Preference.category))))


def upsert(session: Session, user_id: int, category: str, rating: float) -> tuple[Preference, bool]:
    """Set the rating; True when the preference is new. One statement, no race."""
    preference_id, inserted = session.execute(
        UPSERT, {"user_id": user_id, "category": category, "rating": rating}
    ).one()
    preference = session.get(Preference, preference_id, populate_existing=True)
    assert preference is not None
    return preference, bool(inserted)


def delete(session: Session, user_id: int, category: str) -> bool:
    preference = session.exec(
        select(Preference).where(Preference.user_id == user_id, Preference.category == category)
    ).first()
    if preference is None:
        return False
    session.delete(preference)
    session.flush()
    return True
