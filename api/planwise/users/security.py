"""Password hashing (argon2id via pwdlib), our access tokens and the tokens of signed
storage URLs (HS256 JWTs, each kind with its own audience).

Token claims follow Supabase Auth's shape (`sub`, `role`, `aud`, `exp`, `iat`) so the same
clients and policies can read either kind; `role` is the database role a Supabase token
would carry ("authenticated"), while the Planwise role (user/admin) is read from the
`user` row on every request, so a demotion takes effect at once.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from pwdlib import PasswordHash
from pydantic import SecretStr

from planwise.config import Settings

AUDIENCE = "authenticated"
ISSUER = "planwise"
ALGORITHM = "HS256"
OBJECT_DOWNLOAD_AUDIENCE = "planwise:storage:download"
OBJECT_UPLOAD_AUDIENCE = "planwise:storage:upload"
"""Audiences of storage URL tokens: neither is an access token's, so neither passes for one."""

_hasher = PasswordHash.recommended()
_DUMMY_HASH = _hasher.hash("timing-equaliser")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, hashed: str | None) -> bool:
    """Constant work whether or not the user exists, so timing does not reveal usernames.

    Accounts of Supabase Auth users hold no usable hash (they sign in at Supabase).
    """
    if hashed is None or not hashed.startswith("$"):
        _hasher.verify(password, _DUMMY_HASH)
        return False
    return _hasher.verify(password, hashed)


class InvalidToken(Exception):
    """The bearer token is missing, malformed, expired, or signed with another key."""


def create_access_token(settings: Settings, user_id: int, *, now: datetime | None = None) -> str:
    issued = now or datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        "role": AUDIENCE,
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": issued,
        "exp": issued + timedelta(minutes=settings.jwt_expire_minutes),
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)


@dataclass(frozen=True)
class SupabaseIdentity:
    """A Supabase Auth user: `sub` is their uuid; the name is for their first Planwise row."""

    auth_user_id: uuid.UUID
    full_name: str


@dataclass(frozen=True)
class AccessToken:
    """A verified access token: whom it names and until when (seconds since the epoch)."""

    subject: int | SupabaseIdentity
    expires_at: float


def _claims(token: str, secret: SecretStr, *, audience: str | None = AUDIENCE) -> dict[str, Any]:
    """The one place access tokens and API keys are verified (signature, expiry, audience)."""
    claims: dict[str, Any] = jwt.decode(
        token,
        secret.get_secret_value(),
        algorithms=[ALGORITHM],
        audience=audience,
        options=({"verify_aud": False} if audience is None else {"require": ["sub", "exp", "aud"]}),
    )
    return claims


def decode_access_token(settings: Settings, token: str) -> AccessToken:
    """The Planwise user id our token names, or the Supabase user a Supabase token names."""
    try:
        claims = _claims(token, settings.jwt_secret)
        return AccessToken(int(claims["sub"]), float(claims["exp"]))
    except jwt.InvalidSignatureError:
        if settings.supabase_jwt_secret is None:
            raise InvalidToken("signature verification failed") from None
    except (jwt.PyJWTError, ValueError, TypeError) as error:
        raise InvalidToken(str(error)) from None
    try:
        claims = _claims(token, settings.supabase_jwt_secret)
        metadata = claims.get("user_metadata") or {}
        name = metadata.get("full_name") or metadata.get("name") or claims.get("email") or ""
        identity = SupabaseIdentity(uuid.UUID(str(claims["sub"])), str(name))
        return AccessToken(identity, float(claims["exp"]))
    except (jwt.PyJWTError, ValueError, TypeError, AttributeError) as error:
        raise InvalidToken(str(error)) from None


def signed_by_us(settings: Settings, token: str) -> bool:
    """Is this an unexpired JWT of ours or of the Supabase project, of any role (an `apikey`)?"""
    for secret in (settings.jwt_secret, settings.supabase_jwt_secret):
        if secret is None:
            continue
        try:
            _claims(token, secret, audience=None)
        except jwt.PyJWTError:
            continue
        return True
    return False


class ExpiredToken(InvalidToken):
    """Well formed and well signed, but past its `exp`."""


def sign_object_url(settings: Settings, audience: str, claims: dict[str, Any], seconds: int) -> str:
    """The token of a storage URL: `claims` (naming the object as `url`) for `seconds`."""
    now = int(time.time())
    payload = {**claims, "aud": audience, "iat": now, "exp": now + seconds}
    return jwt.encode(payload, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)


def verify_object_url(settings: Settings, audience: str, token: str) -> dict[str, Any]:
    """The claims of a storage URL's token for `audience`; `ExpiredToken` or `InvalidToken`."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[ALGORITHM],
            audience=audience,
            options={"require": ["exp", "url", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise ExpiredToken("jwt expired") from None
    except jwt.PyJWTError as error:
        raise InvalidToken(str(error)) from None
    return claims
