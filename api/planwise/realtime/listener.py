"""One LISTEN connection per API process, feeding the hub.

NOTIFY is transactional: a notification arrives only after its transaction committed, so
the rows it names can be read back at once. The connection is checked every
`IDLE_CHECK_SECONDS` and re-opened with backoff when the database goes away; changes made
while it was away are not replayed, and channels are told so (a `system` error, on which
the official clients rejoin).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
import psycopg

from planwise.config import Settings
from planwise.db.engine import libpq_url
from planwise.realtime.hub import PUBLISHED, Change, ChangedRow, Hub

logger = logging.getLogger("planwise.realtime")

CHANNEL = "planwise_changes"
IDLE_CHECK_SECONDS = 15.0
FIRST_RETRY_SECONDS = 0.2
MAX_RETRY_SECONDS = 5.0
QUEUE_SIZE = 10_000
GAP_MESSAGE = "changes may have been missed (database connection lost); rejoin to resync"


def listen_url(settings: Settings) -> str:
    """A direct connection: transaction pooling (PgBouncer) cannot carry LISTEN."""
    if settings.realtime_database_url:
        return settings.realtime_database_url
    if settings.database_pgbouncer:
        return settings.managed_url("app_service", settings.app_service_password)
    return settings.app_url


def parse_notification(payload: str) -> Change | None:
    """The trigger's JSON, or None (logged) when it is not one of ours."""
    try:
        raw: Any = orjson.loads(payload)
        rows = tuple(
            ChangedRow(key, owner if isinstance(owner, int) else None)
            for key, owner in raw["rows"]
            if isinstance(key, int | str)
        )
        change = Change(str(raw["table"]), str(raw["type"]), str(raw["at"]), rows)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        logger.warning("ignoring a malformed %s notification: %.200s", CHANNEL, payload)
        return None
    if change.table not in PUBLISHED or change.type not in ("INSERT", "UPDATE", "DELETE"):
        return None
    return change


class ChangeListener:
    """LISTEN loop (reconnecting) and dispatcher, as two tasks of the app's event loop."""

    def __init__(self, url: str, hub: Hub) -> None:
        self.url = libpq_url(url)
        self.hub = hub
        self.connected = asyncio.Event()
        self.queue: asyncio.Queue[Change] = asyncio.Queue(QUEUE_SIZE)
        self.connections = 0
        self.received = 0
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

    async def _listen(self) -> None:
        delay = FIRST_RETRY_SECONDS
        while True:
            try:
                async with await self._connect() as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    self.backend_pid = connection.info.backend_pid
                    await self.hub.refresh_columns()
                    self.connections += 1
                    if self.connections > 1:
                        self.hub.announce_gap(GAP_MESSAGE)
                    self.connected.set()
                    delay = FIRST_RETRY_SECONDS
                    logger.info("realtime: listening on %s", CHANNEL)
                    while True:
                        async for notify in connection.notifies(timeout=IDLE_CHECK_SECONDS):
                            self._accept(notify.payload)
                        await connection.execute("SELECT 1")  # still there?
            except (psycopg.Error, OSError) as error:
                self.connected.clear()
                logger.warning("realtime: database connection lost (%s); retrying", error)
            except Exception:  # e.g. the catalog read failed through the pool
                self.connected.clear()
                logger.exception("realtime: listener failed; retrying")
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_SECONDS)

    def _accept(self, payload: str) -> None:
        self.received += 1
        change = parse_notification(payload)
        if change is None or not self.hub.wants(change.table, change.type):
            return  # nobody subscribed: costs nothing more
        try:
            self.queue.put_nowait(change)
        except asyncio.QueueFull:
            logger.error("realtime: %d changes waiting; dropping one", QUEUE_SIZE)
            self.hub.announce_gap("changes were dropped (server overloaded); rejoin to resync")

    async def _dispatch(self) -> None:
        while True:
            change = await self.queue.get()
            try:
                await self.hub.dispatch(change)
            except Exception:
                logger.exception("realtime: delivering a %s change failed", change.table)
