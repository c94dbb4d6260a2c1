"""The yardsticks recommendations are measured against (benchmarks and tests only).

`DOCUMENT_QUERY` is the design document's "Example Optimized Query", verbatim: it measures
degrees as if they were all 111.32 km, which overstates east-west distances by
1/cos(latitude), so at 60°N it keeps only about half of the circle, and it finds nothing
across the antimeridian. `geodesic_ground_truth` is the answer any candidate search must
reproduce: a full scan with the service's own great-circle distance.
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlmodel import Session

from planwise.places.geo import DISTANCE_M_SQL, validate_point
from planwise.recommendations.service import ACTING_USER_SQL, NO_ACTING_USER


class DocumentRecommendation(BaseModel):
    """A row of the design document's example query, with its own column names."""

    id: str
    name: str
    lat: float
    lng: float
    rating: float | None
    user_ratings_total: int | None
    category: str
    user_preference: float
    distance: float = Field(description="the document's flat-degree estimate, in km")


DOCUMENT_QUERY = """WITH user_prefs AS (
SELECT category, rating
FROM preference
WHERE user_id = :user_id
)
SELECT p.id, p.name, p.lat, p.lng, p.rating, p.user_ratings_total,
p.category, up.rating as user_preference,
SQRT(POW(p.lat - :user_lat, 2) + POW(p.lng - :user_lng, 2)) * 111.32 AS distance
FROM place p
JOIN user_prefs up ON p.category = up.category
WHERE SQRT(POW(p.lat - :user_lat, 2) + POW(p.lng - :user_lng, 2)) * 111.32 < 5
ORDER BY (
up.rating * 0.6 +
COALESCE(p.rating, 0) / 5 * 0.2 +
LEAST(1.0, LOG(COALESCE(p.user_ratings_total, 0) + 1) / 10) * 0.1 +
(1 - LEAST(1, SQRT(POW(p.lat - :user_lat, 2) + POW(p.lng - :user_lng, 2)) * 111.32 / 5)) * 0.1
) DESC
LIMIT :limit"""
"""The design document's "Example Optimized Query", verbatim: the reference to beat."""

DOCUMENT_RADIUS_KM = 5.0
"""The radius written into `DOCUMENT_QUERY` as the literal 5."""

GROUND_TRUTH_SQL = f"""
SELECT place.id
FROM place
WHERE place.category IN (
    SELECT category FROM preference WHERE user_id = {ACTING_USER_SQL}
)
  AND {DISTANCE_M_SQL} <= :radius_km * 1000.0
"""  # noqa: S608
"""Every preferred-category place truly within the radius: a full scan, no box."""


def _acting_user_id(session: Session) -> int:
    user_id = session.execute(text(f"SELECT {ACTING_USER_SQL}")).scalar_one()
    if user_id is None:
        raise RuntimeError(NO_ACTING_USER)
    return int(user_id)


def document_reference_recommendations(
    session: Session, *, lat: float, lng: float, limit: int = 20, radius_km: float = 5.0
) -> list[DocumentRecommendation]:
    """Run `DOCUMENT_QUERY` unchanged for the acting user, to compare and benchmark.

    The document hard-codes 5 km, so any other `radius_km` is refused rather than
    silently ignored; `limit` is not capped, as the document does not cap it.
    """
    validate_point(lat, lng)
    if radius_km != DOCUMENT_RADIUS_KM:
        raise ValueError(f"the document's query only knows {DOCUMENT_RADIUS_KM:g} km")
    if isinstance(limit, bool) or limit < 1:
        raise ValueError(f"limit must be positive, got {limit!r}")
    rows = session.execute(
        text(DOCUMENT_QUERY),
        {"user_id": _acting_user_id(session), "user_lat": lat, "user_lng": lng, "limit": limit},
    ).mappings()
    return [DocumentRecommendation.model_validate(dict(row)) for row in rows]


def geodesic_ground_truth(
    session: Session, *, lat: float, lng: float, radius_km: float
) -> set[str]:
    """Ids of the acting user's preferred-category places truly within `radius_km`.

    A full scan with the same distance measure as `recommend` and no search box: the
    answer any candidate search must reproduce (recall 1.0).
    """
    validate_point(lat, lng)
    if not radius_km > 0:
        raise ValueError(f"radius_km must be positive, got {radius_km!r}")
    _acting_user_id(session)
    rows = session.execute(
        text(GROUND_TRUTH_SQL), {"lat": lat, "lng": lng, "radius_km": radius_km}
    ).scalars()
    return {str(place_id) for place_id in rows}
