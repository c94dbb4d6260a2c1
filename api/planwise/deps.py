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
from sqlalchemy import Engine
from sqlmodel import Session

from planwise.config import Settings
from planwise.db.engine import ReadRouting
from planwise.db.session import unit_of_work
from planwise.users.models import User
from planwise.users.security import (
    AccessToken,
    InvalidToken,
    SupabaseIdentity,
    decode_access_token,
)
from planwise.users.service import BadToken, DeactivatedUser, TokenRefused, resolve_bearer

API_PREFIX = "/api/v1"

Responses = dict[int | str, dict[str, Any]]
"""Extra documented responses of a route (the `responses=` argument)."""

oauth2_scheme = OAuth2PasswordBearer(tokenUrl=f"{API_PREFIX}/auth/token", auto_error=False)


async def get_settings(request: Request) -> Settings:
    """Async, as every dependency that neither blocks nor waits here: FastAPI runs a sync
    one in the thread pool, a hop that costs more than the work (README Performance)."""
    settings: Settings = request.app.state.settings
    return settings


READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_session(request: Request) -> Iterator[Session]:
    with unit_of_work(request.app.state.engine) as session:
        yield session
    # Committed: a user who may have written reads from the leader for a while.
    writer: list[str] | None = getattr(request.state, "reader_keys", None)
    if writer and request.method not in READ_ONLY_METHODS:
        read_routing(request).wrote(*writer)


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def read_routing(request: Request) -> ReadRouting:
    routing: ReadRouting = request.app.state.read_routing
    return routing


def token_reader(token: AccessToken) -> str:
    """The key naming a token's user in ReadRouting (as `user_reader_keys` does)."""
    if isinstance(token.subject, SupabaseIdentity):
        return f"auth:{token.subject.auth_user_id}"
    return f"user:{token.subject}"


def user_reader_keys(user: User) -> list[str]:
    keys = [f"user:{user.id}"]
    if user.auth_user_id is not None:
        keys.append(f"auth:{user.auth_user_id}")
    return keys


def optional_reader(request: Request, token: str | None) -> str | None:
    """The reader a bearer token names, if it verifies (public routes ignore it else)."""
    if token is None:
        return None
    try:
        return token_reader(decode_access_token(request.app.state.settings, token))
    except InvalidToken:
        return None


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
"""For routes that own no transaction: one statement in autocommit (`read_in_autocommit`)."""
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_read_session(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Iterator[Session]:
    """A read-only request's transaction, on the read engine (DATABASE_READ_URL) unless
    the bearer wrote a moment ago (then on the primary engine: read-your-writes)."""
    routing = read_routing(request)
    # Without a read engine there is nothing to route: no second verification of the token.
    reader = optional_reader(request, token) if routing.replica is not None else None
    with unit_of_work(routing.engine_for(reader)) as session:
        yield session


ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def get_current_user(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> User:
    """The bearer, acting for RLS in the request's transaction; 401, or 403 if deactivated.
    Remembered for `get_session`: what it commits is this user's write."""
    try:
        user = resolve_bearer(session, settings, token).user
        request.state.reader_keys = user_reader_keys(user)
        return user
    except DeactivatedUser as error:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(error)) from None
    except BadToken as error:
        raise unauthorized(f"invalid token: {error}") from None
    except TokenRefused as error:
        raise unauthorized(str(error)) from None


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_verified_token(
    settings: SettingsDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> AccessToken:
    """A bearer token, verified without asking the database (the route's one statement
    checks its user, and whether a password change or a logout has ended it)."""
    if token is None:
        raise unauthorized("not authenticated: send Authorization: Bearer <token>")
    try:
        return decode_access_token(settings, token)
    except InvalidToken as error:
        raise unauthorized(f"invalid token: {error}") from None


VerifiedToken = Annotated[AccessToken, Depends(get_verified_token)]


async def get_read_engine(request: Request, token: VerifiedToken) -> Engine:
    """For a read-only route owning no transaction: the read engine (DATABASE_READ_URL),
    or the primary engine for a bearer who wrote a moment ago (read-your-writes)."""
    return read_routing(request).engine_for(token_reader(token))


ReadEngineDep = Annotated[Engine, Depends(get_read_engine)]


def get_admin_user(user: CurrentUser) -> User:
    if user.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="administrators only")
    return user


AdminUser = Annotated[User, Depends(get_admin_user)]
