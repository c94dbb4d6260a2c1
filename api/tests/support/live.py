"""The app under a real uvicorn server, for the official clients and websockets: in a
thread of the test process (`serve`), or as `planwise serve` itself (`planwise_serve`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from planwise.app import create_app
from planwise.config import Settings
from tests.support.cli import PLANWISE


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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def planwise_serve(env: dict[str, str], log: Path) -> Iterator[tuple[str, int]]:
    """`planwise serve` on a free port with `env`, once `/health` answers 200; yields (base
    URL, pid), its output in `log`. Its process group is stopped at the end."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [PLANWISE, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise AssertionError(
                    f"planwise serve exited ({server.returncode}):\n{log.read_text()[-3000:]}"
                )
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"planwise serve not healthy in 60 s:\n{log.read_text()[-3000:]}"
                )
            time.sleep(0.2)
        yield base, server.pid
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
