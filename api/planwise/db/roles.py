"""Login passwords for the roles the roles migration creates, taken from the environment."""

from __future__ import annotations

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


def set_role_passwords(admin_url: str, passwords: dict[str, SecretStr]) -> list[str]:
    """ALTER ROLE … LOGIN PASSWORD for each role that exists; returns the roles changed.

    The password is sent as a quoted literal (psycopg.sql.Literal): utility statements
    take no bind parameters.
    """
    changed = []
    with psycopg.connect(
        libpq_url(admin_url), autocommit=True, application_name="planwise-cli"
    ) as conn:
        for role, secret in passwords.items():
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(
                    sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(role), sql.Literal(secret.get_secret_value())
                    )
                )
                changed.append(role)
    return changed
