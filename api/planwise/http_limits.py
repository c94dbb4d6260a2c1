"""Limits of every HTTP request, enforced before what they refuse is buffered.

Two layers, with the same limits (settings `HTTP_MAX_*`):

- `LimitedHttpToolsProtocol`, the uvicorn protocol `planwise serve` runs (uvicorn's
  httptools protocol, which bounds nothing): it counts the bytes of a request's head while
  they arrive and answers 414 (request target) or 431 (header block, number of headers)
  as soon as a limit is passed, having held at most the limit plus one socket read;
- `RequestLimits`, ASGI middleware, for whatever server runs the app (TestClient
  included): the same head checks on the parsed scope, and the body limit, 413 on a
  declared `Content-Length` before a byte is read, or while counting a chunked body.

Storage uploads are left to Storage's own limit (`STORAGE_MAX_OBJECT_BYTES`). Every
refusal is answered in the shape of the surface asked (`refusal`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from planwise.auth.routes import PREFIX as AUTH_PREFIX
from planwise.auth.routes import error_response as auth_error_response
from planwise.auth.service import AuthError
from planwise.config import Settings, get_settings
from planwise.http_exposure import RAW_HEADERS
from planwise.rest.errors import RestError
from planwise.storage.errors import StorageError
from planwise.storage.routes import PREFIX as STORAGE_PREFIX

REST_PREFIX = "/rest/v1"
REALTIME_PREFIX = "/realtime/v1"
STORAGE_OBJECTS = f"{STORAGE_PREFIX}/object/"
STORAGE_JSON_ROUTES = ("list/", "sign/", "upload/sign/", "move", "copy")
"""POSTs under /storage/v1/object/ whose body is JSON, not an object's bytes."""
DRAIN_LIMIT = 16 * 1024 * 1024
"""A declared body up to this size is read and dropped after the 413 (uvicorn does it),
so that a client that reads only once it has sent everything sees the answer; beyond it
the connection is closed."""
LINGER_SECONDS = 1.0
LINGER_BYTES = 1024 * 1024
"""After refusing a head, drop what still arrives for this long (at most this much) before
closing, so the client reads the answer instead of a connection reset."""

TOO_LARGE = 413
URI_TOO_LONG = 414
HEADERS_TOO_LARGE = 431


@dataclass(frozen=True)
class Limits:
    body_bytes: int
    url_bytes: int
    header_bytes: int
    headers: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            settings.http_max_body_bytes,
            settings.http_max_url_bytes,
            settings.http_max_header_bytes,
            settings.http_max_headers,
        )

    def head_refusal(
        self, url_bytes: int, headers: Sequence[tuple[bytes, bytes]]
    ) -> tuple[int, str] | None:
        """(status, message) for a request line or header block beyond the limits."""
        if url_bytes > self.url_bytes:
            return URI_TOO_LONG, f"the request target exceeds {self.url_bytes} bytes"
        if len(headers) > self.headers:
            return HEADERS_TOO_LARGE, f"more than {self.headers} header fields"
        if sum(len(name) + len(value) for name, value in headers) > self.header_bytes:
            return HEADERS_TOO_LARGE, f"the header fields exceed {self.header_bytes} bytes"
        return None

    def body_refusal(self) -> tuple[int, str]:
        return TOO_LARGE, f"the request body exceeds {self.body_bytes} bytes"


def refusal(
    path: str, headers: Sequence[tuple[bytes, bytes]], status: int, message: str
) -> Response:
    """A refused request's answer, in the error shape of the surface it was sent to."""
    response: Response
    if path.startswith(AUTH_PREFIX):
        request = Request({"type": "http", "headers": list(headers), "path": path})
        response = auth_error_response(request, AuthError(status, "validation_failed", message))
    elif path.startswith(REST_PREFIX):
        code = "PGRST102" if status == TOO_LARGE else "PGRST100"
        response = JSONResponse(RestError(status, code, message).body, status)
    elif path.startswith(STORAGE_PREFIX):
        error = "Payload too large" if status == TOO_LARGE else "InvalidRequest"
        code = "EntityTooLarge" if status == TOO_LARGE else "InvalidRequest"
        response = JSONResponse(StorageError(status, error, message, code).body(), status)
    elif path.startswith(REALTIME_PREFIX):  # Realtime's REST broadcast answers {"message"}
        response = JSONResponse({"message": message}, status)
    else:
        response = JSONResponse({"detail": message}, status)
    return response


def _is_upload(method: str, path: str) -> bool:
    """A storage upload: its body is an object, bounded by Storage's own limit."""
    if method not in ("POST", "PUT") or not path.startswith(STORAGE_OBJECTS):
        return False
    rest = path[len(STORAGE_OBJECTS) :]
    if method == "PUT":
        return True
    return not rest.startswith(STORAGE_JSON_ROUTES)


# -- the ASGI layer ------------------------------------------------------------------------


