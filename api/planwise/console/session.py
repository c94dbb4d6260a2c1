"""The console's session: a cookie holding an HS256 JWT signed with JWT_SECRET (audience
`planwise:console`, so no access token passes for it, nor it for one), HttpOnly,
SameSite=Strict, Secure over HTTPS, scoped to `/admin`. It names the user and carries the
CSRF token every form posts back; the user's role is read from the database on every
request, so a demotion takes effect at once.

Sign-in itself is protected by a double-submit token: `/admin/login` sets a random value
in a cookie of its own and in the form; the POST must bring both, equal.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import Response

from planwise.config import Settings
from planwise.users.security import decode_jwt, sign_jwt

COOKIE = "planwise_console"
LOGIN_COOKIE = "planwise_console_login"
AUDIENCE = "planwise:console"
PATH = "/admin"
SESSION_SECONDS = 8 * 3600


@dataclass(frozen=True)
class ConsoleSession:
    user_id: int
    csrf: str


def _secret(settings: Settings) -> str:
    return settings.jwt_secret.get_secret_value()


def _set_cookie(request: Request, response: Response, name: str, value: str, seconds: int) -> None:
    response.set_cookie(
        name, value, max_age=seconds, path=PATH, httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip


def start(request: Request, response: Response, settings: Settings, user_id: int) -> None:
    """Sign `user_id` in: a fresh session cookie with a fresh CSRF token."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(user_id), "aud": AUDIENCE, "iat": now, "exp": now + SESSION_SECONDS,
        "csrf": secrets.token_urlsafe(32),
    }  # fmt: skip
    _set_cookie(request, response, COOKIE, sign_jwt(_secret(settings), claims), SESSION_SECONDS)
    response.delete_cookie(LOGIN_COOKIE, path=PATH)


def end(response: Response) -> None:
    response.delete_cookie(COOKIE, path=PATH)


def current(request: Request, settings: Settings) -> ConsoleSession | None:
    """The session the request's cookie holds, if it is ours, intact and not expired."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        claims = decode_jwt(token, _secret(settings), audience=AUDIENCE,
                            require=("sub", "exp", "csrf"))  # fmt: skip
        return ConsoleSession(int(claims["sub"]), str(claims["csrf"]))
    except (jwt.PyJWTError, ValueError):
        return None


def login_token(request: Request) -> str:
    """The sign-in form's double-submit token: the one its cookie holds, else a new one."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)


def remember_login_token(request: Request, response: Response, token: str) -> None:
    _set_cookie(request, response, LOGIN_COOKIE, token, 3600)


def same(offered: str | None, expected: str | None) -> bool:
    """Whether a posted token equals the expected one (both present), in constant time."""
    if not offered or not expected:  # an empty cookie must not match an empty field
        return False
    return hmac.compare_digest(offered.encode(), expected.encode())
