"""`/realtime/v1/websocket`: Supabase Realtime's socket: `postgres_changes`, broadcast,
presence, private channels (see `channels.py` for the last three).

One `Connection` per websocket: a reader handling client frames in order, and a writer
draining one send queue, so replies and changes reach the client in the order they were
produced and a slow client never blocks the delivery to others (past `OUTBOX_SIZE`
waiting frames it is disconnected instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from fastapi import APIRouter, WebSocket, status
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.websockets import WebSocketDisconnect

from planwise.db.session import unit_of_work
from planwise.http_limits import ClientSlots
from planwise.realtime import channels
from planwise.realtime.channels import Subscriber
from planwise.realtime.hub import Channel
from planwise.realtime.protocol import (
    PHOENIX_TOPIC,
    SUPPORTED_VSN,
    TOPIC_PREFIX,
    Binding,
    Frame,
    ProtocolError,
    Vsn,
    decode,
    encode,
    error_reply,
    parse_binding,
    reply,
    system,
)
from planwise.realtime.service import Realtime
from planwise.users.security import signed_by_us
from planwise.users.service import TokenRefused, resolve_caller

logger = logging.getLogger("planwise.realtime")

router = APIRouter()

PATH = "/realtime/v1/websocket"
MAX_FRAME_BYTES = 256 * 1024
MAX_CHANNELS = 100
MAX_BINDINGS = 100
IDLE_TIMEOUT_SECONDS = 60.0  # Phoenix's: clients heartbeat every 25-30 s
OUTBOX_SIZE = 1000
JOIN_WAIT_SECONDS = 5.0


class Connection:
    def __init__(self, websocket: WebSocket, realtime: Realtime, vsn: Vsn, token: str | None):
        self.websocket = websocket
        self.realtime = realtime
        self.hub = realtime.hub
        self.vsn = vsn
        self.token = token
        self.channels: dict[str, Channel] = {}
        self.outgoing: asyncio.Queue[str | bytes] = asyncio.Queue(OUTBOX_SIZE)
        self.close_code = status.WS_1000_NORMAL_CLOSURE
        self._writer: asyncio.Task[None] | None = None

    # -- Outbox, used by the hub ---------------------------------------------------------

    def send(self, frame: Frame) -> None:
        data = encode(frame, self.vsn)
        if data is None:
            return  # a bytes broadcast to a 1.0.0 client: its serializer cannot carry it
        try:
            self.outgoing.put_nowait(data)
        except asyncio.QueueFull:
            logger.warning("realtime: client not reading; %d frames waiting, closing", OUTBOX_SIZE)
            self.close_code = status.WS_1013_TRY_AGAIN_LATER
            if self._writer is not None:
                self._writer.cancel()

    def closed(self, channel: Channel) -> None:
        if self.channels.get(channel.topic) is channel:
            del self.channels[channel.topic]

    # -- the connection ------------------------------------------------------------------

    async def serve(self) -> None:
        self._writer = asyncio.create_task(self._write())
        reader = asyncio.create_task(self._read())
        try:
            done, _ = await asyncio.wait(
                {self._writer, reader}, return_when=asyncio.FIRST_COMPLETED
            )
            failures = [t.exception() for t in done if not t.cancelled() and t.exception()]
            for error in failures:  # a closed socket is not worth a traceback
                if not isinstance(error, WebSocketDisconnect | RuntimeError):
                    logger.error("realtime: connection failed", exc_info=error)
        finally:
            for task in (self._writer, reader):
                task.cancel()
            for channel in self.channels.values():
                self.hub.remove(channel)
            self.channels.clear()
            with contextlib.suppress(Exception):
                await self.websocket.close(self.close_code)

    async def _write(self) -> None:
        while True:
            data = await self.outgoing.get()
            if isinstance(data, bytes):
                await self.websocket.send_bytes(data)
            else:
                await self.websocket.send_text(data)

    async def _read(self) -> None:
        while True:
            try:
                message = await asyncio.wait_for(self.websocket.receive(), IDLE_TIMEOUT_SECONDS)
            except TimeoutError:
                return  # no heartbeat: the client is gone
            except WebSocketDisconnect:
                return
            if message["type"] == "websocket.disconnect":
                return
            data: str | bytes | None = message.get("text")
            binary = data is None
            if binary:
                data = message.get("bytes")
            if data is None:
                continue
            if len(data) > MAX_FRAME_BYTES:
                self.close_code = status.WS_1009_MESSAGE_TOO_BIG
                return
            try:
                frame = decode(data, self.vsn, binary=binary)
            except ProtocolError as error:
                # Answered on the frame's channel when it names one, else on `phoenix`.
                to = error.frame or Frame(PHOENIX_TOPIC, "unknown", {})
                self.send(error_reply(to, f"invalid frame: {error}"))
                continue
            await self._handle(frame)

    async def _handle(self, frame: Frame) -> None:
        if frame.topic == PHOENIX_TOPIC:
            if frame.event == "heartbeat":
                self.send(reply(frame, "ok", {}))
                self._close_expired()
            else:
                self.send(error_reply(frame, f"unknown event {frame.event!r} on phoenix"))
            return
        if frame.event == "phx_join":
            await self._join(frame)
            return
        channel = self.channels.get(frame.topic)
        if channel is None:
            self.send(error_reply(frame, "unmatched topic"))
        elif frame.event == "phx_leave":
            self.hub.remove(channel)
            self.closed(channel)
            self.send(reply(frame, "ok", {}))
        elif frame.event == "access_token":
            await self._refresh(channel, frame)
        elif frame.event == "broadcast":
            await channels.broadcast(self.realtime, channel, frame)
        elif frame.event == "presence":
            await channels.presence(self.realtime, channel, frame)
        else:
            self.send(error_reply(frame, f"unknown event {frame.event!r}"))

    def _close_expired(self) -> None:
        now = time.time()
        for channel in list(self.channels.values()):
            if channel.expired(now):
                self.hub.close_channel(channel, "Token has expired")

    def _resolve(self, token: str) -> Subscriber:
        """A join or token refresh is a request of its own: one transaction, owned here."""
        with unit_of_work(self.realtime.engine) as session:
            caller = resolve_caller(session, self.realtime.settings, token)
        return channels.subscriber(caller, token)

    async def _subscriber(self, token: object) -> Subscriber | str:
        """The token's user, or why not (the reason goes back to the client)."""
        if not isinstance(token, str) or not token:
            return "no access token: join with access_token, or connect with ?apikey=<jwt>"
        try:
            return await asyncio.to_thread(self._resolve, token)
        except TokenRefused as error:
            return f"Invalid token: {error}"
        except (DBAPIError, PoolTimeout):
            return "database unavailable; retry shortly"

    async def _join(self, frame: Frame) -> None:
        topic = frame.topic
        if not topic.startswith(TOPIC_PREFIX):
            self.send(error_reply(frame, f"topics start with {TOPIC_PREFIX!r}"))
            return
        if topic not in self.channels and len(self.channels) >= MAX_CHANNELS:
            self.send(error_reply(frame, f"at most {MAX_CHANNELS} channels per connection"))
            return
        config: Any = frame.payload.get("config") or {}
        if not isinstance(config, dict):
            self.send(error_reply(frame, "config must be an object"))
            return
        raw_bindings: Any = config.get("postgres_changes")
        if not isinstance(raw_bindings, list | None) or len(raw_bindings or []) > MAX_BINDINGS:
            self.send(error_reply(frame, f"postgres_changes: a list of at most {MAX_BINDINGS}"))
            return
        subscriber = await self._subscriber(frame.payload.get("access_token") or self.token)
        if isinstance(subscriber, str):
            self.send(error_reply(frame, subscriber))
            return
        try:
            bindings = await self._bindings(raw_bindings or [])
        except ProtocolError as error:
            self.send(error_reply(frame, f"Unable to subscribe to changes: {error}"))
            return
        except (DBAPIError, PoolTimeout, OSError):
            self.send(error_reply(frame, "database unavailable; retry shortly"))
            return
        channel = Channel(
            self, topic, frame.join_ref or frame.ref, subscriber.reader,
            subscriber.expires_at, tuple(bindings),
        )  # fmt: skip
        refused = await channels.configure(self.realtime, channel, config, subscriber)
        if refused is not None:
            self.send(error_reply(frame, refused))
            return
        self.realtime.ensure_listening()  # broadcast and presence need it too
        if not await self.realtime.ready(JOIN_WAIT_SECONDS):
            self.send(error_reply(frame, "not listening to the database yet; retry shortly"))
            return
        if (previous := self.channels.pop(topic, None)) is not None:
            self.hub.remove(previous)
        self.channels[topic] = channel
        self.hub.add(channel)
        echoed = [{**binding.echo, "id": binding.id} for binding in bindings]
        self.send(reply(frame, "ok", {"postgres_changes": echoed}))
        if bindings:
            self.send(system(topic, "postgres_changes", "ok", "Subscribed to PostgreSQL"))
        await channels.joined(self.realtime, channel)

    async def _bindings(self, raw_bindings: list[Any]) -> list[Binding]:
        if raw_bindings:
            self.realtime.ensure_listening()
            await self.hub.ensure_columns()
        published = self.hub.published_columns()
        return [
            parse_binding(self.realtime.next_binding_id(), raw, published) for raw in raw_bindings
        ]

    async def _refresh(self, channel: Channel, frame: Frame) -> None:
        """`access_token`: a refreshed token keeps the channel; a bad one ends it."""
        subscriber = await self._subscriber(frame.payload.get("access_token"))
        if isinstance(subscriber, str):
            self.send(error_reply(frame, subscriber))
            self.hub.close_channel(channel, subscriber)
            return
        channel.reader = subscriber.reader
        channel.expires_at = subscriber.expires_at
        channel.identity = subscriber.identity
        if channel.private and (refused := await channels.authorize(self.realtime, channel)):
            self.send(error_reply(frame, refused))
            self.hub.close_channel(channel, refused)
            return
        self.send(reply(frame, "ok", {}))


