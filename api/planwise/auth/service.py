"""GoTrue's email-and-password flows over the `auth` schema's SECURITY DEFINER functions.

Each function takes the request's session, runs bound statements, and never commits
(the route's unit of work does). Passwords are hashed here, with bcrypt at GoTrue's cost
(`$2a$10$…`), and verified here (bcrypt, and argon2 as GoTrue also accepts), so hashes
move between this database and a Supabase project's unchanged. Errors are `AuthError`s
carrying GoTrue's HTTP status, error code and message (internal/api, apierrors).
The password grant is throttled by `planwise.users.throttle`, whose counters are written
in autocommit statements of their own (a refused login rolls the request back, not them).
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import string
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import bcrypt
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import text
from sqlmodel import Session

from planwise.auth.schemas import AdminUserBody
from planwise.users.security import sign_jwt, verified_claims
from planwise.users.throttle import LoginGuard

AUDIENCE = "authenticated"
BCRYPT_COST = 10  # GoTrue's bcrypt.DefaultCost
MIN_PASSWORD_LENGTH = 6  # Supabase's default (auth.minimum_password_length)
MAX_PASSWORD_BYTES = 72  # bcrypt reads no further; GoTrue refuses longer passwords
MAX_EMAIL_LENGTH = 255
REFRESH_TOKEN_REUSE_INTERVAL = 10  # seconds; Supabase's refresh_token_reuse_interval
REFRESH_TOKEN_LENGTH = 32
ADMIN_PAGE_SIZE = 50  # GoTrue's default per_page
INVALID_LOGIN = "Invalid login credentials"

# checkmail.ValidateFormat, which GoTrue uses.
EMAIL_PATTERN = re.compile(
    r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$"
)
# Go's time.ParseDuration, as GoTrue parses `ban_duration`.
DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
UNBAN = "none"
HASH_PREFIXES = ("$2a$", "$2b$", "$2y$", "$argon2")

_argon2 = Argon2Hasher()
_ALPHANUMERIC = string.ascii_letters + string.digits


@cache
def _dummy_hash() -> bytes:
    """Made on first use, not at import (as users.security's)."""
    return bcrypt.hashpw(b"timing-equaliser", bcrypt.gensalt(BCRYPT_COST, b"2a"))


@dataclass
class AuthError(Exception):
    """An answer in GoTrue's error shape. `commit`: keep what the request wrote (GoTrue's
    NewCommitWithError, e.g. a revoked token family); `oauth`: OAuth's error shape."""

    status: int
    error_code: str
    message: str
    reasons: list[str] | None = None
    oauth: bool = False
    commit: bool = False
    retry_after: int | None = None

    def __str__(self) -> str:
        return f"{self.status} {self.error_code}: {self.message}"


def bad_request(code: str, message: str) -> AuthError:
    return AuthError(400, code, message)


@dataclass(frozen=True)
class TokenConfig:
    secret: str
    expires_in: int
    issuer: str


@dataclass(frozen=True)
class Client:
    """Who is asking: stored on the session as GoTrue does."""

    user_agent: str | None
    ip: str | None
    host: str | None = None
    """The peer as the server reports it (`ip` when it is an address): for throttling."""

    @classmethod
    def of(cls, user_agent: str | None, host: str | None) -> Client:
        try:
            ip = str(ipaddress.ip_address(host)) if host else None
        except ValueError:
            ip = None  # e.g. the test client's "testclient"
        return cls(user_agent[:1000] if user_agent else None, ip, host)


@dataclass(frozen=True)
class TokenClaims:
    """A verified access token: who, and in which session."""

    user_id: uuid.UUID
    session_id: uuid.UUID | None
    role: str
    is_anonymous: bool


# -- passwords ---------------------------------------------------------------------------


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST, b"2a")).decode()


def verify_password(password: str, hashed: str | None) -> bool:
    """bcrypt (`$2a$`, `$2b$`, `$2y$`) and argon2 hashes, as GoTrue verifies them; the same
    work when there is no usable hash, so timing does not tell which emails exist."""
    encoded = password.encode()
    if hashed and hashed.startswith("$argon2"):
        return bool(_argon2.verify(password, hashed))
    if not hashed or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
        bcrypt.checkpw(encoded[:MAX_PASSWORD_BYTES], _dummy_hash())
        return False
    if len(encoded) > MAX_PASSWORD_BYTES:
        return False
    try:
        return bcrypt.checkpw(encoded, hashed.encode())
    except ValueError:  # a malformed hash in a restored row
        return False


