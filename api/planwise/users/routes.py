from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm

from planwise.deps import CurrentUser, Responses, SessionDep, SettingsDep
from planwise.users import service
from planwise.users.schemas import Token, UserPublic, UserRegister, UserUpdate
from planwise.users.security import create_access_token

auth_router = APIRouter(prefix="/auth", tags=["auth"])
users_router = APIRouter(prefix="/users", tags=["users"])

CONFLICT: Responses = {status.HTTP_409_CONFLICT: {"description": "username already taken"}}


@auth_router.post("/register", status_code=status.HTTP_201_CREATED, responses=CONFLICT)
def register(session: SessionDep, body: UserRegister) -> UserPublic:
    try:
        user = service.register(session, body)
    except service.UsernameTaken:
        raise HTTPException(status.HTTP_409_CONFLICT, "username already taken") from None
    return UserPublic.model_validate(user)


@auth_router.post(
    "/token",
    responses={
        status.HTTP_401_UNAUTHORIZED: {"description": "wrong username or password"},
        status.HTTP_403_FORBIDDEN: {"description": "account deactivated"},
    },
)
def login(
    session: SessionDep,
    settings: SettingsDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> Token:
    """OAuth2 password flow: form fields `username` and `password`; returns a bearer JWT."""
    try:
        record = service.authenticate(session, form.username, form.password)
    except service.AccountDisabled:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "account is deactivated") from None
    if record is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "wrong username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Token(
        access_token=create_access_token(settings, record.id),
        expires_in=settings.jwt_expire_minutes * 60,
    )


@users_router.get("/me")
def read_me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)


@users_router.patch("/me", responses=CONFLICT)
def update_me(session: SessionDep, user: CurrentUser, body: UserUpdate) -> UserPublic:
    try:
        updated = service.update_profile(session, user, body)
    except service.UsernameTaken:
        raise HTTPException(status.HTTP_409_CONFLICT, "username already taken") from None
    return UserPublic.model_validate(updated)


@users_router.delete("/me", status_code=status.HTTP_204_NO_CONTENT)
def delete_me(session: SessionDep, user: CurrentUser) -> None:
    """Delete the account with its reviews and preferences (ON DELETE CASCADE)."""
    service.delete_account(session, user)