@router.websocket(PATH)
async def realtime_websocket(websocket: WebSocket) -> None:
    """Phoenix channels over a websocket: `phx_join` (postgres_changes, broadcast, presence,
    private), heartbeats, `access_token` refreshes, `phx_leave`. The token is the `apikey`
    (or `access_token`) query parameter and/or the join payload's `access_token`."""
    realtime: Realtime = websocket.app.state.realtime
    vsn = SUPPORTED_VSN.get(websocket.query_params.get("vsn", "1.0.0"))
    token = websocket.query_params.get("apikey") or websocket.query_params.get("access_token")
    if vsn is None or (token and not signed_by_us(realtime.settings, token)):
        await websocket.close(status.WS_1008_POLICY_VIOLATION)  # before accept: HTTP 403
        return
    slots: ClientSlots = websocket.app.state.realtime_clients
    with slots.hold(websocket.client.host if websocket.client else "") as admitted:
        if not admitted:  # REALTIME_MAX_CONNECTIONS_PER_CLIENT: HTTP 403 before accept
            await websocket.close(status.WS_1013_TRY_AGAIN_LATER, "too many connections")
            return
        await websocket.accept()
        connection = Connection(websocket, realtime, vsn, token)
        deadline = realtime.settings.realtime_join_timeout_seconds
        watchdog = asyncio.create_task(close_unless_joined(connection, deadline))
        try:
            await connection.serve()
        finally:
            watchdog.cancel()


async def close_unless_joined(connection: Connection, seconds: float) -> None:
    """REALTIME_JOIN_TIMEOUT_SECONDS: a socket with no channel joined by then is closed."""
    await asyncio.sleep(seconds)
    if not connection.channels:
        await connection.websocket.close(status.WS_1008_POLICY_VIOLATION, "join timeout")
