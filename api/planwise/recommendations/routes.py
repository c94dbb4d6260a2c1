from typing import Annotated

from fastapi import APIRouter, Query

from planwise.deps import CurrentUser, SessionDep
from planwise.places.categories import CATEGORIES, KnownCategory
from planwise.places.geo import MAX_RADIUS_KM
from planwise.recommendations import service
from planwise.recommendations.schemas import RecommendationResult

router = APIRouter(prefix="/recommendations", tags=["recommendations"])


@router.get("")
def get_recommendations(
    session: SessionDep,
    user: CurrentUser,  # authenticates, and sets app.user_id for the service and RLS
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
) -> RecommendationResult:
    """Your best places near (lat, lng): preferred categories, rating, popularity, distance.

    Distances are great-circle kilometres. With no preferences the list is empty and
    `hint` says how to set some.
    """
    return service.recommend(
        session,
        lat=lat,
        lng=lng,
        radius_km=radius_km,
        limit=limit,
        exclude_reviewed=exclude_reviewed,
        category=category,
    )
