"""The realtime service of one API process: its hub and its LISTEN connection."""

from __future__ import annotations

import asyncio
import itertools
import logging

from sqlalchemy import Engine

from planwise.config import Settings
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

    def next_binding_id(self) -> int:
        return next(self._binding_ids)

    async def start(self) -> None:
        """Called by the app's lifespan. The LISTEN connection opens with the first
        subscription (`ensure_listening`), so processes nobody subscribes to hold none."""
        self._running = True

    def ensure_listening(self) -> None:
        if self._running and not self.listener.running:
            self.listener.start()

    async def stop(self) -> None:
        self._running = False
        await self.listener.stop()
        self.hub.channels.clear()

    async def ready(self, timeout: float) -> bool:
        """Is the LISTEN connection up (waiting up to `timeout` seconds)?"""
        try:
            await asyncio.wait_for(self.listener.connected.wait(), timeout)
        except TimeoutError:
            return False
        return True