def check_password_strength(password: str) -> None:
    """GoTrue's checkPasswordStrength with Supabase's defaults (6 characters, no classes)."""
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise bad_request(
            "validation_failed", f"Password cannot be longer than {MAX_PASSWORD_BYTES} characters"
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(
            422,
            "weak_password",
            f"Password should be at least {MIN_PASSWORD_LENGTH} characters.",
            reasons=["length"],
        )


def validate_email(email: str | None) -> str:
    if not email:
        raise bad_request("validation_failed", "An email address is required")
    if len(email) > MAX_EMAIL_LENGTH:
        raise bad_request("validation_failed", "An email address is too long")
    if not EMAIL_PATTERN.fullmatch(email):
        raise bad_request("validation_failed", "Unable to validate email address: invalid format")
    return email.lower()


def _no_phone(phone: str | None) -> None:
    if phone:
        raise AuthError(422, "phone_provider_disabled", "Phone logins are disabled")


# -- tokens --------------------------------------------------------------------------------


def _new_refresh_token() -> str:
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(REFRESH_TOKEN_LENGTH))


def access_token(config: TokenConfig, grant: dict[str, Any], now: datetime | None = None) -> str:
    """GoTrue's AccessTokenClaims for the user and session of `grant`."""
    user = grant["user"]
    issued = int((now or datetime.now(UTC)).timestamp())
    claims = {
        "iss": config.issuer,
        "sub": user["id"],
        "aud": user["aud"] or AUDIENCE,
        "exp": issued + config.expires_in,
        "iat": issued,
        "email": user["email"],
        "phone": user["phone"],
        "app_metadata": user["app_metadata"],
        "user_metadata": user["user_metadata"],
        "role": user["role"] or AUDIENCE,
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": grant["authenticated_at"]}],
        "session_id": grant["session_id"],
        "is_anonymous": user["is_anonymous"],
    }
    return sign_jwt(config.secret, claims)


def token_response(config: TokenConfig, grant: dict[str, Any]) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "access_token": access_token(config, grant, now),
        "token_type": "bearer",
        "expires_in": config.expires_in,
        "expires_at": int(now.timestamp()) + config.expires_in,
        "refresh_token": grant["refresh_token"],
        "user": grant["user"],
    }


def bearer_claims(secret: str, authorization: str | None) -> TokenClaims:
    """The verified access token of `Authorization: Bearer …` (GoTrue's
    requireAuthentication): 401 without one, 403 bad_jwt when it is not a user's token."""
    match = re.fullmatch(r"[Bb]earer (\S+)", (authorization or "").strip())
    if match is None:
        raise AuthError(401, "no_authorization", "This endpoint requires a valid Bearer token")
    claims = verified_claims(secret, match.group(1))
    if claims is None:
        raise AuthError(
            403, "bad_jwt", "invalid JWT: unable to parse or verify signature, token is invalid"
        )
    subject = claims.get("sub")
    if not subject:
        raise AuthError(403, "bad_jwt", "invalid claim: missing sub claim")
    try:
        user_id = uuid.UUID(str(subject))
    except ValueError:
        raise bad_request("bad_jwt", "invalid claim: sub claim must be a UUID") from None
    session_id = None
    if claims.get("session_id"):
        try:
            session_id = uuid.UUID(str(claims["session_id"]))
        except ValueError:
            raise AuthError(
                403, "bad_jwt", "invalid claim: session_id claim must be a UUID"
            ) from None
    return TokenClaims(
        user_id, session_id, str(claims.get("role", "")), bool(claims.get("is_anonymous"))
    )


# -- database ------------------------------------------------------------------------------


def _call(session: Session, sql: str, **params: Any) -> Any:
    return session.execute(text(sql), params).scalar_one()


def _jsonb(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value)


