from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from planwise.deps import AdminUser, ReadSessionDep, Responses, SessionDep
from planwise.pagination import Cursor, Limit, Page, decode_cursor, make_page
from planwise.places import service
from planwise.places.geo import MAX_RADIUS_KM, LatLngText, parse_lat_lng
from planwise.places.schemas import PlaceIn, PlacePublic
from planwise.validation import DbStr

router = APIRouter(prefix="/places", tags=["places"])

PlaceId = Annotated[DbStr, Path(min_length=1, max_length=100, description="Google Place ID")]
NOT_FOUND: Responses = {status.HTTP_404_NOT_FOUND: {"description": "no such place"}}


@router.get("", responses={status.HTTP_400_BAD_REQUEST: {"description": "invalid cursor"}})
def list_places(
    session: ReadSessionDep,
    category: Annotated[DbStr | None, Query(max_length=100)] = None,
    q: Annotated[DbStr | None, Query(max_length=200, description="part of the name")] = None,
    near: Annotated[
        LatLngText | None,
        Query(
            max_length=60,
            pattern=r"^\s*-?\d+(\.\d+)?\s*,\s*-?\d+(\.\d+)?\s*$",
            description="`lat,lng`: only places within `radius_km`, nearest first",
            examples=["48.8566,2.3522"],
        ),
    ] = None,
    radius_km: Annotated[float, Query(gt=0, le=MAX_RADIUS_KM)] = 5.0,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Page[PlacePublic]:
    """Browse places by id, or nearest first with `near`; filter by category and name."""
    if near is not None:
        lat, lng = parse_lat_lng(near)
        near_key = decode_cursor(cursor, {"d": float, "id": str})
        found = service.search_near(
            session,
            lat=lat,
            lng=lng,
            radius_km=radius_km,
            category=category,
            name_contains=q,
            after=(near_key["d"], near_key["id"]) if near_key else None,
            limit=limit + 1,
        )
        return make_page(
            [PlacePublic.of(place, distance) for place, distance in found],
            limit,
            lambda last: {"d": last.distance_km, "id": last.id},
        )
    key = decode_cursor(cursor, {"id": str})
    places = service.search(
        session,
        category=category,
        name_contains=q,
        after_id=key["id"] if key else None,
        limit=limit + 1,
    )
    return make_page([PlacePublic.of(p) for p in places], limit, lambda last: {"id": last.id})


@router.get("/{place_id}", responses=NOT_FOUND)
def read_place(session: ReadSessionDep, place_id: PlaceId) -> PlacePublic:
    place = service.get(session, place_id)
    if place is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "place not found")
    return PlacePublic.of(place)


@router.put(
    "/{place_id}",
    responses={
        status.HTTP_201_CREATED: {"model": PlacePublic, "description": "created"},
        status.HTTP_403_FORBIDDEN: {"description": "administrators only"},
    },
)
def put_place(
    session: SessionDep, admin: AdminUser, place_id: PlaceId, body: PlaceIn, response: Response
) -> PlacePublic:
    """Create or replace a place (administrators)."""
    place, created = service.upsert(session, place_id, body)
    if created:
        response.status_code = status.HTTP_201_CREATED
    return PlacePublic.of(place)


@router.delete(
    "/{place_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**NOT_FOUND, status.HTTP_403_FORBIDDEN: {"description": "administrators only"}},
)
def delete_place(session: SessionDep, admin: AdminUser, place_id: PlaceId) -> None:
    """Delete a place and, by cascade, its reviews (administrators)."""
    if not service.delete(session, place_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "place not found")
