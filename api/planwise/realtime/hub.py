"""Who is subscribed to what, and which change each subscriber may see.

A change arrives as keys and owners (see the realtime migration). For INSERT and UPDATE
the rows are read back as each subscribing user, with `app.user_id` set as `app_service`,
so row-level security decides what they receive, exactly as for an HTTP request (the anon
key reads as nobody, the service_role key as `service_role`). A deleted row cannot be read
back: it goes only to the user its owner column names and to service_role (or to everyone
for tables everyone may read, like `place`). A change of a `user` row whose user has
channels here is checked too: a deactivated or deleted user's channels are closed.

Broadcasts and presence diffs arrive from the bus (see `bus.py`), already authorised by
the sender's channel; they go to the channels of their topic in this process.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from sqlalchemy import Engine, text

from planwise.db.session import read_in_autocommit, set_acting_user, unit_of_work
from planwise.realtime import bus
from planwise.realtime.bus import BusMessage
from planwise.realtime.policies import Identity
from planwise.realtime.protocol import Binding, Frame, system

logger = logging.getLogger("planwise.realtime")

Key = int | str


@dataclass(frozen=True)
class TableSpec:
    """A table whose changes are published (the migration installs matching triggers)."""

    name: str
    key: str
    owner: str | None
    """Column naming the user a row belongs to; None when every user may read every row."""
    hidden: frozenset[str] = frozenset()
    """Columns never sent, whoever asks."""
    integer_key: bool = True
    """The change log holds keys as text; these are integers."""


PUBLISHED: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec("user", "id", "id", frozenset({"hashed_password"})),
        TableSpec("place", "id", None, integer_key=False),
        TableSpec("review", "id", "user_id"),
        TableSpec("preference", "id", "user_id"),
    )
}


@dataclass(frozen=True)
class ChangedRow:
    key: Key
    owner: int | None


@dataclass(frozen=True)
class Change:
    """One notification: rows of one table changed by one statement."""

    table: str
    type: str  # INSERT, UPDATE or DELETE
    at: str  # when the trigger ran, UTC ISO 8601
    rows: tuple[ChangedRow, ...]


class Outbox(Protocol):
    """Where a channel's frames go: the websocket connection's send queue."""

    def send(self, frame: Frame) -> None: ...

    def closed(self, channel: Channel) -> None:
        """The server ended `channel`: forget its topic."""


@dataclass(eq=False)
class Channel:
    """A joined topic on one connection: who reads for it, token expiry and bindings."""

    outbox: Outbox
    topic: str
    join_ref: str | None
    reader: Reader
    expires_at: float | None
    bindings: tuple[Binding, ...]
    bus_topic: str = ""
    """`bus.bus_topic(subtopic, private)`: where its broadcasts and presences travel."""
    private: bool = False
    self_broadcast: bool = False
    ack_broadcast: bool = False
    presence_enabled: bool = False
    presence_key: str = ""
    presence_ref: str | None = None
    presence_read: bool = True
    broadcast_write: bool = True
    presence_write: bool = True
    identity: Identity | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


Column = tuple[str, str]  # name, PostgreSQL type name (int4, varchar, timestamptz…)
Reader = int | Literal["anon", "service_role"]
"""Whom a channel's rows are read back as: a user's id, or one of the project's API keys
(anon: as nobody, so public rows only; service_role: as `service_role`, bypassing RLS)."""
SERVICE_ROLE: Literal["service_role"] = "service_role"

COLUMNS_SQL = text(
    """
    SELECT c.relname, a.attname, t.typname
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_type t ON t.oid = a.atttypid
    WHERE n.nspname = 'public' AND c.relname = ANY(:tables)
      AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY c.relname, a.attnum
    """
)


def load_columns(engine: Engine) -> dict[str, list[Column]]:
    """The visible columns of each published table, from the catalog."""
    columns: dict[str, list[Column]] = {name: [] for name in PUBLISHED}
    with unit_of_work(engine) as session:
        for table, name, type_name in session.execute(COLUMNS_SQL, {"tables": list(PUBLISHED)}):
            if name not in PUBLISHED[table].hidden:
                columns[table].append((str(name), str(type_name)))
    return columns


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def read_visible(
    engine: Engine,
    spec: TableSpec,
    columns: Sequence[Column],
    keys: Sequence[Key],
    readers: Iterable[Reader],
) -> dict[Reader, dict[Key, dict[str, Any]]]:
    """The rows among `keys` each reader may see, read as that reader (RLS decides).

    One transaction for the users and anon, `app.user_id` set before each one's query;
    service_role reads in a transaction of its own, as `service_role`, so nothing read
    after it could bypass RLS.
    """
    names = ", ".join(_quote(name) for name, _ in columns)
    query = text(
        f"SELECT {names} FROM public.{_quote(spec.name)} "  # noqa: S608 - catalog identifiers
        f"WHERE {_quote(spec.key)} = ANY(:keys)"
    )
    params = {"keys": list(keys)}
    visible: dict[Reader, dict[Key, dict[str, Any]]] = {}
    wanted = set(readers)
    with unit_of_work(engine) as session:
        for reader in sorted(wanted - {SERVICE_ROLE}, key=str):
            if isinstance(reader, int):
                set_acting_user(session, reader)
            else:
                session.execute(text("SELECT set_config('app.user_id', '', true)"))
            rows = session.execute(query, params).mappings()
            visible[reader] = {row[spec.key]: dict(row) for row in rows}
    if SERVICE_ROLE in wanted:
        with unit_of_work(engine) as session:
            session.execute(text("SET LOCAL ROLE service_role"))
            rows = session.execute(query, params).mappings()
            visible[SERVICE_ROLE] = {row[spec.key]: dict(row) for row in rows}
    return visible


ACTIVE_USERS = text(
    "SELECT u.id FROM unnest(CAST(:ids AS integer[])) AS x(id), "
    "LATERAL planwise_begin_request(x.id) u WHERE u.is_active"
)


def active_users(engine: Engine, ids: Sequence[int]) -> set[int]:
    """Which of these users exist and are active, each read as themselves (RLS)."""
    return read_in_autocommit(
        engine, lambda c: {row.id for row in c.execute(ACTIVE_USERS, {"ids": list(ids)})}
    )


def change_frame(
    channel: Channel,
    change: Change,
    columns: Sequence[Column],
    ids: list[int],
    record: Mapping[str, Any] | None,
    old: Mapping[str, Any],
) -> Frame:
    """A `postgres_changes` message, in both spellings clients read: Realtime's
    (`type`, `record`, `old_record`) and supabase-js's (`eventType`, `new`, `old`)."""
    data: dict[str, Any] = {
        "schema": "public",
        "table": change.table,
        "commit_timestamp": change.at,
        "type": change.type,
        "eventType": change.type,
        "columns": [{"name": name, "type": type_name} for name, type_name in columns],
        "errors": None,
        "new": dict(record) if record is not None else {},
        "old": dict(old) if change.type != "INSERT" else {},
    }
    if record is not None:
        data["record"] = dict(record)
    if change.type != "INSERT":
        data["old_record"] = dict(old)
    return Frame(channel.topic, "postgres_changes", {"ids": ids, "data": data})


