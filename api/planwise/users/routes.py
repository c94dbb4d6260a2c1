from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from planwise.config import Settings
from planwise.deps import CurrentUser, EngineDep, Responses, SessionDep, SettingsDep
from planwise.users import service, throttle
from planwise.users.schemas import Token, UserPublic, UserRegister, UserUpdate
from planwise.users.security import create_access_token

auth_router = APIRouter(prefix="/auth", tags=["auth"])
users_router = APIRouter(prefix="/users", tags=["users"])

CONFLICT: Responses = {status.HTTP_409_CONFLICT: {"description": "username already taken"}}
BUSY: Responses = {
    status.HTTP_503_SERVICE_UNAVAILABLE: {"description": "no password-hashing slot; Retry-After"}
}


def busy(error: throttle.HashingBusy) -> HTTPException:
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        str(error),
        headers={"Retry-After": str(error.retry_after)},
    )


@contextmanager
def hashing(settings: Settings) -> Iterator[None]:
    """A password-hashing slot for the block, or 503 with Retry-After."""
    try:
        with throttle.hashing_slot(settings):
            yield
    except throttle.HashingBusy as error:
        raise busy(error) from None


@auth_router.post("/register", status_code=status.HTTP_201_CREATED, responses={**CONFLICT, **BUSY})
def register(session: SessionDep, settings: SettingsDep, body: UserRegister) -> UserPublic:
    try:
        with hashing(settings):
            user = service.register(session, body)
    except service.UsernameTaken:
        raise HTTPException(status.HTTP_409_CONFLICT, "username already taken") from None
    return UserPublic.model_validate(user)


@auth_router.post(
    "/token",
    responses={
        status.HTTP_401_UNAUTHORIZED: {"description": "wrong username or password"},
        status.HTTP_403_FORBIDDEN: {"description": "account deactivated"},
        status.HTTP_429_TOO_MANY_REQUESTS: {"description": "too many failed logins; Retry-After"},
        **BUSY,
    },
)
def login(
    request: Request,
    session: SessionDep,
    engine: EngineDep,
    settings: SettingsDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> Token:
    """OAuth2 password flow: form fields `username` and `password`; returns a bearer JWT.
    Failed attempts are throttled per username and per client address (429)."""
    host = request.client.host if request.client else None
    guard = throttle.LoginGuard(engine, settings)
    try:
        with guard.attempt("api", form.username, host) as attempt:
            record = service.authenticate(session, form.username, form.password)
            if record is not None:
                attempt.succeeded()
    except throttle.Throttled as error:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            str(error),
            headers={"Retry-After": str(error.retry_after)},
        ) from None
    except throttle.HashingBusy as error:
        raise busy(error) from None
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


@users_router.patch("/me", responses={**CONFLICT, **BUSY})
def update_me(
    session: SessionDep, settings: SettingsDep, user: CurrentUser, body: UserUpdate
) -> UserPublic:
    try:
        with hashing(settings) if body.password is not None else nullcontext():
            updated = service.update_profile(session, user, body)
    except service.UsernameTaken:
        raise HTTPException(status.HTTP_409_CONFLICT, "username already taken") from None
    return UserPublic.model_validate(updated)


@users_router.delete("/me", status_code=status.HTTP_204_NO_CONTENT)
def delete_me(session: SessionDep, user: CurrentUser) -> None:
    """Delete the account with its reviews and preferences (ON DELETE CASCADE)."""
    service.delete_account(session, user)
