"""Broadcast, presence and private channels, as Supabase Realtime runs them.

A join's `config` carries `broadcast: {self, ack}`, `presence: {key, enabled}` and
`private`. A private channel is joined only when the RLS policies on `realtime.messages`
let the caller read its broadcasts (`policies.py`); sending and tracking need the write
policies. Every broadcast and presence change goes through PostgreSQL (`bus.py`), so the
subscribers of every API process receive it, the sender's own process included.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from planwise.realtime import bus, policies
from planwise.realtime.bus import bus_topic
from planwise.realtime.hub import Channel, Reader
from planwise.realtime.policies import Identity
from planwise.realtime.protocol import TOPIC_PREFIX, Frame, error_reply, reply
from planwise.users.service import Caller, KeyHolder

if TYPE_CHECKING:
    from planwise.realtime.service import Realtime

MAX_PAYLOAD_BYTES = 256 * 1024  # Supabase's default per-message limit
UNAVAILABLE = "database unavailable; retry shortly"


@dataclass(frozen=True)
class Subscriber:
    """Whom a channel reads as, until when its token lets it, and its database identity."""

    reader: Reader
    expires_at: float | None
    identity: Identity


def identity_of(caller: Caller, token: str) -> Identity:
    """The role and claims policies on `realtime.messages` see (see `policies.py`)."""
    if isinstance(caller, KeyHolder):
        return Identity(caller.role, {"role": caller.role}, None)
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    if not _is_uuid(claims.get("sub")):  # a Planwise token: its sub is our integer id
        auth_id = caller.user.auth_user_id
        claims = {"role": "authenticated", "aud": "authenticated", "exp": claims.get("exp")}
        if auth_id is not None:
            claims["sub"] = str(auth_id)
    return Identity("authenticated", claims, caller.user_id)


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def subscriber(caller: Caller, token: str) -> Subscriber:
    identity = identity_of(caller, token)
    if isinstance(caller, KeyHolder):
        return Subscriber(caller.role, None, identity)  # the keys outlive any channel
    return Subscriber(caller.user_id, caller.expires_at, identity)


def _flag(section: object, name: str) -> bool:
    return isinstance(section, dict) and section.get(name) is True


async def configure(
    realtime: Realtime, channel: Channel, config: dict[str, Any], caller: Subscriber
) -> str | None:
    """Apply a join's broadcast/presence/private config; the reason when refused."""
    broadcast, presence = config.get("broadcast"), config.get("presence")
    private = config.get("private") is True
    subtopic = channel.topic.removeprefix(TOPIC_PREFIX)
    channel.identity = caller.identity
    channel.private = private
    channel.bus_topic = bus_topic(subtopic, private)
    channel.self_broadcast = _flag(broadcast, "self")
    channel.ack_broadcast = _flag(broadcast, "ack")
    channel.presence_enabled = _flag(presence, "enabled")
    key = presence.get("key") if isinstance(presence, dict) else None
    channel.presence_key = key if isinstance(key, str) and key else str(uuid.uuid1())
    return await authorize(realtime, channel) if private else None


async def authorize(realtime: Realtime, channel: Channel) -> str | None:
    """A private channel's policies, read (again) at join and when its token changes; the
    reason when it may not read the topic."""
    subtopic = channel.topic.removeprefix(TOPIC_PREFIX)
    assert channel.identity is not None
    try:
        allowed = await asyncio.to_thread(
            policies.authorize, realtime.engine, channel.identity, subtopic
        )
    except (DBAPIError, PoolTimeout, OSError):
        return UNAVAILABLE
    if not allowed.broadcast_read:
        return (
            "Unauthorized: You do not have permissions to read from this Channel topic: " + subtopic
        )
    channel.presence_read = allowed.presence_read
    channel.broadcast_write = allowed.broadcast_write
    channel.presence_write = allowed.presence_write
    return None


async def joined(realtime: Realtime, channel: Channel) -> None:
    """After the join reply: the topic's presences, when the channel asked for them."""
    if channel.presence_enabled and channel.presence_read:
        state = await asyncio.to_thread(bus.presence_state, realtime.engine, channel.bus_topic)
        channel.outbox.send(Frame(channel.topic, "presence_state", state))


def _size(frame: Frame) -> int:
    return len(frame.binary or b"") + len(bus.dumps(frame.payload.get("payload")))


async def broadcast(realtime: Realtime, channel: Channel, frame: Frame) -> None:
    """A client's broadcast: to every subscriber of the topic (itself only with `self`);
    with `ack`, replied to once the database has it."""
    event = frame.payload.get("event")
    if not isinstance(event, str):
        channel.outbox.send(error_reply(frame, "broadcast needs an event name"))
        return
    if not channel.broadcast_write:
        channel.outbox.send(error_reply(frame, "Unauthorized: broadcast is not allowed"))
        return
    if _size(frame) > MAX_PAYLOAD_BYTES:
        channel.outbox.send(error_reply(frame, "payload_size_exceeded"))
        return
    body: dict[str, Any] = {
        "event": event,
        "payload": frame.payload.get("payload") if frame.binary is None else None,
        "sender": channel.id,
        "binary_push": frame.binary_push,
    }
    if isinstance(frame.payload.get("meta"), dict):
        body["meta"] = frame.payload["meta"]
    try:
        await asyncio.to_thread(
            bus.publish, realtime.engine, channel.bus_topic, "broadcast", body, frame.binary
        )
    except (DBAPIError, PoolTimeout, OSError):
        if channel.ack_broadcast:
            channel.outbox.send(error_reply(frame, UNAVAILABLE))
        return
    if channel.ack_broadcast:
        channel.outbox.send(reply(frame, "ok", {}))


async def presence(realtime: Realtime, channel: Channel, frame: Frame) -> None:
    """`track` (replacing this channel's previous presence) and `untrack`."""
    event = frame.payload.get("event")
    event = event.lower() if isinstance(event, str) else event
    try:
        if event == "track":
            meta = frame.payload.get("payload", {})
            if not isinstance(meta, dict):
                channel.outbox.send(error_reply(frame, "Presence track payload must be a map"))
                return
            if not channel.presence_write:
                channel.outbox.send(error_reply(frame, "Unauthorized: presence is not allowed"))
                return
            previous, ref = channel.presence_ref, uuid.uuid4().hex
            await asyncio.to_thread(
                bus.track, realtime.engine, channel.bus_topic, channel.presence_key, ref,
                previous, realtime.worker, meta,
            )  # fmt: skip
            channel.presence_ref = ref
            channel.presence_enabled = True
        elif event == "untrack":
            if channel.presence_ref is not None:
                refs, channel.presence_ref = [channel.presence_ref], None
                await asyncio.to_thread(bus.untrack, realtime.engine, refs)
        else:
            channel.outbox.send(error_reply(frame, f"unknown presence event {event!r}"))
            return
    except (DBAPIError, PoolTimeout, OSError):
        channel.outbox.send(error_reply(frame, UNAVAILABLE))
        return
    channel.outbox.send(reply(frame, "ok", {}))
