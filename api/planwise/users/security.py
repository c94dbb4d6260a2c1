"""Password hashing (argon2id via pwdlib), our access tokens and the tokens of signed
storage URLs (HS256 JWTs, each kind with its own audience).

Token claims follow Supabase Auth's shape (`sub`, `role`, `aud`, `exp`, `iat`) so the same
clients and policies can read either kind; `role` is the database role a Supabase token
would carry ("authenticated"), while the Planwise role (user/admin) is read from the
`user` row on every request, so a demotion takes effect at once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Literal

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


@cache
def _dummy_hash() -> str:
    """Made on first use, not at import: every `planwise` command imports this module."""
    return _hasher.hash("timing-equaliser")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, hashed: str | None) -> bool:
    """Constant work whether or not the user exists, so timing does not reveal usernames.

    Accounts of Supabase Auth users hold no usable hash (they sign in at Supabase).
    """
    if hashed is None or not hashed.startswith("$"):
        _hasher.verify(password, _dummy_hash())
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
    return sign_jwt(settings.jwt_secret.get_secret_value(), claims)


def sign_jwt(secret: str, claims: Mapping[str, Any]) -> str:
    """Every token this project issues is an HS256 JWT signed here."""
    return jwt.encode(dict(claims), secret, algorithm=ALGORITHM)


def decode_jwt(
    token: str,
    secret: str,
    *,
    audience: str | None = None,
    require: Sequence[str] = (),
    leeway: float = 0,
) -> dict[str, Any]:
    """The one place a JWT is verified: HS256 signature, expiry (and `nbf`), and the
    audience when one is given. Raises PyJWT's errors, which callers map to their shape."""
    claims: dict[str, Any] = jwt.decode(
        token,
        secret,
        algorithms=[ALGORITHM],
        audience=audience,
        leeway=leeway,
        options={"verify_aud": audience is not None, "require": list(require)},
    )
    return claims


def verified_claims(secret: str, token: str) -> dict[str, Any] | None:
    """The claims of a JWT signed with `secret` and not expired, of any audience, else None
    (Supabase's API keys have no audience; user tokens have "authenticated")."""
    try:
        return decode_jwt(token, secret)
    except jwt.PyJWTError:
        return None


@dataclass(frozen=True)
class SupabaseIdentity:
    """A Supabase Auth user: `sub` is their uuid; the name is for their first Planwise row."""

    auth_user_id: uuid.UUID
    full_name: str


@dataclass(frozen=True)
class AccessToken:
    """A verified access token: whom it names, until when (seconds since the epoch), when
    it was issued (`iat`, 0 when absent) and the Auth session it belongs to (GoTrue's
    `session_id`), so that a password change or a logout can end it."""

    subject: int | SupabaseIdentity
    expires_at: float
    issued_at: int = 0
    session_id: uuid.UUID | None = None


MAX_USER_ID = 2**31 - 1
"""`user.id` is a SERIAL (int4): a larger `sub` names nobody."""


def _access_claims(token: str, secret: SecretStr) -> dict[str, Any]:
    return decode_jwt(
        token, secret.get_secret_value(), audience=AUDIENCE, require=("sub", "exp", "aud")
    )


def _planwise_user_id(subject: object) -> int | None:
    text = str(subject)
    if not text.isascii() or not text.isdigit():
        return None
    user_id = int(text)
    return user_id if 1 <= user_id <= MAX_USER_ID else None


