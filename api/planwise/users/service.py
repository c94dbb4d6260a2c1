"""Accounts. Services take the request's session and never commit."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import errors as pg_errors
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from planwise.config import Settings
from planwise.users.models import User
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
    return isinstance(error.orig, pg_errors.UniqueViolation)


def register(session: Session, data: UserRegister) -> User:
    """Create a plain user through the SECURITY DEFINER function (no acting user yet)."""
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


def user_for_supabase(session: Session, identity: SupabaseIdentity) -> int:
    """The Planwise user of a Supabase Auth user, created on first sight."""
    user_id: int = session.execute(
        text("SELECT planwise_user_for_auth_id(:auth_user_id, :full_name)"),
        {"auth_user_id": identity.auth_user_id, "full_name": identity.full_name},
    ).scalar_one()
    return user_id


def resolve_bearer(session: Session, settings: Settings, token: str | None) -> Bearer:
    """The one way from a bearer token (ours or Supabase's) to the acting user.

    Makes RLS see that user for the rest of the session's transaction (`act_as`, one round
    trip; two for a Supabase user seen for the first time). Raises a `TokenRefused`.
    """
    if not token:
        raise MissingToken("not authenticated: send Authorization: Bearer <token>")
    try:
        access = decode_access_token(settings, token)
    except InvalidToken as error:
        raise BadToken(str(error)) from None
    subject = access.subject
    user_id = subject if isinstance(subject, int) else user_for_supabase(session, subject)
    user = act_as(session, user_id)
    if user is None:
        raise UnknownUser("the token's user no longer exists")
    if not user.is_active:
        raise DeactivatedUser("account is deactivated")
    return Bearer(user, access.expires_at)


def resolve_caller(session: Session, settings: Settings, token: str | None) -> Caller:
    """As `resolve_bearer`, where Supabase's API keys are callers too (storage, realtime)."""
    role = api_key_role(settings, token) if token else None
    if role is not None:
        return KeyHolder(role)
    return resolve_bearer(session, settings, token)
