"""Request bodies of `/auth/v1`, as supabase-js and supabase-py send them.

Unknown fields are ignored, as GoTrue's JSON decoding ignores them. Strings must be
storable by PostgreSQL (no NUL); lengths and formats are checked by the service so the
answers carry GoTrue's messages and codes.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from planwise.validation import DbStr


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SignupBody(Body):
    email: DbStr | None = None
    phone: DbStr | None = None
    password: DbStr | None = None
    data: dict[str, Any] | None = None


class TokenBody(Body):
    """`POST /token`: the fields of both grants; `grant_type` says which apply."""

    email: DbStr | None = None
    phone: DbStr | None = None
    password: DbStr | None = None
    refresh_token: DbStr | None = None


class UserUpdateBody(Body):
    email: DbStr | None = None
    phone: DbStr | None = None
    password: DbStr | None = None
    data: dict[str, Any] | None = None
    app_metadata: dict[str, Any] | None = None
    nonce: DbStr | None = None


class AdminUserBody(Body):
    """`POST /admin/users` and `PUT /admin/users/{id}` (GoTrue's AdminUserParams)."""

    id: DbStr | None = None
    email: DbStr | None = None
    phone: DbStr | None = None
    password: DbStr | None = None
    password_hash: DbStr | None = None
    email_confirm: bool = False
    phone_confirm: bool = False
    user_metadata: dict[str, Any] | None = None
    app_metadata: dict[str, Any] | None = None
    role: DbStr | None = None
    ban_duration: DbStr | None = None


class AdminDeleteBody(Body):
    should_soft_delete: bool = False