class Hub:
    """The channels of this process and the delivery of changes to them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.channels: set[Channel] = set()
        self.topics: dict[str, set[Channel]] = {}
        self.columns: dict[str, list[Column]] = {}
        self.delivered = 0
        self.broadcasts = 0
        self._background: set[asyncio.Task[None]] = set()

    async def ensure_columns(self) -> None:
        if not self.columns:
            self.columns = await asyncio.to_thread(load_columns, self.engine)

    async def refresh_columns(self) -> None:
        """Re-read the catalog (after a reconnect the schema may have been migrated)."""
        self.columns = await asyncio.to_thread(load_columns, self.engine)

    def published_columns(self) -> dict[str, frozenset[str]]:
        return {table: frozenset(n for n, _ in cols) for table, cols in self.columns.items()}

    def add(self, channel: Channel) -> None:
        self.channels.add(channel)
        self.topics.setdefault(channel.bus_topic, set()).add(channel)

    def remove(self, channel: Channel) -> None:
        """Forget the channel; its presence, if it tracked one, leaves (in the background)."""
        self.channels.discard(channel)
        members = self.topics.get(channel.bus_topic)
        if members is not None:
            members.discard(channel)
            if not members:
                del self.topics[channel.bus_topic]
        if channel.presence_ref is not None:
            refs, channel.presence_ref = [channel.presence_ref], None
            self.background(asyncio.to_thread(bus.untrack, self.engine, refs))

    def background(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("realtime: background work failed", exc_info=task.exception())

    # -- broadcast and presence ----------------------------------------------------------

    def deliver(self, message: BusMessage) -> None:
        """A bus message to the channels of its topic in this process."""
        members = list(self.topics.get(message.topic, ()))
        body = message.body
        if message.kind == "broadcast":
            payload: dict[str, Any] = {"type": "broadcast", "event": body.get("event")}
            if message.binary is None:
                payload["payload"] = body.get("payload")
            if body.get("meta"):
                payload["meta"] = body["meta"]
            for channel in members:
                if channel.id == body.get("sender") and not channel.self_broadcast:
                    continue
                frame = Frame(
                    channel.topic, "broadcast", payload, binary=message.binary,
                    binary_push=bool(body.get("binary_push")),
                )  # fmt: skip
                channel.outbox.send(frame)
                self.broadcasts += 1
        elif message.kind == "presence":
            diff = {"joins": body.get("joins", {}), "leaves": body.get("leaves", {})}
            for channel in members:
                if channel.presence_read:
                    channel.outbox.send(Frame(channel.topic, "presence_diff", diff))

    async def resync_presence(self) -> None:
        """A fresh `presence_state` to every presence channel (after a listener gap)."""
        for topic, members in list(self.topics.items()):
            readers = [c for c in members if c.presence_enabled and c.presence_read]
            if not readers:
                continue
            state = await asyncio.to_thread(bus.presence_state, self.engine, topic)
            for channel in readers:
                channel.outbox.send(Frame(channel.topic, "presence_state", state))

    # -- users -----------------------------------------------------------------------------

    async def _close_deactivated(self, change: Change) -> None:
        """Channels of users a `user` change deactivated or deleted are closed."""
        keys = {row.key for row in change.rows}
        affected = [c for c in self.channels if isinstance(c.reader, int) and c.reader in keys]
        if not affected:
            return
        if change.type == "DELETE":
            active: set[int] = set()
        else:
            ids = sorted({c.reader for c in affected if isinstance(c.reader, int)})
            active = await asyncio.to_thread(active_users, self.engine, ids)
        for channel in affected:
            if channel.reader not in active:
                self.close_channel(channel, "user deactivated or deleted")

    def close_channel(self, channel: Channel, message: str) -> None:
        """End a channel from the server side, as Realtime does: system error, phx_close."""
        self.remove(channel)
        channel.outbox.closed(channel)
        channel.outbox.send(system(channel.topic, "system", "error", message))
        close = Frame(channel.topic, "phx_close", {}, channel.join_ref, channel.join_ref)
        channel.outbox.send(close)

    def announce_gap(self, message: str) -> None:
        """Tell every channel that changes may have been missed; clients rejoin and refetch."""
        for channel in list(self.channels):
            channel.outbox.send(system(channel.topic, "postgres_changes", "error", message))

    async def dispatch(self, change: Change) -> None:
        spec = PUBLISHED.get(change.table)
        if spec is None or not change.rows:
            return
        if change.table == "user" and change.type != "INSERT":
            await self._close_deactivated(change)
        now = time.time()
        targets: list[tuple[Channel, list[Binding]]] = []
        for channel in list(self.channels):
            bindings = [b for b in channel.bindings if b.wants(change.table, change.type)]
            if not bindings:
                continue
            if channel.expired(now):
                self.close_channel(channel, "Token has expired")
                continue
            targets.append((channel, bindings))
        if not targets:
            return
        await self.ensure_columns()
        columns = self.columns.get(change.table, [])
        if change.type == "DELETE":
            self._deliver_deletes(change, spec, columns, targets)
            return
        # Rows everyone may read are read once, as nobody.
        readers: set[Reader] = {"anon"} if spec.owner is None else {c.reader for c, _ in targets}
        keys = [row.key for row in change.rows]
        visible = await asyncio.to_thread(read_visible, self.engine, spec, columns, keys, readers)
        for channel, bindings in targets:
            rows = visible.get("anon" if spec.owner is None else channel.reader, {})
            for row in change.rows:
                record = rows.get(row.key)
                if record is None:  # not theirs to see, or gone since
                    continue
                ids = [b.id for b in bindings if b.matches(record)]
                if ids:
                    self._send(channel, change, columns, ids, record, {spec.key: row.key})

    def _deliver_deletes(
        self,
        change: Change,
        spec: TableSpec,
        columns: Sequence[Column],
        targets: list[tuple[Channel, list[Binding]]],
    ) -> None:
        for row in change.rows:
            old: dict[str, Any] = {spec.key: row.key}
            if spec.owner is not None:
                old[spec.owner] = row.owner
            for channel, bindings in targets:
                if spec.owner is not None and channel.reader not in (row.owner, SERVICE_ROLE):
                    continue
                ids = [b.id for b in bindings if b.matches(old, partial=True)]
                if ids:
                    self._send(channel, change, columns, ids, None, old)

    def _send(
        self,
        channel: Channel,
        change: Change,
        columns: Sequence[Column],
        ids: list[int],
        record: Mapping[str, Any] | None,
        old: Mapping[str, Any],
    ) -> None:
        selected = record
        matched = [b for b in channel.bindings if b.id in ids]
        if record is not None and all(b.select is not None for b in matched):
            wanted = {name for b in matched for name in b.select or ()}
            selected = {name: value for name, value in record.items() if name in wanted}
        channel.outbox.send(change_frame(channel, change, columns, ids, selected, old))
        self.delivered += 1
