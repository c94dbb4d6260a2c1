"""Accounts. Services take the request's session and never commit."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg import errors as pg_errors
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session

from planwise.config import Settings
from planwise.users.models import INTERNAL_USERNAME_PATTERN, User
from planwise.users.schemas import UserRegister, UserUpdate
from planwise.users.security import (
    ApiKeyRole,
    InvalidToken,
    SupabaseIdentity,
    api_key_role,
    decode_access_token,
    hash_password,
    verify_password,
)

INTERNAL_USERNAME = re.compile(INTERNAL_USERNAME_PATTERN)


class UsernameTaken(Exception):
    """Another account already has this username."""


class AccountDisabled(Exception):
    """The credentials are right but the account is deactivated."""


class TokenRefused(Exception):
    """The bearer may not act: `str(error)` says why. Each surface answers in its own shape."""


class MissingToken(TokenRefused):
    """No bearer token was sent."""


class BadToken(TokenRefused):
    """Malformed, expired, or signed with a key we do not know; `str()` is the decoder's why."""


class UnknownUser(TokenRefused):
    """The token is valid but its user no longer exists."""


class DeactivatedUser(TokenRefused):
    """The token's user exists but is deactivated."""


class RevokedToken(TokenRefused):
    """Issued before the user's password changed, or its Auth session has ended."""


class NoUsernameLeft(TokenRefused):
    """A Supabase user seen for the first time for whom no username could be found."""


@dataclass(frozen=True)
class Bearer:
    """The acting user of this transaction (RLS sees them) and when their token expires."""

    user: User
    expires_at: float

    @property
    def user_id(self) -> int:
        assert self.user.id is not None  # a row read back from the database
        return self.user.id


@dataclass(frozen=True)
class KeyHolder:
    """A request made with the project's anon or service_role API key alone: no user acts;
    the key's database role decides (service_role bypasses RLS, anon sees what is public)."""

    role: ApiKeyRole


Caller = Bearer | KeyHolder


@dataclass(frozen=True)
class LoginRecord:
    id: int
    hashed_password: str
    role: str
    is_active: bool


def _is_unique_violation(error: IntegrityError) -> bool:
    """A taken username, or one reserved for a Supabase user (`ck_user_internal_username`)."""
    return isinstance(error.orig, pg_errors.UniqueViolation | pg_errors.CheckViolation)


def is_internal_username(username: str) -> bool:
    """Shaped like the names Supabase users' rows get on first sight: reserved for them."""
    return INTERNAL_USERNAME.fullmatch(username) is not None


def register(session: Session, data: UserRegister) -> User:
    """Create a plain user through the SECURITY DEFINER function (no acting user yet)."""
    if is_internal_username(data.username):
        raise UsernameTaken(data.username)
    try:
        with session.begin_nested():
            user_id = session.execute(
                text("SELECT planwise_register_user(:username, :hashed, :full_name)"),
                {
                    "username": data.username,
                    "hashed": hash_password(data.password),
                    "full_name": data.full_name,
                },
            ).scalar_one()
    except IntegrityError as error:
        if _is_unique_violation(error):
            raise UsernameTaken(data.username) from None
        raise
    user = act_as(session, user_id)
    assert user is not None
    return user


ACT_AS = select(User).from_statement(text("SELECT * FROM planwise_begin_request(:user_id)"))


def act_as(session: Session, user_id: int) -> User | None:
    """Make RLS see `user_id` for the rest of the transaction (as `set_acting_user`) and
    return their row, in one round trip (`planwise_begin_request`, migration b2c3d4e5f6a7).
    None when no such user exists."""
    return session.execute(ACT_AS, {"user_id": int(user_id)}).scalar_one_or_none()


def authenticate(session: Session, username: str, password: str) -> LoginRecord | None:
    """The login record when the password matches; raises AccountDisabled if inactive."""
    row = session.execute(
        text("SELECT id, hashed_password, role, is_active FROM planwise_find_login(:username)"),
        {"username": username},
    ).first()
    record = LoginRecord(*row) if row else None
    if not verify_password(password, record.hashed_password if record else None):
        return None
    assert record is not None
    if not record.is_active:
        raise AccountDisabled(username)
    return record


