"""Recommendations for the acting user (`app.user_id`), in one index-served statement.

Distance is the great-circle distance on the WGS84 mean sphere (R = 6 371 008.8 m):
`ST_DistanceSphere`, used by the filter, the proximity score and the ground truth alike.
The sphere is within 0.5 % of the spheroid, far below what a 10 % proximity weight can
tell apart, and is several times cheaper than geography's spheroidal `ST_Distance`.

Candidates come from `idx_place_location` (GiST on `PLACE_POINT_SQL`) through `&&` with
one or two lng/lat boxes that provably contain the whole circle (see `search_boxes`);
the exact distance filter then keeps what is truly within `radius_km`. The design
document's query (`DOCUMENT_QUERY`) instead measures degrees as if they were all
111.32 km, which overstates east-west distances by 1/cos(latitude): at 60°N it keeps
only about half of the circle, and it finds nothing across the antimeridian.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from planwise.places.models import PLACE_POINT_SQL
from planwise.recommendations.models import (
    DocumentRecommendation,
    Recommendation,
    RecommendationResult,
    ScoreComponents,
)

MAX_RADIUS_KM = 50.0
MAX_LIMIT = 100

KM_PER_DEGREE_LOWER_BOUND = 110.5
"""Fewer km than any degree of latitude has, on the sphere (111.195) or the WGS84
spheroid (110.574 at the equator), and than a degree of longitude has at the equator
(111.195 / 111.319). Dividing a radius by it can only overestimate degrees, never miss
a place; 111.32 (the document's figure) would miss places due north or south near the
circle's edge, since a degree of latitude is shorter than that."""

ACTING_USER_SQL = "nullif(current_setting('app.user_id', true), '')::integer"
"""The user RLS sees; also filtered on explicitly so the planner can use the user index."""

ORIGIN_SQL = "ST_SetSRID(ST_MakePoint(:lng, :lat), 4326)"
DISTANCE_M_SQL = f"ST_DistanceSphere({PLACE_POINT_SQL}, {ORIGIN_SQL})"
"""Metres from the origin to a place (whose columns are in scope unqualified)."""

RECOMMENDATION_SQL = f"""
WITH user_prefs AS (
    SELECT category, rating
    FROM preference
    WHERE user_id = {ACTING_USER_SQL}
),
candidates AS (
    SELECT place.id, place.name, place.lat, place.lng, place.category, place.rating,
           place.user_ratings_total, place.types, place.description,
           user_prefs.rating AS preference,
           {DISTANCE_M_SQL} / 1000.0 AS distance_km
    FROM place
    JOIN user_prefs ON user_prefs.category = place.category
    WHERE ({PLACE_POINT_SQL} && ST_MakeEnvelope(:west_a, :south, :east_a, :north, 4326)
           OR {PLACE_POINT_SQL} && ST_MakeEnvelope(:west_b, :south, :east_b, :north, 4326))
      AND {DISTANCE_M_SQL} <= :radius_km * 1000.0
      AND (CAST(:category AS varchar) IS NULL OR place.category = :category)
      AND NOT (:exclude_reviewed AND EXISTS (
          SELECT 1 FROM review
          WHERE review.place_id = place.id AND review.user_id = {ACTING_USER_SQL}
      ))
),
components AS (
    SELECT candidates.*,
           coalesce(rating, 0) / 5 AS rating_component,
           least(1.0, log(coalesce(user_ratings_total, 0) + 1) / 10) AS popularity,
           1 - least(1.0, distance_km / :radius_km) AS proximity
    FROM candidates
),
ranked AS (
    SELECT components.*,
           preference * 0.6 + rating_component * 0.2 + popularity * 0.1 + proximity * 0.1
               AS score
    FROM components
    ORDER BY score DESC, distance_km, id
    LIMIT :limit
)
SELECT {ACTING_USER_SQL} AS acting_user_id,
       (SELECT count(*) FROM user_prefs) AS preference_count,
       (SELECT count(*) FROM user_prefs WHERE category = :category) AS category_preferred,
       ranked.*
FROM (VALUES (1)) AS one_row (n)
LEFT JOIN ranked ON true
ORDER BY ranked.score DESC, ranked.distance_km, ranked.id
"""
"""Parameters: `recommendation_params`. The outer LEFT JOIN returns one row even when
nothing qualifies, carrying the preference counts that explain the empty result."""

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
"""

NO_PREFERENCES_HINT = (
    "Set preferences with PUT /api/v1/preferences/{category} to get recommendations"
)


@dataclass(frozen=True)
class Box:
    """A lng/lat rectangle in degrees (west <= east, never crossing the antimeridian)."""

    west: float
    south: float
    east: float
    north: float


def search_boxes(lat: float, lng: float, radius_km: float) -> tuple[Box, Box]:
    """Two boxes whose union holds every point within `radius_km` of (lat, lng).

    Along the shortest path to a point within r km, latitude moves by at most
    r / k degrees (k = KM_PER_DEGREE_LOWER_BOUND), so the path stays below
    lat_max = |lat| + r / k, where a degree of longitude is at least k·cos(lat_max) km:
    the longitude moves by at most r / (k·cos(lat_max)) degrees. A circle reaching a pole
    spans every longitude. A circle crossing ±180° is split into a box on each side;
    otherwise both boxes are the same (the statement's shape never changes).
    """
    dlat = radius_km / KM_PER_DEGREE_LOWER_BOUND
    south, north = max(-90.0, lat - dlat), min(90.0, lat + dlat)
    lat_max = abs(lat) + dlat
    if lat_max >= 90.0:
        dlng = 360.0
    else:
        dlng = radius_km / (KM_PER_DEGREE_LOWER_BOUND * math.cos(math.radians(lat_max)))
    if dlng >= 180.0:
        whole = Box(-180.0, south, 180.0, north)
        return whole, whole
    west, east = lng - dlng, lng + dlng
    if west < -180.0:
        return Box(-180.0, south, east, north), Box(west + 360.0, south, 180.0, north)
    if east > 180.0:
        return Box(west, south, 180.0, north), Box(-180.0, south, east - 360.0, north)
    box = Box(west, south, east, north)
    return box, box


def validate_point(lat: float, lng: float) -> None:
    # Written as negations so NaN fails too.
    if not -90.0 <= lat <= 90.0:
        raise ValueError(f"lat must be within [-90, 90], got {lat!r}")
    if not -180.0 <= lng <= 180.0:
        raise ValueError(f"lng must be within [-180, 180], got {lng!r}")


def validate_radius(radius_km: float) -> None:
    if not 0.0 < radius_km <= MAX_RADIUS_KM:
        raise ValueError(f"radius_km must be within (0, {MAX_RADIUS_KM:g}], got {radius_km!r}")


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
    validate_point(lat, lng)
    validate_radius(radius_km)
    if isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be within [1, {MAX_LIMIT}], got {limit!r}")
    first, second = search_boxes(lat, lng, radius_km)
    return {
        "lat": float(lat),
        "lng": float(lng),
        "radius_km": float(radius_km),
        "limit": int(limit),
        "exclude_reviewed": bool(exclude_reviewed),
        "category": category,
        "south": first.south,
        "north": first.north,
        "west_a": first.west,
        "east_a": first.east,
        "west_b": second.west,
        "east_b": second.east,
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
    rows = session.execute(text(RECOMMENDATION_SQL), params).mappings().all()
    head = rows[0]  # the LEFT JOIN always yields a row
    _require_acting_user(head["acting_user_id"])
    items = [
        Recommendation(
            id=row["id"],
            name=row["name"],
            lat=row["lat"],
            lng=row["lng"],
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
        if row["id"] is not None
    ]
    hint = None
    if not items:
        hint = _hint(head["preference_count"], head["category_preferred"], params)
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
