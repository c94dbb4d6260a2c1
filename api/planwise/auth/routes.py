"""`/auth/v1`: Supabase Auth's (GoTrue's) REST paths, as supabase-js and supabase-py call them.

As behind Supabase's gateway, every request must carry an `apikey` (header or query
parameter): the anon or service_role key, or a user's access token, i.e. a JWT signed
with SUPABASE_JWT_SECRET. Without one the answer is the gateway's 401. Everything else,
invalid input included, is answered in GoTrue's error shape (see `AuthErrorBody`), whose
`X-Supabase-Api-Version` behaviour the clients' AuthApiError relies on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractContextManager, nullcontext
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from psycopg import errors as pg_errors
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from planwise.auth import service
from planwise.auth.models import AuthErrorBody, AuthSettings, AuthUser, Health, UserList
from planwise.auth.models import Session as SessionResponse
from planwise.auth.schemas import (
    AdminDeleteBody,
    AdminUserBody,
    SignupBody,
    TokenBody,
    UserUpdateBody,
)
from planwise.auth.service import AuthError, Client, TokenClaims, TokenConfig
from planwise.config import ConfigError, Settings
from planwise.deps import Responses
from planwise.supabase.keys import ADMIN_ROLES, classify_apikey, jwt_secret
from planwise.users.security import verified_claims
from planwise.users.throttle import HashingBusy, LoginGuard, Throttled, hashing_slot

PREFIX = "/auth/v1"
API_VERSION_HEADER = "X-Supabase-Api-Version"
API_VERSION_2024 = date(2024, 1, 1)
NO_API_KEY = {
    "message": "No API key found in request",
    "hint": "No `apikey` request header or url param was found.",
}
INVALID_API_KEY = {
    "message": "Invalid API key",
    "hint": "Double check your Supabase `anon` or `service_role` API key.",
}
NOT_LOCAL = "the `auth` schema belongs to Supabase Auth here: use the project's own /auth/v1"
RATE_LIMITED = "Request rate limit reached"  # GoTrue's limitHandler


def _api_version_2024(request: Request) -> bool:
    """GoTrue's DetermineClosestAPIVersion: a date on or after 2024-01-01."""
    value = request.headers.get(API_VERSION_HEADER, "")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return False
    try:
        return date.fromisoformat(value) >= API_VERSION_2024
    except ValueError:
        return False


def error_response(request: Request, error: AuthError) -> JSONResponse:
    """GoTrue's HandleResponseError, both API versions."""
    headers: dict[str, str] = {}
    body: dict[str, Any]
    if error.oauth:
        body = {"error": error.error_code, "error_description": error.message}
    elif _api_version_2024(request):
        body = {"code": error.error_code, "message": error.message}
        headers[API_VERSION_HEADER] = API_VERSION_2024.isoformat()
    else:
        body = {"code": error.status, "error_code": error.error_code, "msg": error.message}
    if not error.oauth:
        headers["x-sb-error-code"] = error.error_code
    if error.reasons is not None:
        body["weak_password"] = {"reasons": error.reasons}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return JSONResponse(body, status_code=error.status, headers=headers)


def _secret(request: Request) -> str:
    try:
        return jwt_secret(request.app.state.settings)
    except ConfigError:
        raise AuthError(
            501, "unexpected_failure", "SUPABASE_JWT_SECRET is not set: the local Auth is off"
        ) from None


def _gateway_refusal(request: Request, secret: str) -> JSONResponse | None:
    """Supabase's gateway: no or a foreign `apikey` gets 401 before Auth sees the request."""
    apikey = request.headers.get("apikey") or request.query_params.get("apikey")
    if not apikey:
        return JSONResponse(NO_API_KEY, status_code=401)
    if classify_apikey(secret, apikey) is None:
        return JSONResponse(INVALID_API_KEY, status_code=401)
    return None


def _validation_error(error: RequestValidationError) -> AuthError:
    first = error.errors()[0] if error.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()))
    detail = f"{where}: {first.get('msg', 'invalid input')}"
    # What Go's JSON decoding would refuse (not JSON, wrong types) is bad_json; a value
    # that decodes but cannot be stored (NUL characters) fails validation.
    if first.get("loc", ("",))[0] == "body" and first.get("type") != "value_error":
        return AuthError(400, "bad_json", f"Could not parse request body as JSON: {detail}")
    return AuthError(400, "validation_failed", detail)


def _rate_limited(error: Throttled | HashingBusy) -> AuthError:
    """GoTrue's answer to a client over a rate limit (429 over_request_rate_limit), also
    when no password-hashing slot frees up in time; Retry-After says when to come back."""
    return AuthError(429, "over_request_rate_limit", RATE_LIMITED, retry_after=error.retry_after)


