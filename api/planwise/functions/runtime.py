"""One Deno process per Edge Function, started on its first call and kept warm.

Each process runs `bootstrap.ts`, which serves the function's `Deno.serve` handler on a
loopback port chosen here; calls are proxied to it by `proxy.py`. Deno runs with only
what a function needs: network to the API (SUPABASE_URL) and to its own port, the
environment (just the variables Supabase gives functions), reading its own folder, npm
packages from the cache `make install` filled (`--cached-only`: nothing is downloaded at
call time), and a V8 heap of FUNCTIONS_MEMORY_MB.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from planwise.config import Settings
from planwise.functions.catalog import EdgeFunction, deno_bin, deno_dir
from planwise.supabase.keys import api_keys

logger = logging.getLogger("planwise.functions")

BOOTSTRAP = Path(__file__).with_name("bootstrap.ts")
LISTENING = b"PLANWISE_FUNCTION_LISTENING"
BOOT_TIMEOUT_S = 30.0
STDERR_LINES = 50
OUT_OF_MEMORY_MARKERS = ("out of memory", "heap limit")


class BootError(Exception):
    """The function's process exited (or never listened) before it could take a call."""


@dataclass
class Worker:
    """A running function: its process, its port, the last lines it wrote to stderr."""

    function: EdgeFunction
    process: asyncio.subprocess.Process
    port: int
    stderr: deque[str] = field(default_factory=lambda: deque(maxlen=STDERR_LINES))
    drains: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def ran_out_of_memory(self) -> bool:
        text = "\n".join(self.stderr).lower()
        return any(marker in text for marker in OUT_OF_MEMORY_MARKERS)

    def kill(self) -> None:
        """SIGKILL the process group: Deno and anything it started."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    async def exited(self, timeout: float) -> bool:
        """Whether the process has ended within `timeout` seconds (stderr read to the end)."""
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
            await asyncio.wait_for(asyncio.gather(*self.drains), timeout)
        except TimeoutError:
            return False
        return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _net_host(url: str) -> str:
    """`host:port` of an http(s) URL, as Deno's --allow-net takes it."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def function_environment(settings: Settings, api_url: str) -> dict[str, str]:
    """What Supabase gives a function: its project's URL, keys and database URL."""
    env = {"SUPABASE_URL": api_url, "SUPABASE_DB_URL": settings.admin_url}
    if settings.supabase_jwt_secret is not None:
        keys = api_keys(settings)
        env |= {"SUPABASE_ANON_KEY": keys.anon, "SUPABASE_SERVICE_ROLE_KEY": keys.service_role}
    return env


def deno_command(settings: Settings, function: EdgeFunction, api_url: str, port: int) -> list[str]:
    command = [
        str(deno_bin(settings)), "run", "--quiet", "--no-prompt", "--cached-only",
        f"--allow-net=127.0.0.1:{port},{_net_host(api_url)}",
        "--allow-env",
        f"--allow-read={function.directory}",
        f"--v8-flags=--max-old-space-size={settings.functions_memory_mb}",
    ]  # fmt: skip
    if function.config is not None:
        command.append(f"--config={function.config}")
        if function.lockfile is not None:
            command.append("--frozen")
    else:
        command.append("--no-config")
    command.append(str(BOOTSTRAP))
    return command


async def _drain(worker: Worker, stream: asyncio.StreamReader, *, keep: bool) -> None:
    """Log what the function prints (its console), keeping stderr's last lines."""
    while line := await stream.readline():
        text = line.decode("utf-8", "replace").rstrip()
        if keep:
            worker.stderr.append(text)
        logger.info("function %s: %s", worker.function.name, text)


async def start(settings: Settings, function: EdgeFunction, api_url: str) -> Worker:
    """Start the function's process and wait until it listens; BootError otherwise."""
    binary = deno_bin(settings)
    if not binary.exists():
        raise BootError(f"Deno not found at {binary}: run `make install`")
    port = _free_port()
    env = function_environment(settings, api_url) | {
        "DENO_DIR": str(deno_dir(settings)),
        "NO_COLOR": "1",
        "DENO_NO_UPDATE_CHECK": "1",
        "PLANWISE_FUNCTION_PORT": str(port),
        "PLANWISE_FUNCTION_ENTRYPOINT": function.entrypoint.as_uri(),
    }
    process = await asyncio.create_subprocess_exec(
        *deno_command(settings, function, api_url, port),
        env=env, cwd=function.directory, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    worker = Worker(function, process, port)
    assert process.stdout is not None and process.stderr is not None
    worker.drains.append(asyncio.create_task(_drain(worker, process.stderr, keep=True)))
    try:
        await asyncio.wait_for(_wait_listening(worker, process.stdout), BOOT_TIMEOUT_S)
    except (TimeoutError, BootError) as error:
        worker.kill()
        await worker.exited(5)
        reason = "did not listen in time" if isinstance(error, TimeoutError) else str(error)
        tail = " | ".join(worker.stderr)[-2000:]
        logger.warning("function %s failed to boot (%s): %s", function.name, reason, tail)
        raise BootError(reason) from None
    worker.drains.append(asyncio.create_task(_drain(worker, process.stdout, keep=False)))
    logger.info("function %s: started (pid %s, port %s)", function.name, process.pid, port)
    return worker


async def _wait_listening(worker: Worker, stdout: asyncio.StreamReader) -> None:
    while line := await stdout.readline():
        if line.strip() == LISTENING:
            return
        logger.info("function %s: %s", worker.function.name, line.decode("utf-8", "replace"))
    await worker.process.wait()
    raise BootError(f"exited with status {worker.process.returncode} before listening")


class FunctionRuntime:
    """The warm processes of one API process, one per function, started on demand."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._workers: dict[str, Worker] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def worker(self, function: EdgeFunction, api_url: str) -> Worker:
        """The function's running process, started if there is none, it died, or the
        function's files changed since it started."""
        lock = self._locks.setdefault(function.name, asyncio.Lock())
        async with lock:
            current = self._workers.get(function.name)
            if current is not None and current.alive and current.function == function:
                return current
            if current is not None:
                self.discard(current)
            worker = await start(self.settings, function, api_url)
            self._workers[function.name] = worker
            return worker

    def discard(self, worker: Worker) -> None:
        """Kill `worker`; its function's next call starts a fresh process."""
        worker.kill()
        if self._workers.get(worker.function.name) is worker:
            del self._workers[worker.function.name]

    async def close(self) -> None:
        workers = list(self._workers.values())
        for worker in workers:
            self.discard(worker)
        await asyncio.gather(*(worker.exited(5) for worker in workers))
