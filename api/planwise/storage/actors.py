"""Who acts in a storage request: a signed-in user, or one of the project's API keys.

As on Supabase: a user's token makes RLS see that user; the service_role key runs the
transaction as `service_role`, which bypasses RLS (it administers buckets and reaches every
object); the anon key acts as nobody, so only public buckets can be read.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import text
from sqlmodel import Session

from planwise.storage.errors import forbidden
from planwise.users.service import Caller, KeyHolder, act_for_token

SERVICE_ROLE: Literal["service_role"] = "service_role"
AS_SERVICE_ROLE = text("SET LOCAL ROLE service_role")


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    role: Literal["authenticated", "anon", "service_role"]
    auth_user_id: uuid.UUID | None = None
    """The user's Supabase Auth uuid, if any: a folder of theirs, as their id is."""

    @property
    def folders(self) -> tuple[str, ...]:
        """The top-level folders this user may write in a private bucket."""
        mine = (self.user_id, self.auth_user_id)
        return tuple(str(folder) for folder in mine if folder is not None)

    @property
    def is_service(self) -> bool:
        return self.role == SERVICE_ROLE

    def owns_or_administers(self, owner: int | None) -> bool:
        """May this actor change an object whose owner is `owner` (RLS aside)?"""
        return self.is_service or (self.user_id is not None and owner == self.user_id)


def act(session: Session, caller: Caller) -> Actor:
    """Make the transaction act as `caller` (resolved already: a user acts through
    `resolve_bearer`, which set `app.user_id`)."""
    if isinstance(caller, KeyHolder):
        if caller.role == SERVICE_ROLE:
            session.execute(AS_SERVICE_ROLE)
        return Actor(None, caller.role)
    return Actor(caller.user_id, "authenticated", caller.user.auth_user_id)


def act_as_signer(session: Session, signer: object, role: object, issued_at: int) -> Actor:
    """Act as whoever signed a storage URL: a user, or an API key (ValueError if neither).

    A user's URL is refused (a `TokenRefused`) once they are deactivated or gone, or when
    it was signed before their password last changed, as their bearer token would be."""
    if role == SERVICE_ROLE:
        session.execute(AS_SERVICE_ROLE)
        return Actor(None, SERVICE_ROLE)
    if role == "anon":
        return Actor(None, "anon")
    if isinstance(signer, bool) or not isinstance(signer, int):
        raise ValueError("a signed URL names its signer")
    user = act_for_token(session, signer, issued_at)
    return Actor(signer, "authenticated", user.auth_user_id)


OUTSIDE_OWN_FOLDER = "new row violates row-level security policy"
"""What Supabase answers when its folder policy refuses a name (the RLS check's words)."""


def check_own_folder(actor: Actor, public: bool, name: str) -> None:
    """In a private bucket a user writes only under a folder of theirs (`<user id>/…` or
    `<auth uuid>/…`, Supabase's documented policy), so a name of someone else is refused
    alike whether it is taken or free: no answer tells that another's object exists."""
    if public or actor.is_service or actor.user_id is None:
        return  # public objects are readable anyway; anon writes nothing (RLS)
    if name.split("/", 1)[0] not in actor.folders:
        raise forbidden(OUTSIDE_OWN_FOLDER)
