"""Who is calling: the `apikey` header and an optional `Authorization: Bearer <jwt>`.

As behind Supabase's gateway, the bearer token decides when present, else the API key.
Either is an HS256 JWT signed with `SUPABASE_JWT_SECRET`; its `role` claim picks the
database role (anon when absent, as PostgREST's `db-anon-role`), and only `anon`,
`authenticated` and `service_role` are accepted. Failures have PostgREST's PGRST3xx codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jwt

from planwise.config import Settings
from planwise.rest.errors import RestError
from planwise.rest.schemas import Identity

ROLES = ("anon", "authenticated", "service_role")
CLOCK_SKEW_SECONDS = 30  # PostgREST's allowedSkewSeconds


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
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            settings.supabase_jwt_secret.get_secret_value(),
            algorithms=["HS256"],
            leeway=CLOCK_SKEW_SECONDS,
            options={"verify_aud": False, "require": []},
        )
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
    role = claims.get("role", "anon")
    if role not in ROLES:
        raise _invalid(
            "PGRST303", "JWT role claim is not allowed",
            f"The role claim must be one of {', '.join(ROLES)}",
        )  # fmt: skip
    return Identity(role=role, claims=claims)
