"""Broadcast from a server: `POST /realtime/v1/api/broadcast` (a batch, what
`channel.send()` falls back to and what servers call with the service_role key) and
`POST /realtime/v1/api/broadcast/{topic}/events/{event}` (`httpSend()`/`http_send()`).

The caller is the `Authorization` bearer, else the `apikey` header: the project's keys
(service_role may send to any topic, private ones included, as it bypasses RLS) or a
user's token. Messages for private topics are sent only where the caller's write policy
on `realtime.messages` allows (others are dropped, as Supabase's batch endpoint does);
202 with an empty body when accepted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from planwise.db.session import unit_of_work
from planwise.realtime import bus, channels, policies
from planwise.realtime.bus import bus_topic
from planwise.realtime.policies import Identity
from planwise.realtime.protocol import TOPIC_PREFIX
from planwise.realtime.service import Realtime
from planwise.users.service import TokenRefused, resolve_caller

router = APIRouter()

MAX_MESSAGES = 100
BODY_LIMIT = channels.MAX_PAYLOAD_BYTES * 4


def _error(code: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=code)


def _identity(realtime: Realtime, authorization: str | None, apikey: str | None) -> Identity:
    token = (authorization or "").removeprefix("Bearer ").strip() or (apikey or "")
    with unit_of_work(realtime.engine) as session:
        caller = resolve_caller(session, realtime.settings, token)
    return channels.identity_of(caller, token)


def _send(
    realtime: Realtime, identity: Identity, topic: str, private: bool, event: str,
    payload: Any, binary: bytes | None,
) -> bool:  # fmt: skip
    """One message to the topic's subscribers; False when the policies refuse it."""
    if private and not policies.authorize(realtime.engine, identity, topic).broadcast_write:
        return False
    body = {"event": event, "payload": payload, "sender": None, "binary_push": binary is not None}
    bus.publish(realtime.engine, bus_topic(topic, private), "broadcast", body, binary)
    return True


def _caller(
    realtime: Realtime, authorization: str | None, apikey: str | None
) -> Identity | JSONResponse:
    if not (authorization or apikey):
        return _error(status.HTTP_401_UNAUTHORIZED, "No API key found in request")
    try:
        return _identity(realtime, authorization, apikey)
    except TokenRefused as error:
        return _error(status.HTTP_401_UNAUTHORIZED, f"Invalid token: {error}")


async def _answer(run: Callable[[], Response]) -> Response:
    """`run` in a thread; a database that does not answer is a 503, never a 500."""
    try:
        return await asyncio.to_thread(run)
    except (DBAPIError, PoolTimeout, OSError):
        response = _error(status.HTTP_503_SERVICE_UNAVAILABLE, "database unavailable")
        response.headers["Retry-After"] = "1"
        return response


async def _body(request: Request) -> bytes | None:
    """The body, or None past BODY_LIMIT (not read further)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > BODY_LIMIT:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


ACCEPTED = Response(status_code=status.HTTP_202_ACCEPTED)


@router.post("/realtime/v1/api/broadcast", status_code=202, response_class=Response)
async def broadcast_batch(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    apikey: Annotated[str | None, Header()] = None,
) -> Response:
    """`{"messages": [{"topic", "event", "payload", "private"}]}`, as Supabase takes it."""
    raw = await _body(request)
    if raw is None:
        return _error(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "payload_size_exceeded")
    messages = _parse_messages(raw)
    if isinstance(messages, str):
        return _error(status.HTTP_422_UNPROCESSABLE_ENTITY, messages)
    realtime: Realtime = request.app.state.realtime

    def run() -> Response:
        identity = _caller(realtime, authorization, apikey)
        if isinstance(identity, Response):
            return identity
        for m in messages:
            topic = str(m["topic"]).removeprefix(TOPIC_PREFIX)
            _send(realtime, identity, topic, bool(m.get("private")), m["event"],
                  m.get("payload", {}), None)  # fmt: skip
        return ACCEPTED

    return await _answer(run)


@router.post(
    "/realtime/v1/api/broadcast/{topic}/events/{event}", status_code=202, response_class=Response
)
async def broadcast_one(
    request: Request,
    topic: str,
    event: str,
    private: bool = False,
    authorization: Annotated[str | None, Header()] = None,
    apikey: Annotated[str | None, Header()] = None,
    content_type: Annotated[str | None, Header()] = None,
) -> Response:
    """One message; `application/octet-stream` bodies are sent as bytes."""
    raw = await _body(request)
    if raw is None or len(raw) > channels.MAX_PAYLOAD_BYTES:
        return _error(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "payload_size_exceeded")
    binary: bytes | None = None
    payload: Any = None
    if (content_type or "").startswith("application/octet-stream"):
        binary = raw
    else:
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _error(status.HTTP_422_UNPROCESSABLE_ENTITY, "body must be JSON")
    realtime: Realtime = request.app.state.realtime

    def run() -> Response:
        identity = _caller(realtime, authorization, apikey)
        if isinstance(identity, Response):
            return identity
        if not _send(realtime, identity, topic, private, event, payload, binary):
            return _error(status.HTTP_403_FORBIDDEN, "Unauthorized: broadcast is not allowed")
        return ACCEPTED

    return await _answer(run)


def _parse_messages(raw: bytes) -> list[dict[str, Any]] | str:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "body must be JSON"
    messages = parsed.get("messages") if isinstance(parsed, dict) else None
    if not isinstance(messages, list) or not messages or len(messages) > MAX_MESSAGES:
        return f"messages: a list of 1 to {MAX_MESSAGES} messages"
    for message in messages:
        if not (
            isinstance(message, dict)
            and isinstance(message.get("topic"), str)
            and message["topic"]
            and isinstance(message.get("event"), str)
            and isinstance(message.get("payload", {}), dict)
            and isinstance(message.get("private", False), bool)
        ):
            return "each message needs a topic, an event, a payload object and private true/false"
    return messages
