"""The anon and service_role API keys: HS256 JWTs signed with SUPABASE_JWT_SECRET.

Their claims are those of Supabase's local stack (`iss` "supabase-demo", `role`, a fixed
`iat` and an `exp` in 2032), and nothing in them varies, so every process that knows the
secret computes the same two keys: nothing has to be stored or handed around.

Behind Supabase's gateway every request carries one of them as `apikey` (a user's
access token is accepted there too); `classify_apikey` is that check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from planwise.config import ConfigError, Settings
from planwise.users.security import sign_jwt, verified_claims

KEY_ISSUER = "supabase-demo"
KEY_ISSUED_AT = 1641769200  # 2022-01-09T23:00:00Z, as Supabase's keys
KEY_EXPIRES_AT = 1983812996  # 2032-11-12T17:09:56Z, as Supabase's local keys

KeyRole = Literal["anon", "service_role"]
ADMIN_ROLES = ("service_role", "supabase_admin")
"""Roles GoTrue's admin API accepts in the bearer token (`GOTRUE_JWT_ADMIN_ROLES`)."""


def jwt_secret(settings: Settings) -> str:
    """SUPABASE_JWT_SECRET, which signs the keys and the local Auth's access tokens."""
    if settings.supabase_jwt_secret is None or not settings.supabase_jwt_secret.get_secret_value():
        raise ConfigError(
            "SUPABASE_JWT_SECRET is not set: `planwise db up` generates one for the managed "
            "cluster; for a Supabase project use its JWT secret (Settings → API)"
        )
    return settings.supabase_jwt_secret.get_secret_value()


def api_key(secret: str, role: KeyRole) -> str:
    """The key of `role`; the same string for the same secret, every time."""
    claims = {"iss": KEY_ISSUER, "role": role, "iat": KEY_ISSUED_AT, "exp": KEY_EXPIRES_AT}
    return sign_jwt(secret, claims)


@dataclass(frozen=True)
class ApiKeys:
    anon: str
    service_role: str


def api_keys(settings: Settings) -> ApiKeys:
    secret = jwt_secret(settings)
    return ApiKeys(api_key(secret, "anon"), api_key(secret, "service_role"))


def classify_apikey(secret: str, apikey: str) -> str | None:
    """The role an `apikey` value stands for (anon, service_role, authenticated…), or None
    when it is not a JWT signed with the project's secret, is expired, or has no role."""
    claims = verified_claims(secret, apikey)
    if claims is None or not isinstance(claims.get("role"), str) or not claims["role"]:
        return None
    role: str = claims["role"]
    return role