def update_profile(session: Session, user: User, data: UserUpdate) -> User:
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    username = changes.get("username")
    if username is not None and username != user.username and is_internal_username(username):
        raise UsernameTaken(username)
    if "password" in changes:
        user.hashed_password = hash_password(changes.pop("password"))
    for field, value in changes.items():
        setattr(user, field, value)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as error:
        if _is_unique_violation(error):
            raise UsernameTaken(str(changes.get("username"))) from None
        raise
    return user


def delete_account(session: Session, user: User) -> None:
    """Delete the user; the schema's ON DELETE CASCADE removes their reviews and preferences."""
    session.delete(user)
    session.flush()


RESOLVE_TOKEN = select(User).from_statement(
    text(
        "SELECT * FROM planwise_resolve_token("
        ":user_id, :auth_user_id, :full_name, :issued_at, :session_id)"
    )
)
REFUSALS: dict[str, type[TokenRefused]] = {
    "PWU01": UnknownUser,
    "PWU02": DeactivatedUser,
    "PWU03": RevokedToken,
    "PWU04": NoUsernameLeft,
}
"""SQLSTATEs of `planwise_resolve_token` (migration d0e1f2a3b4c5), as typed refusals."""


def token_parameters(
    subject: int | SupabaseIdentity, issued_at: int, session_id: uuid.UUID | None
) -> dict[str, Any]:
    """The bind parameters of `planwise_resolve_token` (and `planwise_recommend_for`)."""
    if isinstance(subject, int):
        identity: dict[str, Any] = {"user_id": subject, "auth_user_id": None, "full_name": None}
    else:
        identity = {
            "user_id": None,
            "auth_user_id": subject.auth_user_id,
            "full_name": subject.full_name,
        }
    return {**identity, "issued_at": issued_at, "session_id": session_id}


def act_for_token(
    session: Session,
    subject: int | SupabaseIdentity,
    issued_at: int,
    session_id: uuid.UUID | None = None,
) -> User:
    """Make RLS see the user a verified token names and return their row, in one round
    trip that also refuses a user gone or deactivated, and a token issued before the last
    password change or whose Auth session has ended (`planwise_resolve_token`). A
    Supabase user's row is made on first sight. Raises a `TokenRefused`."""
    params = token_parameters(subject, issued_at, session_id)
    try:
        user: User = session.execute(RESOLVE_TOKEN, params).scalar_one()
    except DBAPIError as error:
        raise_token_refusal(error)
        raise
    return user


def raise_token_refusal(error: DBAPIError | pg_errors.Error) -> None:
    """`planwise_resolve_token`'s refusals (also raised inside `planwise_recommend_for`),
    as SQLAlchemy or psycopg raised them, as the typed `TokenRefused`; anything else
    returns, for the caller to re-raise."""
    orig = error.orig if isinstance(error, DBAPIError) else error
    refusal = REFUSALS.get(str(getattr(orig, "sqlstate", "")))
    if refusal is not None:
        diag = getattr(orig, "diag", None)
        raise refusal(str(getattr(diag, "message_primary", "") or refusal.__doc__)) from None


def resolve_bearer(session: Session, settings: Settings, token: str | None) -> Bearer:
    """The one way from a bearer token (ours or Supabase's) to the acting user.

    Makes RLS see that user for the rest of the session's transaction (`act_for_token`,
    one round trip). Raises a `TokenRefused`.
    """
    if not token:
        raise MissingToken("not authenticated: send Authorization: Bearer <token>")
    try:
        access = decode_access_token(settings, token)
    except InvalidToken as error:
        raise BadToken(str(error)) from None
    user = act_for_token(session, access.subject, access.issued_at, access.session_id)
    return Bearer(user, access.expires_at)


def resolve_caller(session: Session, settings: Settings, token: str | None) -> Caller:
    """As `resolve_bearer`, where Supabase's API keys are callers too (storage, realtime)."""
    role = api_key_role(settings, token) if token else None
    if role is not None:
        return KeyHolder(role)
    return resolve_bearer(session, settings, token)
