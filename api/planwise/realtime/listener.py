"""One LISTEN connection per API process, feeding the hub.

NOTIFY carries only the id of a row of the change log (written by the triggers alone) or
of the bus (written by the API); the listener reads the row and delivers what it holds, so
a forged NOTIFY, naming a row that does not exist, one older than `REPLAY_SECONDS` or one
already delivered, delivers nothing. NOTIFY is transactional: a notification arrives
only after its transaction committed, so the row can be read at once.

The connection is checked every `IDLE_CHECK_SECONDS` and re-opened with backoff when the
database goes away. After such a gap the rows logged in the last `REPLAY_SECONDS` that
this process has not delivered are replayed, in id order; when the gap itself was longer
than that, channels are told changes may have been missed (a `system` error, on which the
official clients rejoin) and presence channels get a fresh `presence_state`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import psycopg
from sqlalchemy.exc import DBAPIError

from planwise.config import Settings
from planwise.db.engine import libpq_url
from planwise.realtime import bus
from planwise.realtime.bus import BUS_CHANNEL, CHANGES_CHANNEL, REPLAY_SECONDS, LoggedChange
from planwise.realtime.hub import PUBLISHED, Change, ChangedRow, Hub

logger = logging.getLogger("planwise.realtime")

CHANNEL = CHANGES_CHANNEL
IDLE_CHECK_SECONDS = 15.0
FIRST_RETRY_SECONDS = 0.2
MAX_RETRY_SECONDS = 5.0
QUEUE_SIZE = 10_000
BATCH = 500
GAP_MESSAGE = "changes may have been missed (database connection lost); rejoin to resync"
SEEN_SECONDS = REPLAY_SECONDS + 60.0
REDELIVERY_SECONDS = 1.0
"""A change whose delivery could not read the database (a failover) is tried again after
this, while it is within REPLAY_SECONDS (read_changes reads no older row)."""


def listen_url(settings: Settings) -> str:
    """A direct connection: transaction pooling (PgBouncer) cannot carry LISTEN."""
    if settings.realtime_database_url:
        return settings.realtime_database_url
    if settings.database_pgbouncer:
        return settings.managed_url("app_service", settings.app_service_password)
    return settings.app_url


def to_change(logged: LoggedChange) -> Change | None:
    """A change log row as the hub's Change, or None when it names nothing we publish."""
    spec = PUBLISHED.get(logged.table)
    if spec is None or logged.type not in ("INSERT", "UPDATE", "DELETE"):
        return None
    owners = logged.owners or [None] * len(logged.keys)
    rows = tuple(
        ChangedRow(int(key) if spec.integer_key else key, owner)
        for key, owner in zip(logged.keys, owners, strict=False)
    )
    return Change(logged.table, logged.type, logged.at, rows)


class Seen:
    """Ids already delivered (or older than this process's first connection)."""

    def __init__(self) -> None:
        self.ids: dict[int, float] = {}

    def __contains__(self, item: int) -> bool:
        return item in self.ids

    def add(self, item: int) -> None:
        self.ids[item] = time.monotonic()

    def discard(self, item: int) -> None:
        self.ids.pop(item, None)

    def prune(self) -> None:
        cutoff = time.monotonic() - SEEN_SECONDS
        for item in [i for i, at in self.ids.items() if at < cutoff]:
            del self.ids[item]


Item = tuple[str, int]  # (channel, row id)
RESYNC = "resync presence"


