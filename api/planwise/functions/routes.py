"""`/functions/v1/{name}`: Supabase's Edge Functions endpoint, proxied to the function's
own Deno process (started on first call, kept warm) over loopback, streaming both ways."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import APIRouter, FastAPI, Request
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from planwise.config import Settings
from planwise.functions import errors
from planwise.functions.catalog import EdgeFunction, find_function
from planwise.functions.runtime import BootError, FunctionRuntime, Worker
from planwise.users.security import signed_by_us

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
"""The methods Supabase's Edge Functions accept; others get 405."""

HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
     "trailer", "transfer-encoding", "upgrade", "host")
)  # fmt: skip
CONNECT_TIMEOUT_S = 5.0
EXIT_GRACE_S = 1.0
"""How long a dropped connection waits for the process's exit, to tell a crash's cause."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    runtime: FunctionRuntime | None = getattr(app.state, "functions", None)
    if runtime is not None:
        await runtime.close()
        await app.state.functions_client.aclose()


router = APIRouter(prefix="/functions/v1", tags=["edge functions"], lifespan=lifespan)


def _runtime(request: Request) -> tuple[FunctionRuntime, httpx.AsyncClient]:
    state = request.app.state
    if getattr(state, "functions", None) is None:
        state.functions = FunctionRuntime(state.settings)
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
        # Reads wait as long as the call may run: the call's deadline is enforced here.
        timeout = httpx.Timeout(None, connect=CONNECT_TIMEOUT_S)
        state.functions_client = httpx.AsyncClient(timeout=timeout, limits=limits)
    return state.functions, state.functions_client


def _refusal(settings: Settings, function: EdgeFunction, request: Request) -> Response | None:
    """Supabase's `verify_jwt`: a bearer JWT of the project (a user's token or an API key),
    unless the function opts out; CORS preflights pass."""
    if not function.verify_jwt or request.method == "OPTIONS":
        return None
    header = request.headers.get("authorization")
    if not header:
        return errors.unauthorized("Error: Missing authorization header")
    scheme, _, token = header.partition(" ")
    if scheme != "Bearer":
        return errors.unauthorized("Error: Auth header is not 'Bearer {token}'")
    if not signed_by_us(settings, token.strip()):
        return errors.unauthorized("Invalid JWT")
    return None


def _api_url(settings: Settings, request: Request) -> str:
    """SUPABASE_URL as the function sees it: FUNCTIONS_API_URL, else this server's address."""
    if settings.functions_api_url:
        return settings.functions_api_url.rstrip("/")
    server = request.scope.get("server")
    if not server or server[1] is None:
        return str(request.base_url).rstrip("/")
    host = server[0] if server[0] not in ("0.0.0.0", "::", "") else "127.0.0.1"  # noqa: S104
    return f"http://{host}:{server[1]}"


async def _failure(runtime: FunctionRuntime, worker: Worker) -> Response:
    """The function's connection dropped: out of memory (546) or another crash (500)."""
    await worker.exited(EXIT_GRACE_S)
    runtime.discard(worker)
    return errors.worker_limit() if worker.ran_out_of_memory() else errors.worker_error()


@router.api_route("/", methods=METHODS, include_in_schema=False)
async def no_function() -> Response:
    """`/functions/v1/` names no function: Supabase's 404."""
    return errors.not_found()


@router.api_route("/{name}", methods=METHODS, include_in_schema=False)
@router.api_route("/{name}/{path:path}", methods=METHODS, include_in_schema=False)
async def invoke(request: Request, name: str, path: str = "") -> Response:
    """Run the function `name` (Supabase's `functions.invoke(name)`)."""
    settings: Settings = request.app.state.settings
    function = await asyncio.to_thread(find_function, settings, name)
    if function is None:
        return errors.not_found()
    refusal = _refusal(settings, function, request)
    if refusal is not None:
        return refusal
    runtime, client = _runtime(request)
    try:
        worker = await runtime.worker(function, _api_url(settings, request))
    except BootError:
        return errors.boot_error()
    # The wall clock of the call, from a running process (a boot has its own limit).
    deadline = asyncio.get_running_loop().time() + settings.functions_timeout_s
    url = httpx.URL(
        f"http://127.0.0.1:{worker.port}/{name}" + (f"/{path}" if path else ""),
        query=request.url.query.encode("latin-1"),
    )
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
    upstream = client.build_request(request.method, url, headers=headers, content=request.stream())
    try:
        async with asyncio.timeout_at(deadline):
            answer = await client.send(upstream, stream=True)
    except TimeoutError:
        runtime.discard(worker)
        return errors.worker_limit()
    except httpx.TransportError:
        return await _failure(runtime, worker)
    response = StreamingResponse(
        _body(runtime, worker, answer, deadline),
        status_code=answer.status_code,
        background=BackgroundTask(answer.aclose),
    )
    response.raw_headers = [  # every header as sent, repeated ones (set-cookie) included
        (key.encode("latin-1"), value.encode("latin-1"))
        for key, value in answer.headers.multi_items()
        if key.lower() not in HOP_BY_HOP
    ]
    return response


async def _body(
    runtime: FunctionRuntime, worker: Worker, answer: httpx.Response, deadline: float
) -> AsyncIterator[bytes]:
    """The function's body as it comes; past the deadline the process is killed and the
    body cut short (the status has been sent by then)."""
    loop = asyncio.get_running_loop()
    chunks = answer.aiter_raw()
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(anext(chunks), max(0.0, deadline - loop.time()))
            except StopAsyncIteration:
                return
            yield chunk
    except TimeoutError:
        runtime.discard(worker)
    except httpx.TransportError:
        with contextlib.suppress(Exception):
            await _failure(runtime, worker)
    finally:
        await answer.aclose()
