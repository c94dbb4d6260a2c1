"""The app under a real uvicorn server in a thread of the test process, for the official
clients and websockets (`planwise serve` itself as a subprocess: support/served.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from planwise.app import create_app
from planwise.config import Settings


@dataclass
class LiveServer:
    url: str
    app: Any

    @property
    def realtime_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/realtime/v1"

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.url}/api/v1", timeout=10)


@contextmanager
def serve(settings: Settings) -> Iterator[LiveServer]:
    """Our app under uvicorn on a free port, in a thread, lifespan and websockets on."""
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert thread.is_alive(), "uvicorn stopped"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(10)