class ChangeListener:
    """LISTEN loop (reconnecting) and dispatcher, as two tasks of the app's event loop."""

    def __init__(self, url: str, hub: Hub) -> None:
        self.url = libpq_url(url)
        self.hub = hub
        self.connected = asyncio.Event()
        self.queue: asyncio.Queue[Item] = asyncio.Queue(QUEUE_SIZE)
        self.connections = 0
        self.received = 0
        self.replayed = 0
        self.ignored = 0
        """Notifications naming no row this process may deliver (forged, stale, repeated)."""
        self.seen = {CHANGES_CHANNEL: Seen(), BUS_CHANNEL: Seen()}
        self.last_contact: float | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.backend_pid: int | None = None

    @property
    def running(self) -> bool:
        return any(not task.done() for task in self._tasks)

    def start(self) -> None:
        self.connected = asyncio.Event()
        self.queue = asyncio.Queue(QUEUE_SIZE)
        self._tasks = [
            asyncio.create_task(self._listen(), name="planwise-realtime-listen"),
            asyncio.create_task(self._dispatch(), name="planwise-realtime-dispatch"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self.connected.clear()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            self.url,
            autocommit=True,
            application_name="planwise-realtime",
            connect_timeout=10,
            # A silently dead peer (no FIN) is noticed in about a minute.
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )

    async def _catch_up(self) -> None:
        """After LISTEN: the first time, what the log holds is history (marked seen);
        after a gap, what this process has not delivered is replayed."""
        changes, messages = await asyncio.to_thread(bus.recent_ids, self.hub.engine)
        first = self.connections == 1
        gap = time.monotonic() - self.last_contact if self.last_contact else 0.0
        self.last_contact = time.monotonic()
        if first:
            for channel, ids in ((CHANGES_CHANNEL, changes), (BUS_CHANNEL, messages)):
                for item in ids:
                    self.seen[channel].add(item)
            return
        if gap > REPLAY_SECONDS:
            self.hub.announce_gap(GAP_MESSAGE)
        for channel, ids in ((CHANGES_CHANNEL, changes), (BUS_CHANNEL, messages)):
            for item in ids:
                if item not in self.seen[channel]:
                    self.replayed += 1
                    self._enqueue(channel, item)
        # After the replayed messages: replayed presence diffs are then superseded.
        self._enqueue(RESYNC, 0)

    async def _listen(self) -> None:
        delay = FIRST_RETRY_SECONDS
        while True:
            try:
                async with await self._connect() as connection:
                    await connection.execute(f"LISTEN {CHANGES_CHANNEL}")
                    await connection.execute(f"LISTEN {BUS_CHANNEL}")
                    self.backend_pid = connection.info.backend_pid
                    await self.hub.refresh_columns()
                    self.connections += 1
                    await self._catch_up()
                    self.connected.set()
                    delay = FIRST_RETRY_SECONDS
                    logger.info("realtime: listening on %s, %s", CHANGES_CHANNEL, BUS_CHANNEL)
                    while True:
                        async for notify in connection.notifies(timeout=IDLE_CHECK_SECONDS):
                            self.last_contact = time.monotonic()
                            self._accept(notify.channel, notify.payload)
                        await connection.execute("SELECT 1")  # still there?
                        self.last_contact = time.monotonic()
                        for seen in self.seen.values():
                            seen.prune()
            except (psycopg.Error, OSError) as error:
                self.connected.clear()
                logger.warning("realtime: database connection lost (%s); retrying", error)
            except Exception:  # e.g. the catalog read failed through the pool
                self.connected.clear()
                logger.exception("realtime: listener failed; retrying")
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_SECONDS)

    def _accept(self, channel: str, payload: str) -> None:
        self.received += 1
        try:
            item = int(payload)
        except ValueError:
            self.ignored += 1
            logger.warning("realtime: ignoring a %s notification: %.100r", channel, payload)
            return
        if channel in self.seen and item not in self.seen[channel]:
            self._enqueue(channel, item)
        else:
            self.ignored += 1

    def _enqueue(self, channel: str, item: int) -> None:
        try:
            self.queue.put_nowait((channel, item))
        except asyncio.QueueFull:
            logger.error("realtime: %d messages waiting; dropping one", QUEUE_SIZE)
            self.hub.announce_gap("changes were dropped (server overloaded); rejoin to resync")

    async def _dispatch(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                await self._deliver(batch)
            except Exception:
                logger.exception("realtime: delivering %d messages failed", len(batch))

    async def _deliver(self, batch: list[Item]) -> None:
        wanted: dict[str, list[int]] = {CHANGES_CHANNEL: [], BUS_CHANNEL: []}
        resync = False
        for channel, item in batch:
            if channel == RESYNC:
                resync = True
            elif item not in self.seen[channel] and item not in wanted[channel]:
                wanted[channel].append(item)
        if wanted[BUS_CHANNEL]:
            messages = await asyncio.to_thread(bus.read_bus, self.hub.engine, wanted[BUS_CHANNEL])
            self.ignored += len(wanted[BUS_CHANNEL]) - len(messages)
            for message in messages:
                if message.id in self.seen[BUS_CHANNEL]:
                    continue
                self.seen[BUS_CHANNEL].add(message.id)
                self.hub.deliver(message)
        if wanted[CHANGES_CHANNEL]:
            logged = await asyncio.to_thread(
                bus.read_changes, self.hub.engine, wanted[CHANGES_CHANNEL]
            )
            self.ignored += len(wanted[CHANGES_CHANNEL]) - len(logged)
            for row in logged:
                if row.id in self.seen[CHANGES_CHANNEL]:
                    continue
                self.seen[CHANGES_CHANNEL].add(row.id)
                change = to_change(row)
                if change is not None:
                    try:
                        await self.hub.dispatch(change)
                    except (DBAPIError, psycopg.Error) as error:
                        # Its reads come before any send: nothing went out, so try again.
                        logger.warning("realtime: delivering a %s change failed (%s); again "
                                       "in %g s", row.table, error.__class__.__name__,
                                       REDELIVERY_SECONDS)  # fmt: skip
                        self.seen[CHANGES_CHANNEL].discard(row.id)
                        asyncio.get_running_loop().call_later(
                            REDELIVERY_SECONDS, self._enqueue, CHANGES_CHANNEL, row.id
                        )
                    except Exception:
                        logger.exception("realtime: delivering a %s change failed", row.table)
        if resync:
            await self.hub.resync_presence()