def _session_grant(
    session: Session, config: TokenConfig, user_id: uuid.UUID, client: Client
) -> dict[str, Any]:
    grant = _call(
        session,
        "SELECT auth.planwise_start_session(:user_id, :token, :agent, CAST(:ip AS inet))",
        user_id=user_id,
        token=_new_refresh_token(),
        agent=client.user_agent,
        ip=client.ip,
    )
    if grant is None:
        raise bad_request("invalid_credentials", INVALID_LOGIN)
    return token_response(config, grant)


def signup(
    session: Session,
    config: TokenConfig,
    email: str | None,
    phone: str | None,
    password: str | None,
    data: dict[str, Any] | None,
    client: Client,
) -> dict[str, Any]:
    """POST /signup: the new user, confirmed at once (mailer_autoconfirm), signed in."""
    if not password:
        raise bad_request("validation_failed", "Signup requires a valid password")
    check_password_strength(password)
    if email and phone:
        raise bad_request(
            "validation_failed",
            "Only an email address or phone number should be provided on signup.",
        )
    if phone:
        raise bad_request("phone_provider_disabled", "Phone signups are disabled")
    address = validate_email(email)
    user = _call(
        session,
        "SELECT auth.planwise_signup(:email, :hash, CAST(:data AS jsonb))",
        email=address,
        hash=hash_password(password),
        data=_jsonb(data or {}),
    )
    if "error" in user:
        raise AuthError(422, "user_already_exists", "User already registered")
    return _session_grant(session, config, uuid.UUID(user["id"]), client)


def password_grant(
    session: Session,
    config: TokenConfig,
    email: str | None,
    phone: str | None,
    password: str | None,
    client: Client,
    guard: LoginGuard,
) -> dict[str, Any]:
    """POST /token?grant_type=password (GoTrue's ResourceOwnerPasswordGrant), throttled
    per email and client address (`guard`: Throttled / HashingBusy, answered as 429)."""
    if email and phone:
        raise bad_request(
            "validation_failed",
            "Only an email address or phone number should be provided on login.",
        )
    if phone:
        _no_phone(phone)
    if not email:
        raise bad_request("validation_failed", "missing email or phone")
    with guard.attempt("auth", email, client.host) as attempt:
        row = session.execute(
            text("SELECT * FROM auth.planwise_find_login(:email)"), {"email": email}
        ).one_or_none()
        if row is None or not row.encrypted_password:
            verify_password(password or "", None)
            raise bad_request("invalid_credentials", INVALID_LOGIN)
        if row.banned:
            raise bad_request("user_banned", "User is banned")
        if not verify_password(password or "", row.encrypted_password):
            raise bad_request("invalid_credentials", INVALID_LOGIN)
        attempt.succeeded()
    if not row.confirmed:
        raise bad_request("email_not_confirmed", "Email not confirmed")
    return _session_grant(session, config, row.user_id, client)


REFRESH_ERRORS = {
    "refresh_token_not_found": "Invalid Refresh Token: Refresh Token Not Found",
    "user_banned": "Invalid Refresh Token: User Banned",
    "session_not_found": "Invalid Refresh Token: No Valid Session Found",
    "session_expired": "Invalid Refresh Token: Session Expired",
    "refresh_token_already_used": "Invalid Refresh Token: Already Used",
}


def refresh_grant(
    session: Session, config: TokenConfig, refresh_token: str | None
) -> dict[str, Any]:
    """POST /token?grant_type=refresh_token: rotation, with GoTrue's reuse rules
    (migration d4e5f6a7b8c9, auth.planwise_refresh)."""
    if not refresh_token:
        raise AuthError(400, "invalid_request", "refresh_token required", oauth=True)
    grant = _call(
        session,
        "SELECT auth.planwise_refresh(:token, :new_token, :interval)",
        token=refresh_token,
        new_token=_new_refresh_token(),
        interval=REFRESH_TOKEN_REUSE_INTERVAL,
    )
    if "error" in grant:
        code = grant["error"]
        # A detected reuse revoked the session's tokens: that must be kept (committed).
        raise AuthError(400, code, REFRESH_ERRORS[code], commit=True)
    return token_response(config, grant)


