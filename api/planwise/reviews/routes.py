from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from planwise.deps import CurrentUser, Responses, SessionDep
from planwise.pagination import Cursor, Limit, Page, decode_cursor, make_page
from planwise.reviews import service
from planwise.reviews.models import Review
from planwise.reviews.schemas import ReviewCreate, ReviewPublic, ReviewUpdate
from planwise.validation import DbStr

router = APIRouter(prefix="/reviews", tags=["reviews"])

ReviewId = Annotated[int, Path(ge=1, le=2_147_483_647)]
NOT_FOUND: Responses = {status.HTTP_404_NOT_FOUND: {"description": "no such review of yours"}}


def _mine_or_404(session: SessionDep, review_id: int) -> Review:
    review = service.get(session, review_id)
    if review is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "review not found")
    return review


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        status.HTTP_404_NOT_FOUND: {"description": "unknown place"},
        status.HTTP_409_CONFLICT: {"description": "you already reviewed this place"},
    },
)
def create_review(session: SessionDep, user: CurrentUser, body: ReviewCreate) -> ReviewPublic:
    assert user.id is not None
    try:
        review = service.create(session, user.id, body)
    except service.AlreadyReviewed:
        raise HTTPException(
            status.HTTP_409_CONFLICT, "you already reviewed this place: PATCH that review"
        ) from None
    except service.UnknownPlace:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "place not found") from None
    return ReviewPublic.model_validate(review)


@router.get("", responses={status.HTTP_400_BAD_REQUEST: {"description": "invalid cursor"}})
def list_my_reviews(
    session: SessionDep,
    user: CurrentUser,
    limit: Limit = 20,
    cursor: Cursor = None,
    place_id: Annotated[DbStr | None, Query(max_length=100)] = None,
) -> Page[ReviewPublic]:
    assert user.id is not None
    key = decode_cursor(cursor, {"id": int})
    reviews = service.list_mine(
        session, user.id, after_id=key["id"] if key else None, limit=limit + 1, place_id=place_id
    )
    items = [ReviewPublic.model_validate(review) for review in reviews]
    return make_page(items, limit, lambda last: {"id": last.id})


@router.get("/{review_id}", responses=NOT_FOUND)
def read_review(session: SessionDep, user: CurrentUser, review_id: ReviewId) -> ReviewPublic:
    return ReviewPublic.model_validate(_mine_or_404(session, review_id))


@router.patch("/{review_id}", responses=NOT_FOUND)
def update_review(
    session: SessionDep, user: CurrentUser, review_id: ReviewId, body: ReviewUpdate
) -> ReviewPublic:
    review = service.update(session, _mine_or_404(session, review_id), body)
    return ReviewPublic.model_validate(review)


@router.delete("/{review_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
def delete_review(session: SessionDep, user: CurrentUser, review_id: ReviewId) -> None:
    service.delete(session, _mine_or_404(session, review_id))
