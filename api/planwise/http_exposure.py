"""What every response says about itself, and who may read the API's self-description.

`SecurityHeaders` adds, to every HTTP response that does not set them itself (Storage's
object downloads set their own CSP), `X-Content-Type-Options: nosniff`, a
`Content-Security-Policy` that lets an API answer load nothing and be framed nowhere (the
interactive docs get one allowing the assets FastAPI's pages load), `Referrer-Policy`,
`X-Frame-Options`, and `Cache-Control: no-store` on the paths that hand out tokens.

`ExposureGuard` keeps `/docs`, `/redoc`, `/openapi.json` and `/metrics` behind
`OPS_CREDENTIAL` when `DOCS_ACCESS` / `METRICS_ACCESS` say `credential` (`off` is done by
not mounting them at all, in `app.py`).
"""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
DOCS_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
    "https://cdn.redoc.ly; connect-src 'self'; worker-src blob:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": API_CSP,
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
RAW_HEADERS = [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]
DOCS_HEADERS = [
    (name, DOCS_CSP.encode() if name == b"content-security-policy" else value)
    for name, value in RAW_HEADERS
]
NO_STORE = [(b"cache-control", b"no-store")]
DOCS_PATHS = ("/docs", "/redoc")
TOKEN_PATHS = (
    "/api/v1/auth/",  # our login and registration
    "/auth/v1/",  # GoTrue: sessions, users
    "/storage/v1/object/sign/",  # signed download URLs
    "/storage/v1/object/upload/sign/",  # signed upload URLs
)
"""Answers under these paths may carry tokens: no cache may keep them (unless the route
itself says how, as a signed download does)."""
CHALLENGE = 'Basic realm="planwise operations", charset="UTF-8"'


class SecurityHeaders:
    """Pure ASGI: the headers above, on every HTTP response, unless already set."""

    def __init__(self, app: ASGIApp, docs_paths: tuple[str, ...] = DOCS_PATHS) -> None:
        self.app = app
        self.docs_paths = docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        docs = path.startswith(self.docs_paths)
        no_store = path.startswith(TOKEN_PATHS)

        extra = [*(DOCS_HEADERS if docs else RAW_HEADERS), *(NO_STORE if no_store else ())]

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                message["headers"] = [*headers, *(h for h in extra if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, with_headers)


def presents(authorization: str, credential: str) -> bool:
    """Whether an Authorization header carries `credential`: as a bearer token, or as the
    password of HTTP Basic authentication (any user name, so browsers can log in)."""
    scheme, _, value = authorization.strip().partition(" ")
    offered = value.strip()
    if scheme.lower() == "basic":
        try:
            offered = base64.b64decode(offered, validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return False
    elif scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(offered.encode(), credential.encode())


class ExposureGuard:
    """Pure ASGI: `guarded` paths answer 401 unless the request presents `credential`."""

    def __init__(self, app: ASGIApp, guarded: frozenset[str], credential: str) -> None:
        self.app = app
        self.guarded = guarded
        self.credential = credential

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.guarded:
            authorization = next(
                (v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), ""
            )
            if not presents(authorization, self.credential):
                answer = JSONResponse(
                    {"detail": "this path needs OPS_CREDENTIAL (Basic or Bearer)"},
                    status_code=401,
                    headers={"WWW-Authenticate": CHALLENGE},
                )
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)
