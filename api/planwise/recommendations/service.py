"""Recommendations for the acting user (`app.user_id`), in one index-served statement.

Distance and candidate search are `planwise.places.geo`'s: great-circle kilometres,
candidates from `idx_place_location` through boxes that provably contain the circle, then
the exact distance filter. The bounds of a request (`MAX_RADIUS_KM`, `MAX_LIMIT`) are
checked once, by `planwise_check_recommendation_request` inside `recommend_places()`;
its refusals become `ValueError` here. The design document's query, kept for comparison,
is in `planwise.bench.reference`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from sqlalchemy import Row, RowMapping, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from planwise.places.geo import MAX_RADIUS_KM
from planwise.recommendations.schemas import Recommendation, RecommendationResult, ScoreComponents
from planwise.users.security import AccessToken
from planwise.users.service import raise_token_refusal, token_parameters

MAX_LIMIT = 100
"""Most recommendations one request returns. The Query constraint is this; the SQL check in
`planwise_check_recommendation_request` (migration 9b0c1d2e3f4a, history, so a literal)
is the enforcement, and `tests/test_recommendations.py` holds the two equal."""

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

RECOMMEND_FOR = (
    "SELECT * FROM planwise_recommend_for(%(user_id)s, %(auth_user_id)s, %(full_name)s, "
    "%(lat)s, %(lng)s, %(radius_km)s, %(limit)s, %(exclude_reviewed)s, %(category)s, "
    "%(issued_at)s, %(session_id)s)"
)
"""psycopg's own placeholders: the API runs it on the driver's connection."""
PREFERENCE_COUNTS_FOR = (
    "SELECT * FROM planwise_preference_counts_for(%(user_id)s, %(auth_user_id)s, %(category)s)"
)

NO_ACTING_USER = "app.user_id is not set in this transaction: call set_acting_user() first"

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
    """Bind parameters of `RECOMMENDATION_SQL` (also for EXPLAIN and benchmarks).

    The database checks the bounds (before anything else since migration 9f0a1b2c3d4e);
    a limit that is not a positive int, `True` included, is refused here with its type.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    return {
        "lat": float(lat),
        "lng": float(lng),
        "radius_km": float(radius_km),
        "limit": limit,
        "exclude_reviewed": bool(exclude_reviewed),
        "category": category,
    }


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
    except DBAPIError as error:  # the transaction is failed now; the caller's error
        _raise_refusal(error)
        if isinstance(error.orig, pg_errors.InsufficientPrivilege):
            raise RuntimeError(NO_ACTING_USER) from None
        raise
    return _result(rows, params, lambda: session.execute(text(PREFERENCE_COUNTS_SQL), params).one())


def _result(
    rows: Sequence[RowMapping], params: Mapping[str, Any], counts: Callable[[], Row[Any]]
) -> RecommendationResult:
    """The items; for an empty list, the hint that `counts` (asked only then) explains."""
    if rows:
        return RecommendationResult(items=[_item(row) for row in rows], hint=None)
    found = counts()
    return RecommendationResult(
        items=[], hint=_hint(found.preference_count, found.category_preferred, params)
    )


def _raise_refusal(error: DBAPIError | psycopg.Error) -> None:
    """The request's bounds or its user, refused by the database, as Python errors."""
    orig = error.orig if isinstance(error, DBAPIError) else error
    if isinstance(orig, pg_errors.InvalidParameterValue):
        raise ValueError(orig.diag.message_primary) from None
    raise_token_refusal(error)


def _item(row: RowMapping) -> Recommendation:
    return Recommendation(
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


def recommendation_body(
    connection: psycopg.Connection[Any], token: AccessToken, params: Mapping[str, Any]
) -> dict[str, Any]:
    """As `recommend`, for the user a verified token names, as the response body
    (`RecommendationResult`'s shape), in one statement on an autocommit connection
    (`planwise_recommend_for`, migrations a7b8c9d0e1f2 and f3a4b5c6d7e8): the token's
    resolution (user gone, deactivated, or the token ended by a password change or
    logout), RLS's acting user and the query in one round trip. `params` are
    `recommendation_params`. Raises a `TokenRefused`. An empty list costs a second
    statement, for its hint.

    The rows become the body's dicts directly, with no pydantic model per row: the row
    type (`recommend_places_row`) fixes every column's type, so the JSON is the same."""
    bound = {**params, **token_parameters(token.subject, token.issued_at, token.session_id)}
    try:
        with connection.cursor() as cursor:
            rows = cursor.execute(RECOMMEND_FOR, bound).fetchall()
            if rows:
                return {"items": [_body_item(row) for row in rows], "hint": None}
            counts = cursor.execute(PREFERENCE_COUNTS_FOR, bound).fetchone()
    except psycopg.Error as error:
        _raise_refusal(error)
        raise
    assert counts is not None  # an aggregate: always one row
    return {"items": [], "hint": _hint(counts[0], counts[1], params)}


def _body_item(row: tuple[Any, ...]) -> dict[str, Any]:
    """One `recommend_places_row` (columns in the type's order) as a `Recommendation`."""
    (id_, name, lat, lng, category, rating, total, types, description, distance_km,
     preference, rating_component, popularity, proximity, score) = row  # fmt: skip
    return {
        "id": id_,
        "name": name,
        "lat": lat,
        "lng": lng,
        "category": category,
        "rating": rating,
        "user_ratings_total": total,
        "types": types.split(",") if types else [],
        "description": description,
        "distance_km": distance_km,
        "score": score,
        "components": {
            "preference": preference,
            "rating": rating_component,
            "popularity": popularity,
            "proximity": proximity,
        },
    }
