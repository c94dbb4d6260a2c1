from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response, status

from planwise.deps import CurrentUser, SessionDep
from planwise.places.categories import CATEGORIES, KnownCategory
from planwise.preferences import service
from planwise.preferences.schemas import PreferenceIn, PreferencePublic

router = APIRouter(prefix="/preferences", tags=["preferences"])

Category = Annotated[
    KnownCategory,
    Path(
        max_length=100,
        description=f"one of the place categories: {', '.join(CATEGORIES)}",
        json_schema_extra={"enum": list(CATEGORIES)},
    ),
]


@router.get("")
def list_my_preferences(session: SessionDep, user: CurrentUser) -> list[PreferencePublic]:
    assert user.id is not None
    return [PreferencePublic.model_validate(p) for p in service.list_mine(session, user.id)]


@router.put("/{category}", responses={status.HTTP_201_CREATED: {"model": PreferencePublic}})
def set_preference(
    session: SessionDep, user: CurrentUser, category: Category, body: PreferenceIn,
    response: Response,
) -> PreferencePublic:  # fmt: skip
    """Create or replace how much you like a category (201 when new, 200 when replaced)."""
    assert user.id is not None
    preference, created = service.upsert(session, user.id, category, body.rating)
    if created:
        response.status_code = status.HTTP_201_CREATED
    return PreferencePublic.model_validate(preference)


@router.delete(
    "/{category}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={status.HTTP_404_NOT_FOUND: {"description": "no such preference"}},
)
def delete_preference(session: SessionDep, user: CurrentUser, category: Category) -> None:
    assert user.id is not None
    if not service.delete(session, user.id, category):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "preference not found")
