"""Who is calling: the `apikey` header and an optional `Authorization: Bearer <jwt>`.

As behind Supabase's gateway, the bearer token decides when present, else the API key.
Either is an HS256 JWT signed with `SUPABASE_JWT_SECRET`; its `role` claim picks the
database role (anon when absent, as PostgREST's `db-anon-role`), and only `anon`,
`authenticated` and `service_role` are accepted. Failures have PostgREST's PGRST3xx codes.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import jwt

from planwise.config import Settings
from planwise.rest.errors import RestError
from planwise.rest.schemas import Identity
from planwise.users.security import decode_jwt

ROLES = ("anon", "authenticated", "service_role")
CLOCK_SKEW_SECONDS = 30  # PostgREST's allowedSkewSeconds
CACHE_SIZE = 1000


class VerifiedTokens:
    """Tokens whose signature was verified, with their claims (PostgREST's JWT cache).

    Verification is a third of a request's time in the API process; the cache is keyed by
    secret and token, and `exp`/`nbf` are checked again on every hit.
    """

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._claims: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()

    def get(self, secret: str, token: str) -> dict[str, Any] | None:
        with self._lock:
            claims = self._claims.get((secret, token))
            if claims is not None:
                self._claims.move_to_end((secret, token))
        if claims is None:
            return None
        now = time.time()
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if isinstance(exp, int | float) and exp + CLOCK_SKEW_SECONDS < now:
            raise _invalid("PGRST303", "JWT expired")
        if isinstance(nbf, int | float) and nbf - CLOCK_SKEW_SECONDS > now:
            raise _invalid("PGRST303", "JWT not yet valid")
        return claims

    def put(self, secret: str, token: str, claims: dict[str, Any]) -> None:
        with self._lock:
            self._claims[(secret, token)] = claims
            while len(self._claims) > self.size:
                self._claims.popitem(last=False)


verified_tokens = VerifiedTokens()


def _invalid(code: str, message: str, details: str | None = None) -> RestError:
    challenge = f'Bearer error="invalid_token", error_description="{message}"'
    return RestError(401, code, message, details, headers={"WWW-Authenticate": challenge})


def bearer_or_apikey(headers: Mapping[str, str]) -> str | None:
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer":
            return token.strip()
    return headers.get("apikey")


def resolve_identity(settings: Settings, headers: Mapping[str, str]) -> Identity:
    token = bearer_or_apikey(headers)
    if token is None:
        raise RestError(
            401, "PGRST302", "Anonymous access is disabled",
            hint="Send the project's anon key in the apikey header, or a user's access token "
            "as Authorization: Bearer <token>.",
            headers={"WWW-Authenticate": "Bearer"},
        )  # fmt: skip
    if settings.supabase_jwt_secret is None:
        raise RestError(500, "PGRST300", "Server lacks JWT secret")
    if token == "":
        raise _invalid("PGRST301", "Empty JWT is sent in Authorization header")
    parts = token.count(".") + 1
    if parts != 3:
        raise _invalid("PGRST301", f"Expected 3 parts in JWT; got {parts}")
    secret = settings.supabase_jwt_secret.get_secret_value()
    claims = verified_tokens.get(secret, token) or _verify(secret, token)
    role = claims.get("role", "anon")
    if role not in ROLES:
        raise _invalid(
            "PGRST303", "JWT role claim is not allowed",
            f"The role claim must be one of {', '.join(ROLES)}",
        )  # fmt: skip
    return Identity(role=role, claims=claims)


def _verify(secret: str, token: str) -> dict[str, Any]:
    try:
        claims = decode_jwt(token, secret, leeway=CLOCK_SKEW_SECONDS)
    except jwt.ExpiredSignatureError:
        raise _invalid("PGRST303", "JWT expired") from None
    except jwt.ImmatureSignatureError:
        raise _invalid("PGRST303", "JWT not yet valid") from None
    except jwt.InvalidAlgorithmError:
        raise _invalid("PGRST301", "Wrong or unsupported encoding algorithm") from None
    except jwt.InvalidSignatureError:
        raise _invalid("PGRST301", "JWT cryptographic operation failed") from None
    except jwt.InvalidTokenError:
        raise _invalid("PGRST301", "JWT couldn't be decoded") from None
    verified_tokens.put(secret, token, claims)
    return claims
