"""Test data through the models, flushed (not committed) into the test's transaction."""

from __future__ import annotations

import itertools

from sqlmodel import Session

from planwise.places.models import Place
from planwise.preferences.models import Preference
from planwise.reviews.models import Review
from planwise.users.models import User

_sequence = itertools.count(1)


def make_user(session: Session, *, role: str = "user", **fields: object) -> User:
    n = next(_sequence)
    user = User(
        username=str(fields.pop("username", f"traveller{n}")),
        hashed_password="$argon2id$v=19$m=65536,t=3,p=4$not-a-real-hash",
        full_name=str(fields.pop("full_name", f"Traveller {n}")),
        role=role,
        **fields,
    )
    session.add(user)
    session.flush()
    return user


def make_place(session: Session, **fields: object) -> Place:
    n = next(_sequence)
    values: dict[str, object] = {
        "id": f"ChIJtest{n:06d}",
        "name": f"Place {n}",
        "lat": 48.8566,
        "lng": 2.3522,
        "types": "restaurant,food,point_of_interest",
        "category": "restaurant",
        "rating": 4.2,
        "user_ratings_total": 120,
        "description": "A test place.",
    }
    values.update(fields)
    place = Place(**values)
    session.add(place)
    session.flush()
    return place


def make_review(session: Session, user: User, place: Place, rating: float = 4.0) -> Review:
    assert user.id is not None
    review = Review(user_id=user.id, place_id=place.id, rating=rating, comment="Nice.")
    session.add(review)
    session.flush()
    return review


def make_preference(
    session: Session, user: User, category: str = "restaurant", rating: float = 0.8
) -> Preference:
    assert user.id is not None
    preference = Preference(user_id=user.id, category=category, rating=rating)
    session.add(preference)
    session.flush()
    return preference
