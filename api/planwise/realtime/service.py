"""The realtime service of one API process: hub, listener, and who a token names."""

from __future__ import annotations

import asyncio
import itertools
import logging

from sqlalchemy import Engine

from planwise.config import Settings
from planwise.db.session import unit_of_work
from planwise.realtime.hub import Hub
from planwise.realtime.listener import ChangeListener, listen_url
from planwise.users.service import Bearer, resolve_bearer

logger = logging.getLogger("planwise.realtime")


def resolve_subscriber(engine: Engine, settings: Settings, token: str) -> Bearer:
    """The subscriber a join or refresh names, in a transaction of its own: a websocket
    frame is its own request. Raises `TokenRefused`."""
    with unit_of_work(engine) as session:
        return resolve_bearer(session, settings, token)


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

    async def subscriber(self, token: str) -> Bearer:
        return await asyncio.to_thread(resolve_subscriber, self.engine, self.settings, token)
