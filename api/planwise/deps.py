"""Typed request dependencies: the request's session, settings and the acting user.

One transaction per request: `SessionDep` opens it, `CurrentUser` sets `app.user_id`
inside it (so RLS sees the user), and the transaction commits when the path operation
returns, before the response is sent (`scope="function"`), or rolls back on an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from sqlmodel import Session

from planwise.config import Settings
from planwise.db.session import unit_of_work
from planwise.users.models import User
from planwise.users.security import InvalidToken, decode_access_token
from planwise.users.service import act_as, user_for_supabase

API_PREFIX = "/api/v1"

Responses = dict[int | str, dict[str, Any]]
"""Extra documented responses of a route (the `responses=` argument)."""

oauth2_scheme = OAuth2PasswordBearer(tokenUrl=f"{API_PREFIX}/auth/token", auto_error=False)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    with unit_of_work(request.app.state.engine) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def get_current_user(
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> User:
    if token is None:
        raise unauthorized("not authenticated: send Authorization: Bearer <token>")
    try:
        identity = decode_access_token(settings, token)
    except InvalidToken as error:
        raise unauthorized(f"invalid token: {error}") from None
    user_id = identity if isinstance(identity, int) else user_for_supabase(session, identity)
    user = act_as(session, user_id)  # RLS: only the acting user's own row is visible
    if user is None:
        raise unauthorized("the token's user no longer exists")
    if not user.is_active:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="account is deactivated")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_admin_user(user: CurrentUser) -> User:
    if user.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="administrators only")
    return user


AdminUser = Annotated[User, Depends(get_admin_user)]
