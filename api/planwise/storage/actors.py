"""Who acts in a storage request: a signed-in user, or one of the project's API keys.

As on Supabase: a user's token makes RLS see that user; the service_role key runs the
transaction as `service_role`, which bypasses RLS (it administers buckets and reaches every
object); the anon key acts as nobody, so only public buckets can be read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import text
from sqlmodel import Session

from planwise.users.service import Caller, KeyHolder, act_for_token

SERVICE_ROLE: Literal["service_role"] = "service_role"
AS_SERVICE_ROLE = text("SET LOCAL ROLE service_role")


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    role: Literal["authenticated", "anon", "service_role"]

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
    return Actor(caller.user_id, "authenticated")


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
    act_for_token(session, signer, issued_at)
    return Actor(signer, "authenticated")
