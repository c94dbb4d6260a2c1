from typing import Annotated

import orjson
from fastapi import APIRouter, HTTPException, Query, Response, status

from planwise.db.session import read_driver_in_autocommit
from planwise.deps import ReadEngineDep, VerifiedToken, unauthorized
from planwise.places.categories import CATEGORIES, KnownCategory
from planwise.places.geo import MAX_RADIUS_KM
from planwise.recommendations import service
from planwise.recommendations.schemas import RecommendationResult
from planwise.users.service import DeactivatedUser, TokenRefused

router = APIRouter(prefix="/recommendations", tags=["recommendations"])


@router.get(
    "",
    response_model=RecommendationResult,
    responses={401: {"description": "no valid token"}, 403: {"description": "deactivated"}},
)
def get_recommendations(
    engine: ReadEngineDep,
    token: VerifiedToken,
    lat: Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False)],
    lng: Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False)],
    radius_km: Annotated[float, Query(gt=0, le=MAX_RADIUS_KM, allow_inf_nan=False)] = 5.0,
    limit: Annotated[int, Query(ge=1, le=service.MAX_LIMIT)] = 20,
    exclude_reviewed: bool = False,
    category: Annotated[
        KnownCategory | None,
        Query(
            max_length=100,
            description=f"only this category, one of: {', '.join(CATEGORIES)}",
            json_schema_extra={"enum": list(CATEGORIES)},
        ),
    ] = None,
) -> Response:
    """Your best places near (lat, lng): preferred categories, rating, popularity, distance.

    Distances are great-circle kilometres. With no preferences the list is empty and
    `hint` says how to set some.

    The hot path: one statement in autocommit on psycopg's own connection (the user
    check, RLS's acting user and the query), and the body serialised once, by orjson,
    from the rows the database returned.
    """
    params = service.recommendation_params(
        lat=lat,
        lng=lng,
        radius_km=radius_km,
        limit=limit,
        exclude_reviewed=exclude_reviewed,
        category=category,
    )
    try:
        body = read_driver_in_autocommit(
            engine, lambda connection: service.recommendation_body(connection, token, params)
        )
    except DeactivatedUser as error:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(error)) from None
    except TokenRefused as error:
        raise unauthorized(str(error)) from None
    return Response(orjson.dumps(body), media_type="application/json")
