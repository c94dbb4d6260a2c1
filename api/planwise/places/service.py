"""Places: public reads, admin writes (RLS checks the admin, see the roles migration)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from planwise.places.categories import category_for
from planwise.places.geo import DISTANCE_M_SQL, WITHIN_SQL, circle_params
from planwise.places.models import Place
from planwise.places.schemas import PlaceIn

UPSERT = text(
    """
    INSERT INTO place (id, name, lat, lng, types, category, rating, user_ratings_total,
                       description, opening_hours)
    VALUES (:id, :name, :lat, :lng, :types, :category, :rating, :user_ratings_total,
            :description, CAST(:opening_hours AS json))
    ON CONFLICT (id) DO UPDATE SET
        name = EXCLUDED.name, lat = EXCLUDED.lat, lng = EXCLUDED.lng, types = EXCLUDED.types,
        category = EXCLUDED.category, rating = EXCLUDED.rating,
        user_ratings_total = EXCLUDED.user_ratings_total, description = EXCLUDED.description,
        opening_hours = EXCLUDED.opening_hours
    RETURNING (xmax = 0) AS inserted
    """
)


def like_pattern(fragment: str) -> str:
    """A LIKE pattern matching `fragment` literally anywhere."""
    escaped = fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def get(session: Session, place_id: str) -> Place | None:
    return session.get(Place, place_id)


def upsert(session: Session, place_id: str, data: PlaceIn) -> tuple[Place, bool]:
    """Insert or replace a place; True when it is new."""
    values: dict[str, Any] = data.model_dump()
    values["types"] = ",".join(data.types) or None
    values["category"] = data.category or category_for(data.types)
    values["opening_hours"] = (
        json.dumps(data.opening_hours) if data.opening_hours is not None else None
    )
    inserted = session.execute(UPSERT, {"id": place_id, **values}).scalar_one()
    place = session.get(Place, place_id, populate_existing=True)
    assert place is not None
    return place, bool(inserted)


def delete(session: Session, place_id: str) -> bool:
    """False when there is no such place (or RLS hid it from a non-admin)."""
    deleted = session.execute(
        text("DELETE FROM place WHERE id = :id RETURNING id"), {"id": place_id}
    ).first()
    return deleted is not None


def search(
    session: Session,
    *,
    category: str | None,
    name_contains: str | None,
    after_id: str | None,
    limit: int,
) -> list[Place]:
    """Places ordered by id (keyset), filtered by category and name; one query."""
    query = select(Place)
    if category is not None:
        query = query.where(Place.category == category)
    if name_contains:
        query = query.where(col(Place.name).ilike(like_pattern(name_contains)))
    if after_id is not None:
        query = query.where(col(Place.id) > after_id)
    return list(session.exec(query.order_by(col(Place.id)).limit(limit)))


DISTANCE_KM_SQL = f"({DISTANCE_M_SQL} / 1000.0)"


def search_near(
    session: Session,
    *,
    lat: float,
    lng: float,
    radius_km: float,
    category: str | None,
    name_contains: str | None,
    after: tuple[float, str] | None,
    limit: int,
) -> list[tuple[Place, float]]:
    """Places within the circle, nearest first (keyset on distance, id); one query."""
    conditions = [WITHIN_SQL]
    params: dict[str, Any] = {**circle_params(lat, lng, radius_km), "limit": limit}
    if category is not None:
        conditions.append("category = :category")
        params["category"] = category
    if name_contains:
        conditions.append("name ILIKE :name_pattern")
        params["name_pattern"] = like_pattern(name_contains)
    if after is not None:
        conditions.append(f"({DISTANCE_KM_SQL}, id) > (:after_distance, :after_id)")
        params["after_distance"], params["after_id"] = after
    rows = session.execute(
        text(  # fragments are constants of this module and geo.py; values are bound
            f"SELECT place.*, {DISTANCE_KM_SQL} AS distance_km FROM place "  # noqa: S608
            f"WHERE {' AND '.join(conditions)} ORDER BY distance_km, id LIMIT :limit"
        ),
        params,
    ).mappings()
    return [
        (Place.model_validate({k: v for k, v in row.items() if k != "distance_km"}),
         float(row["distance_km"]))
        for row in rows
    ]  # fmt: skip