def current_user(session: Session, claims: TokenClaims) -> dict[str, Any]:
    """The signed-in user (GoTrue's maybeLoadUserOrSession): 403 user_not_found when the
    user is gone, session_not_found when the token's session was logged out."""
    found = _call(
        session,
        "SELECT auth.planwise_current_user(:user_id, :session_id)",
        user_id=claims.user_id,
        session_id=claims.session_id,
    )
    if found["user"] is None:
        raise AuthError(403, "user_not_found", "User from sub claim in JWT does not exist")
    if not found["session"]:
        raise AuthError(
            403, "session_not_found", "Session from session_id claim in JWT does not exist"
        )
    if found["banned"]:
        raise AuthError(403, "user_banned", "User is banned")
    user: dict[str, Any] = found["user"]
    return user


def _update(
    session: Session,
    user_id: uuid.UUID,
    session_id: uuid.UUID | None,
    *,
    email: str | None = None,
    password_hash: str | None = None,
    user_metadata: dict[str, Any] | None = None,
    app_metadata: dict[str, Any] | None = None,
    email_confirm: bool = False,
    role: str | None = None,
    banned_until: datetime | None = None,
    unban: bool = False,
) -> dict[str, Any]:
    result = _call(
        session,
        "SELECT auth.planwise_update_user(:user_id, :session_id, :email, :hash, "
        "CAST(:user_meta AS jsonb), CAST(:app_meta AS jsonb), :confirm, :role, :banned, :unban)",
        user_id=user_id,
        session_id=session_id,
        email=email,
        hash=password_hash,
        user_meta=_jsonb(user_metadata),
        app_meta=_jsonb(app_metadata),
        confirm=email_confirm,
        role=role,
        banned=banned_until,
        unban=unban,
    )
    if result.get("error") == "user_not_found":
        raise AuthError(404, "user_not_found", "User not found")
    if result.get("error") == "email_exists":
        raise AuthError(
            422, "email_exists", "A user with this email address has already been registered"
        )
    user: dict[str, Any] = result["user"]
    return user


def update_user(
    session: Session,
    claims: TokenClaims,
    email: str | None,
    phone: str | None,
    password: str | None,
    data: dict[str, Any] | None,
    app_metadata: dict[str, Any] | None,
) -> dict[str, Any]:
    """PUT /user: email (changed at once: no mailer), password, user_metadata."""
    user = current_user(session, claims)
    if app_metadata is not None:
        raise AuthError(403, "not_admin", "Updating app_metadata requires admin privileges")
    if phone and phone != user["phone"]:
        _no_phone(phone)
    address = validate_email(email) if email else None
    new_hash = None
    if password is not None:
        check_password_strength(password)
        current = _call(session, "SELECT auth.planwise_password_hash(:id)", id=claims.user_id)
        if current and verify_password(password, current):
            raise AuthError(
                422, "same_password", "New password should be different from the old password."
            )
        new_hash = hash_password(password)
    return _update(
        session,
        claims.user_id,
        claims.session_id,
        email=address,
        password_hash=new_hash,
        user_metadata=data,
    )


def logout(session: Session, claims: TokenClaims, scope: str) -> None:
    """POST /logout?scope=global|local|others: the sessions end, their refresh tokens with
    them; access tokens already issued stay valid until they expire, as in GoTrue."""
    if scope not in ("global", "local", "others"):
        raise bad_request("validation_failed", f"Unsupported logout scope {scope!r}")
    current_user(session, claims)
    session.execute(
        text("SELECT auth.planwise_logout(:user_id, :session_id, :scope)"),
        {"user_id": claims.user_id, "session_id": claims.session_id, "scope": scope},
    )


# -- admin (service_role) --------------------------------------------------------------


def require_admin(claims: dict[str, Any] | None, admin_roles: tuple[str, ...]) -> None:
    if claims is None:
        raise AuthError(403, "bad_jwt", "Invalid token")
    if claims.get("role") not in admin_roles:
        raise AuthError(403, "not_admin", "User not allowed")


def parse_user_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise AuthError(404, "validation_failed", "user_id must be an UUID") from None


def parse_ban(duration: str | None) -> tuple[datetime | None, bool]:
    """`ban_duration`: a Go duration ("24h", "1h30m") or "none" to lift a ban."""
    if duration is None or duration == "":
        return None, False
    if duration == UNBAN:
        return None, True
    parts = DURATION_PART.findall(duration)
    if not parts or "".join(number + unit for number, unit in parts) != duration:
        raise bad_request(
            "validation_failed",
            f"invalid format for ban duration: time: invalid duration {duration!r}",
        )
    seconds = sum(float(number) * DURATION_UNITS[unit] for number, unit in parts)
    try:
        return datetime.now(UTC) + timedelta(seconds=seconds), False
    except OverflowError:
        raise bad_request(
            "validation_failed", "invalid format for ban duration: too long"
        ) from None


