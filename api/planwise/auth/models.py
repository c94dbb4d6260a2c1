"""GoTrue's objects as the `auth` tables hold them and its API returns them.

The tables themselves (`auth.users`, `auth.identities`, `auth.sessions`,
`auth.refresh_tokens`) are GoTrue's, created by migration d4e5f6a7b8c9 only in the local
stand-in `auth` schema, and read and written only through that migration's SECURITY
DEFINER functions. They are not in Planwise's SQLModel metadata, like storage's: the
drift check compares the `public` schema, and on a Supabase project these tables are
Supabase's, in whatever version it runs. The models below are the JSON those functions
return (GoTrue's `internal/models/user.go` and `identity.go` field for field), used to
document the API; the functions build the JSON, so nothing is lost in a round trip.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Identity(BaseModel):
    """A row of `auth.identities` as GoTrue shows it (`id` is the provider's user id)."""

    model_config = ConfigDict(extra="allow")

    identity_id: str
    id: str
    user_id: str
    identity_data: dict[str, Any]
    provider: str
    email: str | None = None
    last_sign_in_at: str | None = None
    created_at: str
    updated_at: str


class AuthUser(BaseModel):
    """A row of `auth.users` as GoTrue shows it; optional fields appear only when set."""

    model_config = ConfigDict(extra="allow")

    id: str
    aud: str
    role: str
    email: str
    phone: str
    app_metadata: dict[str, Any]
    user_metadata: dict[str, Any]
    identities: list[Identity]
    created_at: str
    updated_at: str
    is_anonymous: bool
    email_confirmed_at: str | None = None
    phone_confirmed_at: str | None = None
    confirmed_at: str | None = None
    last_sign_in_at: str | None = None
    banned_until: str | None = None
    deleted_at: str | None = None


class Session(BaseModel):
    """A token answer: GoTrue's AccessTokenResponse."""

    access_token: str
    token_type: str
    expires_in: int
    expires_at: int
    refresh_token: str
    user: AuthUser


class UserList(BaseModel):
    """`GET /admin/users`: one page, newest first (headers: X-Total-Count, Link)."""

    users: list[AuthUser]
    aud: str


class ExternalProviders(BaseModel):
    model_config = ConfigDict(extra="allow")

    email: bool
    phone: bool


class AuthSettings(BaseModel):
    """`GET /settings`: what this Auth offers (GoTrue's Settings)."""

    model_config = ConfigDict(extra="allow")

    external: ExternalProviders
    disable_signup: bool
    mailer_autoconfirm: bool
    phone_autoconfirm: bool
    sms_provider: str
    saml_enabled: bool


class Health(BaseModel):
    version: str
    name: str
    description: str


class AuthErrorBody(BaseModel):
    """Every error shape a Supabase client may get here.

    GoTrue's: `{code: <HTTP status>, error_code, msg}`, or `{code: <error code>, message}`
    when the request asks for API version 2024-01-01 or later (supabase-js and
    supabase-py do); `weak_password: {reasons}` with weak_password errors; OAuth's
    `{error, error_description}` for a missing refresh token. The gateway's, for a
    missing or invalid `apikey`: `{message, hint}`.
    """

    model_config = ConfigDict(extra="allow")

    code: int | str | None = None
    error_code: str | None = None
    msg: str | None = None
    message: str | None = None
    hint: str | None = None
    error: str | None = None
    error_description: str | None = None
    weak_password: dict[str, Any] | None = None
