"""The realtime service of one API process: hub, listener, and who a token names."""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass

import jwt
from sqlalchemy import Engine, text

from planwise.config import Settings
from planwise.db.session import set_acting_user, unit_of_work
from planwise.realtime.hub import Hub
from planwise.realtime.listener import ChangeListener, listen_url
from planwise.users.security import ALGORITHM, InvalidToken, decode_access_token
from planwise.users.service import user_for_supabase

logger = logging.getLogger("planwise.realtime")


@dataclass(frozen=True)
class Subscriber:
    user_id: int
    expires_at: float | None


def resolve_subscriber(engine: Engine, settings: Settings, token: str) -> Subscriber:
    """The active Planwise user a token (ours or Supabase's) names; InvalidToken if none."""
    identity = decode_access_token(settings, token)
    with unit_of_work(engine) as session:
        user_id = identity if isinstance(identity, int) else user_for_supabase(session, identity)
        set_acting_user(session, user_id)
        active = session.execute(
            text('SELECT is_active FROM "user" WHERE id = :id'), {"id": user_id}
        ).scalar()
    if active is None:
        raise InvalidToken("the token's user no longer exists")
    if not active:
        raise InvalidToken("account is deactivated")
    # Already verified above; only the expiry is read here.
    claims = jwt.decode(token, options={"verify_signature": False})
    expires = claims.get("exp")
    return Subscriber(user_id, float(expires) if isinstance(expires, int | float) else None)


def signed_by_us(settings: Settings, token: str) -> bool:
    """An `apikey` must be a JWT of ours or of the Supabase project (any role), unexpired."""
    secrets = [settings.jwt_secret, settings.supabase_jwt_secret]
    for secret in secrets:
        if secret is None:
            continue
        try:
            jwt.decode(
                token,
                secret.get_secret_value(),
                algorithms=[ALGORITHM],
                options={"verify_aud": False},
            )
        except jwt.PyJWTError:
            continue
        return True
    return False


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

    async def subscriber(self, token: str) -> Subscriber:
        return await asyncio.to_thread(resolve_subscriber, self.engine, self.settings, token)
