"""Recommendations for the acting user (`app.user_id`), in one index-served statement.

Distance, candidate search and validation are `planwise.places.geo`'s: great-circle
kilometres, candidates from `idx_place_location` through boxes that provably contain the
circle, then the exact distance filter. The design document's query (`DOCUMENT_QUERY`)
instead measures degrees as if they were all 111.32 km, which overstates east-west
distances by 1/cos(latitude): at 60°N it keeps only about half of the circle, and it
finds nothing across the antimeridian.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg import errors as pg_errors
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from planwise.places.geo import DISTANCE_M_SQL, MAX_RADIUS_KM, circle_params, validate_point
from planwise.recommendations.models import (
    DocumentRecommendation,
    Recommendation,
    RecommendationResult,
    ScoreComponents,
)

MAX_LIMIT = 100

ACTING_USER_SQL = "planwise_acting_user_id()"
"""The user RLS sees: `app.user_id` (the API) or the Supabase JWT's user."""

RECOMMENDATION_SQL = (
    "SELECT * FROM recommend_places(:lat, :lng, :radius_km, :limit, :exclude_reviewed, :category)"
)
"""The SQL function `recommend_places` (migration 9b0c1d2e3f4a) is the one implementation:
the API calls it here, Supabase clients through `/rest/v1/rpc/recommend_places`. It is
plain SQL, so the planner inlines it and EXPLAIN shows the index at work."""

PREFERENCE_COUNTS_SQL = f"""
SELECT count(*) AS preference_count,
       count(*) FILTER (WHERE category = :category) AS category_preferred
FROM preference WHERE user_id = {ACTING_USER_SQL}
"""  # noqa: S608
"""Explains an empty result; run only then."""

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

NO_PREFERENCES_HINT = (
    "Set preferences with PUT /api/v1/preferences/{category} to get recommendations"
)


def recommendation_params(
    *,
    lat: float,
    lng: float,
    radius_km: float = 5.0,
    limit: int = 20,
    exclude_reviewed: bool = False,
    category: str | None = None,
) -> dict[str, Any]:
    """Validated bind parameters of `RECOMMENDATION_SQL` (also for EXPLAIN and benchmarks)."""
    if isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be within [1, {MAX_LIMIT}], got {limit!r}")
    return {
        **circle_params(lat, lng, radius_km),
        "limit": int(limit),
        "exclude_reviewed": bool(exclude_reviewed),
        "category": category,
    }


def _require_acting_user(user_id: object) -> None:
    if user_id is None:
        raise RuntimeError(
            "app.user_id is not set in this transaction: call set_acting_user() first"
        )


def _hint(preference_count: int, category_preferred: int, params: Mapping[str, Any]) -> str:
    category = params["category"]
    if preference_count == 0:
        return NO_PREFERENCES_HINT
    if category is not None and category_preferred == 0:
        return (
            f"You have no preference for {category!r}: set one with "
            f"PUT /api/v1/preferences/{category} to get recommendations in it"
        )
    return (
        f"No place of your preferred categories within {params['radius_km']:g} km; "
        f"try a larger radius_km (up to {MAX_RADIUS_KM:g})"
    )


def recommend(
    session: Session,
    *,
    lat: float,
    lng: float,
    radius_km: float = 5.0,
    limit: int = 20,
    exclude_reviewed: bool = False,
    category: str | None = None,
) -> RecommendationResult:
    """The acting user's best places within `radius_km` of (lat, lng), best first.

    Only places in categories the user has a preference for qualify; ties are broken by
    distance, then id, so the order is deterministic. An empty list comes with a hint.
    """
    params = recommendation_params(
        lat=lat,
        lng=lng,
        radius_km=radius_km,
        limit=limit,
        exclude_reviewed=exclude_reviewed,
        category=category,
    )
    try:
        rows = session.execute(text(RECOMMENDATION_SQL), params).mappings().all()
    except DBAPIError as error:
        if isinstance(error.orig, pg_errors.InsufficientPrivilege):
            raise RuntimeError(
                "app.user_id is not set in this transaction: call set_acting_user() first"
            ) from None
        raise
    items = [
        Recommendation(
            id=row["id"],
            name=row["name"],
            lat=row["place_lat"],
            lng=row["place_lng"],
            category=row["category"],
            rating=row["rating"],
            user_ratings_total=row["user_ratings_total"],
            types=row["types"].split(",") if row["types"] else [],
            description=row["description"],
            distance_km=row["distance_km"],
            score=row["score"],
            components=ScoreComponents(
                preference=row["preference"],
                rating=row["rating_component"],
                popularity=row["popularity"],
                proximity=row["proximity"],
            ),
        )
        for row in rows
    ]
    hint = None
    if not items:
        counts = session.execute(text(PREFERENCE_COUNTS_SQL), params).one()
        hint = _hint(counts.preference_count, counts.category_preferred, params)
    return RecommendationResult(items=items, hint=hint)


def _acting_user_id(session: Session) -> int:
    user_id = session.execute(text(f"SELECT {ACTING_USER_SQL}")).scalar_one()
    _require_acting_user(user_id)
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