def _admin_password_hash(password: str | None, password_hash: str | None) -> str | None:
    if password is not None and password_hash is not None:
        raise bad_request(
            "validation_failed", "Only a password or a password hash should be provided"
        )
    if password_hash is not None:
        if not password_hash.startswith(HASH_PREFIXES) or len(password_hash) > 255:
            raise bad_request("validation_failed", "Invalid password hash format")
        return password_hash
    if password is not None:
        if len(password.encode()) > MAX_PASSWORD_BYTES:
            raise bad_request(
                "validation_failed",
                f"Password cannot be longer than {MAX_PASSWORD_BYTES} characters",
            )
        return hash_password(password)
    return None


def admin_list_users(session: Session, page: int, per_page: int) -> tuple[list[Any], int]:
    result = _call(
        session, "SELECT auth.planwise_admin_list_users(:page, :per_page)", page=page,
        per_page=per_page,
    )  # fmt: skip
    return list(result["users"]), int(result["total"])


def admin_get_user(session: Session, user_id: uuid.UUID) -> dict[str, Any]:
    user = _call(session, "SELECT auth.planwise_admin_get_user(:id)", id=user_id)
    if user is None:
        raise AuthError(404, "user_not_found", "User not found")
    found: dict[str, Any] = user
    return found


def admin_create_user(session: Session, body: AdminUserBody) -> dict[str, Any]:
    """POST /admin/users (GoTrue's adminUserCreate), email users only."""
    if body.phone:
        _no_phone(body.phone)
    if not body.email:
        raise bad_request(
            "validation_failed", "Cannot create a user without either an email or phone"
        )
    address = validate_email(body.email)
    new_id = uuid.uuid4()
    if body.id is not None:
        try:
            new_id = uuid.UUID(body.id)
        except ValueError:
            raise bad_request(
                "validation_failed", "ID must conform to the uuid v4 format"
            ) from None
        if new_id.int == 0:
            raise bad_request("validation_failed", "ID cannot be a nil uuid")
    hashed = _admin_password_hash(body.password, body.password_hash)
    banned_until, _ = parse_ban(body.ban_duration)
    user = _call(
        session,
        "SELECT auth.planwise_admin_create_user(:id, :email, :hash, :confirm, "
        "CAST(:user_meta AS jsonb), CAST(:app_meta AS jsonb), :role, :banned)",
        id=new_id,
        email=address,
        hash=hashed,
        confirm=body.email_confirm,
        user_meta=_jsonb(body.user_metadata),
        app_meta=_jsonb(body.app_metadata),
        role=body.role,
        banned=banned_until,
    )
    if user.get("error") == "id_exists":
        raise AuthError(422, "validation_failed", "A user with this ID already exists")
    if "error" in user:
        raise AuthError(
            422, "email_exists", "A user with this email address has already been registered"
        )
    created: dict[str, Any] = user
    return created


def admin_update_user(session: Session, user_id: uuid.UUID, body: AdminUserBody) -> dict[str, Any]:
    """PUT /admin/users/{id}: a new password ends all the user's sessions, as in GoTrue."""
    if body.phone:
        _no_phone(body.phone)
    address = validate_email(body.email) if body.email else None
    banned_until, unban = parse_ban(body.ban_duration)
    return _update(
        session,
        user_id,
        None,
        email=address,
        password_hash=_admin_password_hash(body.password, body.password_hash),
        user_metadata=body.user_metadata,
        app_metadata=body.app_metadata,
        email_confirm=body.email_confirm,
        role=body.role,
        banned_until=banned_until,
        unban=unban,
    )


def admin_delete_user(session: Session, user_id: uuid.UUID, soft: bool) -> None:
    """DELETE /admin/users/{id}: hard, or soft (see migration d4e5f6a7b8c9)."""
    if not _call(
        session, "SELECT auth.planwise_admin_delete_user(:id, :soft)", id=user_id, soft=soft
    ):
        raise AuthError(404, "user_not_found", "User not found")