class RequestLimits:
    """Pure ASGI: head limits on the scope, the body limit on what the app receives."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        url_bytes = len(scope.get("raw_path") or path.encode()) + len(scope["query_string"])
        refused = self.limits.head_refusal(url_bytes, headers)
        if refused is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1009})
                return
            answer = refusal(path, headers, *refused)
            answer.headers["Connection"] = "close"
            await answer(scope, receive, send)
            return
        if scope["type"] == "websocket" or _is_upload(scope["method"], path):
            await self.app(scope, receive, send)
            return
        declared, chunked, expects_continue = _framing(headers)
        if declared is not None and declared > self.limits.body_bytes:
            answer = refusal(path, headers, *self.limits.body_refusal())
            if declared > DRAIN_LIMIT or expects_continue:  # the body may never come
                answer.headers["Connection"] = "close"
            await answer(scope, receive, send)
            return
        if not chunked:  # no body, or one the server ends at its declared length
            await self.app(scope, receive, send)
            return
        await _BoundedBody(self.app, self.limits, scope, receive, send).run()


def _framing(headers: Sequence[tuple[bytes, bytes]]) -> tuple[int | None, bool, bool]:
    """The declared Content-Length, whether the body comes chunked (of unknown size), and
    whether the client waits for `100 Continue` before sending it."""
    declared = None
    chunked = expects_continue = False
    for name, value in headers:
        if name == b"content-length" and value.strip().isdigit():
            declared = int(value)
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"expect":
            expects_continue = value.lower() == b"100-continue"
    return declared, chunked, expects_continue


class _BoundedBody:
    """One request whose body is counted as the app receives it: past the limit the
    client gets the 413 (if the app has not answered yet), the app a disconnect, and
    whatever the app still sends or raises about it is dropped."""

    def __init__(
        self, app: ASGIApp, limits: Limits, scope: Scope, receive: Receive, send: Send
    ) -> None:
        self.app = app
        self.limits = limits
        self.scope = scope
        self._receive = receive
        self._send = send
        self.received = 0
        self.started = False
        self.refused = False

    async def run(self) -> None:
        try:
            await self.app(self.scope, self.receive, self.send)
        except Exception:
            if not self.refused:
                raise

    async def receive(self) -> Message:
        if self.refused:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limits.body_bytes:
                self.refused = True
                if not self.started:
                    answer = refusal(
                        self.scope["path"], self.scope["headers"], *self.limits.body_refusal()
                    )
                    answer.headers["Connection"] = "close"
                    await answer(self.scope, self._receive, self._send)
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


# -- the server layer ----------------------------------------------------------------------


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the head limits checked while bytes arrive.

    httptools hands over a header only once it is complete, so the bytes of a head still
    incomplete are counted per socket read: the head is refused once more than
    `header_bytes + url_bytes` arrived without its end (at most one read more is held).
    The exact checks run when the head is complete, before the app sees the request.
    """

    limits: ClassVar[Limits | None] = None
    """None: from the process's settings (`planwise serve`); `for_settings` sets it."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.head_limits = self.limits or Limits.of(get_settings())
        self.in_head = True
        self.head_began_in_read = False
        self.head_bytes = 0
        self.refused = False
        self.lingered = 0

    @classmethod
    def for_settings(cls, settings: Settings) -> type[LimitedHttpToolsProtocol]:
        """This protocol with the limits of `settings` (for a server in this process)."""
        return type(cls.__name__, (cls,), {"limits": Limits.of(settings)})

    def data_received(self, data: bytes) -> None:
        if self.refused:
            self.lingered += len(data)
            if self.lingered > LINGER_BYTES:
                self.transport.close()
            return
        self.head_began_in_read = False
        super().data_received(data)
        if self.refused or not self.in_head:
            return
        if not self.head_began_in_read:  # the whole read belongs to the incomplete head
            self.head_bytes += len(data)
        if self.head_bytes > self.head_limits.header_bytes + self.head_limits.url_bytes:
            limit = self.head_limits.header_bytes
            self._refuse(HEADERS_TOO_LARGE, f"the header fields exceed {limit} bytes")

    def on_message_begin(self) -> None:
        if self.refused:
            return
        super().on_message_begin()
        self.in_head = True
        self.head_began_in_read = True
        self.head_bytes = 0

    def on_url(self, url: bytes) -> None:
        if self.refused:
            return
        super().on_url(url)
        refused = self.head_limits.head_refusal(len(self.url), ())
        if refused is not None:
            self._refuse(*refused)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.refused:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self.refused:
            return
        self.in_head = False
        refused = self.head_limits.head_refusal(len(self.url), self.headers)
        if refused is not None:
            self._refuse(*refused)
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self.refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self.refused:
            return
        self.in_head = True
        self.head_bytes = 0
        super().on_message_complete()

    def _refuse(self, status: int, message: str) -> None:
        """Answer, stop parsing, drop what still arrives for a moment, then close; or, while
        the response of an earlier pipelined request is under way, close after it."""
        self.refused = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
            return
        path = self.url.split(b"?", 1)[0].decode("latin-1")
        self.transport.write(_raw(refusal(path, self.headers or [], status, message)))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def _raw(response: Response) -> bytes:
    """`response` as HTTP/1.1 bytes, with the security headers and `connection: close`."""
    headers = [
        *response.raw_headers,
        *RAW_HEADERS,
        (b"connection", b"close"),
    ]
    lines = [STATUS_LINE[response.status_code]]
    lines += [name + b": " + value + b"\r\n" for name, value in headers]
    return b"".join([*lines, b"\r\n", bytes(response.body)])


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn options of `planwise serve`: our protocol; websocket frames bounded too."""
    return {
        "http": f"{__name__}:{LimitedHttpToolsProtocol.__name__}",
        "ws_max_size": settings.http_max_body_bytes,
    }


# -- websockets per client address ---------------------------------------------------------


class ClientSlots:
    """How many websockets each client address holds; at most `limit` at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held: Counter[str] = Counter()

    @contextmanager
    def hold(self, address: str) -> Iterator[bool]:
        """True (and a slot held until the block ends) if `address` may open another."""
        if self.held[address] >= self.limit:
            yield False
            return
        self.held[address] += 1
        try:
            yield True
        finally:
            self.held[address] -= 1
            if not self.held[address]:
                del self.held[address]
