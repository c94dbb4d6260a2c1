"""Login passwords for the roles the roles migration creates, taken from the environment."""

from __future__ import annotations

import base64
import hashlib
import hmac

import psycopg
from psycopg import sql
from pydantic import SecretStr

from planwise.config import Settings
from planwise.db.engine import libpq_url


def configured_role_passwords(settings: Settings) -> dict[str, SecretStr]:
    candidates = {
        "app_service": settings.app_service_password,
        "app_read": settings.app_read_password,
        "supabase_admin": settings.supabase_admin_password,
    }
    return {role: secret for role, secret in candidates.items() if secret is not None}


def scram_matches(verifier: str, password: str) -> bool:
    """Whether `password` is the one behind a stored SCRAM-SHA-256 verifier (RFC 5802)."""
    try:
        method, rest = verifier.split("$", 1)
        iterations_salt, keys = rest.split("$", 1)
        iterations, salt = iterations_salt.split(":", 1)
        stored_key = keys.split(":", 1)[0]
        salted = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), base64.b64decode(salt), int(iterations)
        )
    except ValueError:
        return False
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    expected = base64.b64encode(hashlib.sha256(client_key).digest()).decode()
    return method == "SCRAM-SHA-256" and hmac.compare_digest(expected, stored_key)


def ensure_password(
    conn: psycopg.Connection[tuple[object, ...]], role: str, password: str, *, login: bool = False
) -> bool:
    """Give `role` this password unless it already has it; True when it was changed.

    An unchanged password is left alone (checked against pg_authid where we may read it):
    a new SCRAM salt would invalidate PgBouncer's copy of the verifier. What is sent is the
    SCRAM verifier computed here by libpq, never the password itself: utility statements
    take no parameters, and pg_stat_statements and the server log keep their text.
    """
    superuser = conn.execute(
        "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
    ).fetchone() == (True,)
    if superuser:  # only superusers may read pg_authid
        row = conn.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)
        ).fetchone()
        if row and row[0] and scram_matches(str(row[0]), password):
            return False
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    conn.execute(
        sql.SQL("ALTER ROLE {} {} PASSWORD {}").format(
            sql.Identifier(role),
            sql.SQL("LOGIN" if login else ""),
            sql.Literal(verifier.decode()),
        )
    )
    return True


def set_role_passwords(admin_url: str, passwords: dict[str, SecretStr]) -> list[str]:
    """Login passwords for each existing role (`ensure_password`); returns the roles whose
    password is now the configured one."""
    changed = []
    with psycopg.connect(
        libpq_url(admin_url), autocommit=True, application_name="planwise-cli"
    ) as conn:
        for role, secret in passwords.items():
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                continue
            ensure_password(conn, role, secret.get_secret_value(), login=True)
            changed.append(role)
    return changed
