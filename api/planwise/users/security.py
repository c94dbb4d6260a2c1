"""Password hashing (argon2id via pwdlib) and our access tokens (HS256 JWTs).

Token claims follow Supabase Auth's shape (`sub`, `role`, `aud`, `exp`, `iat`) so the same
clients and policies can read either kind; `role` is the database role a Supabase token
would carry ("authenticated"), while the Planwise role (user/admin) is read from the
`user` row on every request, so a demotion takes effect at once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from pwdlib import PasswordHash

from planwise.config import Settings

AUDIENCE = "authenticated"
ISSUER = "planwise"
ALGORITHM = "HS256"

_hasher = PasswordHash.recommended()
_DUMMY_HASH = _hasher.hash("timing-equaliser")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, hashed: str | None) -> bool:
    """Constant work whether or not the user exists, so timing does not reveal usernames."""
    if hashed is None:
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


def decode_access_token(settings: Settings, token: str) -> int:
    """The user id a valid token names."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            options={"require": ["sub", "exp", "iat", "aud"]},
        )
        return int(claims["sub"])
    except (jwt.PyJWTError, ValueError) as error:
        raise InvalidToken(str(error)) from None
