"""Reviews. Row-level security limits every statement to the acting user's rows; the
explicit `user_id` filters below only help the planner use `idx_review_user_id`."""

from __future__ import annotations

from psycopg import errors as pg_errors
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from planwise.reviews.models import Review
from planwise.reviews.schemas import ReviewCreate, ReviewUpdate


class AlreadyReviewed(Exception):
    """The user has reviewed this place before (UNIQUE (user_id, place_id))."""


class UnknownPlace(Exception):
    """The review names a place that does not exist."""


def create(session: Session, user_id: int, data: ReviewCreate) -> Review:
    review = Review(user_id=user_id, **data.model_dump())
    try:
        with session.begin_nested():
            session.add(review)
            session.flush()
    except IntegrityError as error:
        if isinstance(error.orig, pg_errors.UniqueViolation):
            raise AlreadyReviewed(data.place_id) from None
        if isinstance(error.orig, pg_errors.ForeignKeyViolation):
            raise UnknownPlace(data.place_id) from None
        raise
    return review


def list_mine(
    session: Session, user_id: int, *, after_id: int | None, limit: int, place_id: str | None
) -> list[Review]:
    """One query, whatever the page size (keyset on id)."""
    query = select(Review).where(Review.user_id == user_id)
    if after_id is not None:
        query = query.where(col(Review.id) > after_id)
    if place_id is not None:
        query = query.where(Review.place_id == place_id)
    return list(session.exec(query.order_by(col(Review.id)).limit(limit)))


def get(session: Session, review_id: int) -> Review | None:
    """None for a review that does not exist or, through RLS, is someone else's."""
    return session.get(Review, review_id)


def update(session: Session, review: Review, data: ReviewUpdate) -> Review:
    for field, value in data.model_dump(exclude_unset=True).items():
        if field == "rating" and value is None:
            continue  # rating is NOT NULL: null means "unchanged"
        setattr(review, field, value)
    session.flush()
    return review


def delete(session: Session, review: Review) -> None:
    session.delete(review)
    session.flush()
