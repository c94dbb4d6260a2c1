"""The realtime service of one API process: its hub, its LISTEN connection, and the
keep-alive of the presences it tracks."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid

from sqlalchemy import Engine

from planwise.config import Settings
from planwise.realtime import bus
from planwise.realtime.hub import Hub
from planwise.realtime.listener import ChangeListener, listen_url

logger = logging.getLogger("planwise.realtime")


class Realtime:
    """Started and stopped with the app (lifespan); the websocket route uses it."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.hub = Hub(engine)
        self.listener = ChangeListener(listen_url(settings), self.hub)
        self._binding_ids = itertools.count(1)
        self._running = False
        self.worker = uuid.uuid4().hex
        """Names this process's rows in `planwise_realtime.presence`."""
        self._keeper: asyncio.Task[None] | None = None

    def next_binding_id(self) -> int:
        return next(self._binding_ids)

    async def start(self) -> None:
        """Called by the app's lifespan. The LISTEN connection opens with the first
        subscription (`ensure_listening`), so processes nobody subscribes to hold none."""
        self._running = True

    def ensure_listening(self) -> None:
        if self._running and not self.listener.running:
            self.listener.start()
            self._keeper = asyncio.create_task(self._keep_alive(), name="planwise-presence")

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(bus.PRESENCE_TTL_SECONDS / 4)
            try:
                await asyncio.to_thread(bus.keep_alive, self.engine, self.worker)
            except Exception as error:  # the database is away: the listener says so
                logger.warning("realtime: presence keep-alive failed: %s", error)

    async def stop(self) -> None:
        self._running = False
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        refs = [c.presence_ref for c in self.hub.channels if c.presence_ref is not None]
        if refs:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(bus.untrack, self.engine, refs)
        await self.listener.stop()
        self.hub.channels.clear()
        self.hub.topics.clear()

    async def ready(self, timeout: float) -> bool:
        """Is the LISTEN connection up (waiting up to `timeout` seconds)?"""
        try:
            await asyncio.wait_for(self.listener.connected.wait(), timeout)
        except TimeoutError:
            return False
        return True