def _database_refusal(error: DBAPIError) -> AuthError | None:
    original = error.orig
    # On a Supabase project app_service has no USAGE on Supabase's `auth` schema, or
    # (granted it) finds none of the local Auth's functions there.
    not_ours = isinstance(original, pg_errors.UndefinedFunction | pg_errors.InvalidSchemaName)
    if not_ours or (
        isinstance(original, pg_errors.InsufficientPrivilege) and "schema auth" in str(original)
    ):
        return AuthError(501, "unexpected_failure", NOT_LOCAL)
    if isinstance(original, pg_errors.DataError):
        reason = str(original).splitlines()[0]
        return AuthError(400, "validation_failed", f"invalid value: {reason}")
    return None


class GoTrueRoute(APIRoute):
    """The gateway's apikey check, then GoTrue's error shape for every refusal."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def gotrue_handler(request: Request) -> Response:
            try:
                refusal = _gateway_refusal(request, _secret(request))
                if refusal is not None:
                    return refusal
                return await handler(request)
            except AuthError as error:
                return error_response(request, error)
            except (Throttled, HashingBusy) as error:
                return error_response(request, _rate_limited(error))
            except RequestValidationError as error:
                return error_response(request, _validation_error(error))
            except DBAPIError as error:
                refused = _database_refusal(error)
                if refused is None:
                    raise
                return error_response(request, refused)

        return gotrue_handler


ERRORS: Responses = {
    "4XX": {"model": AuthErrorBody, "description": "refused; `error_code` (or `code`) says why"},
    501: {"model": AuthErrorBody, "description": "the `auth` schema is Supabase's"},
    503: {"description": "database unavailable"},
}

router = APIRouter(prefix=PREFIX, tags=["auth"], route_class=GoTrueRoute, responses=ERRORS)


def auth_session(request: Request) -> Iterator[Session]:
    """The request's transaction: committed on success, and on the errors GoTrue commits
    (a detected refresh-token reuse revokes the token family); else rolled back."""
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        session.begin()
        try:
            yield session
        except AuthError as error:
            if error.commit:
                session.commit()
            else:
                session.rollback()
            raise
        except BaseException:
            session.rollback()
            raise
        session.commit()


def token_config(request: Request) -> TokenConfig:
    settings: Settings = request.app.state.settings
    issuer = str(request.base_url).rstrip("/") + PREFIX
    return TokenConfig(_secret(request), settings.jwt_expire_minutes * 60, issuer)


def login_guard(request: Request) -> LoginGuard:
    return LoginGuard(request.app.state.engine, request.app.state.settings)


def hashing(request: Request) -> AbstractContextManager[None]:
    """A password-hashing slot (HashingBusy, answered 429, when none frees up in time)."""
    settings: Settings = request.app.state.settings
    return hashing_slot(settings)


def client_of(request: Request) -> Client:
    return Client.of(
        request.headers.get("user-agent"), request.client.host if request.client else None
    )


def user_claims(
    request: Request, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
) -> TokenClaims:
    return service.bearer_claims(_secret(request), authorization)


def admin_claims(
    request: Request, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
) -> None:
    """GoTrue's requireAdmin: the bearer token's role must be service_role (or
    supabase_admin); the apikey alone does not make an administrator."""
    match = re.fullmatch(r"[Bb]earer (\S+)", (authorization or "").strip())
    if match is None:
        raise AuthError(401, "no_authorization", "This endpoint requires a valid Bearer token")
    service.require_admin(verified_claims(_secret(request), match.group(1)), ADMIN_ROLES)


DbSession = Annotated[Session, Depends(auth_session, scope="function")]
Config = Annotated[TokenConfig, Depends(token_config)]
Claims = Annotated[TokenClaims, Depends(user_claims)]
Admin = Depends(admin_claims)


def _json(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status_code, headers=headers)


# -- public ------------------------------------------------------------------------------


@router.get("/health", response_model=Health)
def health() -> JSONResponse:
    return _json(
        {
            "version": "planwise",
            "name": "GoTrue",
            "description": "GoTrue is a user registration and authentication API",
        }
    )


@router.get("/settings", response_model=AuthSettings)
def settings() -> JSONResponse:
    """Email and password only; email confirmation is off (mailer_autoconfirm), as in
    Supabase's local stack."""
    providers = dict.fromkeys(
        ("anonymous_users", "apple", "azure", "bitbucket", "discord", "facebook", "figma",
         "fly", "github", "gitlab", "google", "keycloak", "kakao", "linkedin", "linkedin_oidc",
         "notion", "spotify", "slack", "slack_oidc", "snapchat", "twitch", "twitter", "workos",
         "zoom", "phone"),
        False,
    )  # fmt: skip
    return _json(
        {
            "external": {**providers, "email": True},
            "disable_signup": False,
            "mailer_autoconfirm": True,
            "phone_autoconfirm": False,
            "sms_provider": "",
            "saml_enabled": False,
            "saml_private_key_next_configured": False,
            "passkeys_enabled": False,
        }
    )


