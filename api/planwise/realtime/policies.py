"""Private channels: RLS policies on `realtime.messages` decide, as on Supabase Realtime.

As Supabase's `Realtime.Tenants.Authorization` does, in one transaction that is rolled
back: probe rows for the topic (extension `broadcast` and `presence`) are inserted as
`service_role`; then, as the caller's role with `request.jwt.claims`,
`request.jwt.claim.sub`, `request.jwt.claim.role` and `realtime.topic` set, the rows the
caller can SELECT say what it may read, and an INSERT of its own (in a savepoint) what it
may write. So a policy such as

    create policy "members read" on realtime.messages for select to authenticated
    using (realtime.topic() = 'room:' || auth.uid() and extension = 'broadcast');

works unchanged on both stacks. Planwise's own tokens carry no Supabase `sub`: the claims
name the user's `auth_user_id` when there is one, and `app.user_id` is set as for every
Planwise request, so a policy may use either identity.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

EXTENSIONS = ("broadcast", "presence")
INSUFFICIENT_PRIVILEGE = "42501"


@dataclass(frozen=True)
class Identity:
    """Who a channel acts as in the database."""

    role: str  # anon | authenticated | service_role
    claims: dict[str, Any]
    user_id: int | None


@dataclass(frozen=True)
class Policies:
    broadcast_read: bool
    broadcast_write: bool
    presence_read: bool
    presence_write: bool


ALL = Policies(True, True, True, True)

SET_CONTEXT = text(
    """
    SELECT set_config('role', :role, true), set_config('realtime.topic', :topic, true),
           set_config('request.jwt.claims', :claims, true),
           set_config('request.jwt.claim.sub', :sub, true),
           set_config('request.jwt.claim.role', :role, true),
           set_config('app.user_id', :user_id, true)
    """
)


def authorize(engine: Engine, identity: Identity, topic: str) -> Policies:
    """What `identity` may do on the private channel `topic` (the name without
    `realtime:`). service_role may do everything, as it bypasses RLS on Supabase."""
    if identity.role == "service_role":
        return ALL
    probes = {extension: uuid.uuid4() for extension in EXTENSIONS}
    context = {
        "role": identity.role,
        "topic": topic,
        "claims": orjson.dumps(identity.claims).decode(),
        "sub": str(identity.claims.get("sub") or ""),
        "user_id": "" if identity.user_id is None else str(identity.user_id),
    }
    write: dict[str, bool] = {}
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            connection.execute(text("SET LOCAL ROLE service_role"))
            connection.execute(
                text(
                    "INSERT INTO realtime.messages (id, topic, extension) "
                    "VALUES (:b, :topic, 'broadcast'), (:p, :topic, 'presence')"
                ),
                {"b": probes["broadcast"], "p": probes["presence"], "topic": topic},
            )
            connection.execute(SET_CONTEXT, context)
            visible = {
                row.id
                for row in connection.execute(
                    text("SELECT id FROM realtime.messages WHERE id = ANY(:ids)"),
                    {"ids": list(probes.values())},
                )
            }
            for extension in EXTENSIONS:
                savepoint = connection.begin_nested()
                try:
                    connection.execute(
                        text(
                            "INSERT INTO realtime.messages (topic, extension) "
                            "VALUES (:topic, :extension)"
                        ),
                        {"topic": topic, "extension": extension},
                    )
                    write[extension] = True
                except DBAPIError as error:
                    if getattr(error.orig, "sqlstate", None) != INSUFFICIENT_PRIVILEGE:
                        raise
                    write[extension] = False
                savepoint.rollback()
        finally:
            transaction.rollback()
    return Policies(
        broadcast_read=probes["broadcast"] in visible,
        broadcast_write=write["broadcast"],
        presence_read=probes["presence"] in visible,
        presence_write=write["presence"],
    )