def _supabase_identity(claims: dict[str, Any]) -> SupabaseIdentity:
    metadata = claims.get("user_metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    name = metadata.get("full_name") or metadata.get("name") or claims.get("email") or ""
    # Only a label for the first row: never a reason to fail (PostgreSQL refuses NUL).
    label = str(name).replace("\x00", "")[:100]
    return SupabaseIdentity(uuid.UUID(str(claims["sub"])), label)


MAX_ISSUED_AT = 2**62
"""Bound of `iat` as the database receives it (a bigint)."""


def issued_at(claims: Mapping[str, Any]) -> int:
    """`iat` in whole seconds, 0 when absent or not a number, within a bigint (PyJWT lets
    through any number that is not in the future, -1e300 too)."""
    issued = claims.get("iat", 0)
    if isinstance(issued, bool) or not isinstance(issued, int | float):
        return 0
    return max(0, min(int(issued), MAX_ISSUED_AT))


def _session_id(claims: dict[str, Any]) -> uuid.UUID | None:
    session = claims.get("session_id")
    return None if session is None else uuid.UUID(str(session))


VERIFIED_TOKENS_KEPT = 10_000
"""Verified access tokens remembered per process (a few MB at most)."""
_verified: dict[tuple[str, str, str | None], AccessToken] = {}
_verified_lock = threading.Lock()


def decode_access_token(settings: Settings, token: str) -> AccessToken:
    """The Planwise user id our token names, or the Supabase user a Supabase token names.

    Ours carry a numeric `sub`, Supabase's a uuid, so the two are told apart even when
    JWT_SECRET and SUPABASE_JWT_SECRET are the same key.

    A token verified once is remembered by its exact text and the keys that verified it,
    until its `exp`: the same bytes under the same keys verify the same way, and PyJWT's
    decoding costs about 0.2 ms a request. Only expiry changes with time, and is checked
    on every use (valid while `exp` is later than now, as PyJWT has it). Whether the
    token's user may act (gone, deactivated, ended by a password change or a logout) is
    the database's answer on every request, never remembered here."""
    jwt_secret = settings.jwt_secret.get_secret_value()
    supabase_secret = settings.supabase_jwt_secret
    key = (token, jwt_secret, supabase_secret.get_secret_value() if supabase_secret else None)
    known = _verified.get(key)
    if known is not None and known.expires_at > time.time():
        return known
    access = _decode_access_token(settings, token)
    with _verified_lock:  # API worker threads verify too
        if len(_verified) >= VERIFIED_TOKENS_KEPT:
            now = time.time()
            for stale in [k for k, seen in _verified.items() if seen.expires_at <= now]:
                del _verified[stale]
            while len(_verified) >= VERIFIED_TOKENS_KEPT:  # the oldest first
                del _verified[next(iter(_verified))]
        _verified[key] = access
    return access


def _decode_access_token(settings: Settings, token: str) -> AccessToken:
    supabase_secret = settings.supabase_jwt_secret
    try:
        claims = _access_claims(token, settings.jwt_secret)
    except jwt.InvalidSignatureError:
        if supabase_secret is None:
            raise InvalidToken("signature verification failed") from None
        claims = None
    except jwt.PyJWTError as error:
        raise InvalidToken(str(error)) from None
    if claims is not None:
        user_id = _planwise_user_id(claims["sub"])
        if user_id is not None:
            return AccessToken(user_id, float(claims["exp"]), issued_at(claims))
        if supabase_secret is None or supabase_secret != settings.jwt_secret:
            raise InvalidToken("the token's sub names no Planwise user")
    else:
        assert supabase_secret is not None
        try:
            claims = _access_claims(token, supabase_secret)
        except jwt.PyJWTError as error:
            raise InvalidToken(str(error)) from None
    try:
        identity = _supabase_identity(claims)
    except (ValueError, TypeError) as error:
        raise InvalidToken(f"the token's sub is not a Supabase user id: {error}") from None
    try:
        session_id = _session_id(claims)
    except (ValueError, TypeError) as error:
        raise InvalidToken(f"the token's session_id is not a uuid: {error}") from None
    return AccessToken(identity, float(claims["exp"]), issued_at(claims), session_id)


API_KEY_ROLES = ("anon", "service_role")
ApiKeyRole = Literal["anon", "service_role"]


def api_key_role(settings: Settings, token: str) -> ApiKeyRole | None:
    """`anon` or `service_role` when `token` is one of the Supabase project's API keys (a JWT
    of SUPABASE_JWT_SECRET with that `role` and no `sub`), else None."""
    secret = settings.supabase_jwt_secret
    claims = verified_claims(secret.get_secret_value(), token) if secret else None
    if claims is None or "sub" in claims:
        return None
    role = claims.get("role")
    return "anon" if role == "anon" else "service_role" if role == "service_role" else None


def signed_by_us(settings: Settings, token: str) -> bool:
    """Is this an unexpired JWT of ours or of the Supabase project, of any role (an `apikey`)?"""
    secrets = (settings.jwt_secret, settings.supabase_jwt_secret)
    return any(
        secret is not None and verified_claims(secret.get_secret_value(), token) is not None
        for secret in secrets
    )


class ExpiredToken(InvalidToken):
    """Well formed and well signed, but past its `exp`."""


def sign_object_url(settings: Settings, audience: str, claims: dict[str, Any], seconds: int) -> str:
    """The token of a storage URL: `claims` (naming the object as `url`) for `seconds`."""
    now = int(time.time())
    payload = {**claims, "aud": audience, "iat": now, "exp": now + seconds}
    return sign_jwt(settings.jwt_secret.get_secret_value(), payload)


def verify_object_url(settings: Settings, audience: str, token: str) -> dict[str, Any]:
    """The claims of a storage URL's token for `audience`; `ExpiredToken` or `InvalidToken`."""
    try:
        claims = decode_jwt(
            token,
            settings.jwt_secret.get_secret_value(),
            audience=audience,
            require=("exp", "url", "aud"),
        )
    except jwt.ExpiredSignatureError:
        raise ExpiredToken("jwt expired") from None
    except jwt.PyJWTError as error:
        raise InvalidToken(str(error)) from None
    return claims