@router.post("/signup", response_model=SessionResponse)
def signup(request: Request, session: DbSession, config: Config, body: SignupBody) -> JSONResponse:
    """A new email user, confirmed at once and signed in (a session is returned)."""
    with hashing(request):
        grant = service.signup(
            session, config, body.email, body.phone, body.password, body.data, client_of(request)
        )
    return _json(grant)


@router.post("/token", response_model=SessionResponse)
def token(
    request: Request,
    session: DbSession,
    config: Config,
    body: TokenBody,
    grant_type: Annotated[str, Query(max_length=50)] = "",
) -> JSONResponse:
    """`grant_type=password` (email and password) or `refresh_token` (rotation)."""
    if grant_type == "password":
        return _json(
            service.password_grant(
                session,
                config,
                body.email,
                body.phone,
                body.password,
                client_of(request),
                login_guard(request),
            )
        )
    if grant_type == "refresh_token":
        return _json(service.refresh_grant(session, config, body.refresh_token))
    raise AuthError(400, "invalid_credentials", "unsupported_grant_type")


@router.get("/user", response_model=AuthUser)
def get_user(session: DbSession, claims: Claims) -> JSONResponse:
    return _json(service.current_user(session, claims))


@router.put("/user", response_model=AuthUser)
def update_user(
    request: Request, session: DbSession, claims: Claims, body: UserUpdateBody
) -> JSONResponse:
    """Email (changed at once: there is no mailer), password, `data` (user_metadata)."""
    with hashing(request) if body.password is not None else nullcontext():
        user = service.update_user(
            session, claims, body.email, body.phone, body.password, body.data, body.app_metadata
        )
    return _json(user)


@router.post("/logout", status_code=204)
def logout(
    session: DbSession,
    claims: Claims,
    scope: Annotated[str, Query(max_length=20)] = "global",
) -> Response:
    """End this session (`local`), every other one (`others`) or all (`global`)."""
    service.logout(session, claims, scope or "global")
    return Response(status_code=204)


# -- admin (service_role) --------------------------------------------------------------


@router.get("/admin/users", response_model=UserList, dependencies=[Admin])
def admin_list_users(
    request: Request,
    session: DbSession,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=1000)] = service.ADMIN_PAGE_SIZE,
) -> JSONResponse:
    users, total = service.admin_list_users(session, page, per_page)
    base = str(request.url.remove_query_params(["page", "per_page"]))
    last = max(1, -(-total // per_page))
    links = [f'<{base}?page={page + 1}&per_page={per_page}>; rel="next"'] if page < last else []
    links.append(f'<{base}?page={last}&per_page={per_page}>; rel="last"')
    return _json(
        {"users": users, "aud": service.AUDIENCE},
        headers={"X-Total-Count": str(total), "Link": ", ".join(links)},
    )


@router.post("/admin/users", response_model=AuthUser, dependencies=[Admin])
def admin_create_user(request: Request, session: DbSession, body: AdminUserBody) -> JSONResponse:
    with hashing(request) if body.password is not None else nullcontext():
        user = service.admin_create_user(session, body)
    return _json(user)


@router.get("/admin/users/{user_id}", response_model=AuthUser, dependencies=[Admin])
def admin_get_user(session: DbSession, user_id: str) -> JSONResponse:
    return _json(service.admin_get_user(session, service.parse_user_id(user_id)))


@router.put("/admin/users/{user_id}", response_model=AuthUser, dependencies=[Admin])
def admin_update_user(
    request: Request, session: DbSession, user_id: str, body: AdminUserBody
) -> JSONResponse:
    with hashing(request) if body.password is not None else nullcontext():
        user = service.admin_update_user(session, service.parse_user_id(user_id), body)
    return _json(user)


@router.delete("/admin/users/{user_id}", dependencies=[Admin])
def admin_delete_user(
    session: DbSession, user_id: str, body: Annotated[AdminDeleteBody | None, Body()] = None
) -> JSONResponse:
    """Hard delete, or with `should_soft_delete` a soft one (see the migration)."""
    soft = body.should_soft_delete if body else False
    service.admin_delete_user(session, service.parse_user_id(user_id), soft)
    return _json({})
