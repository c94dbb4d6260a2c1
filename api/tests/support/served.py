"""`planwise serve` as a subprocess, the way a user runs it (contract scripts, workers):
the bench's runner (`planwise_serve`, a free port, stopped at the end) and the
environment tests give it."""

from __future__ import annotations

import os
from pathlib import Path

from planwise.bench.api import free_port
from planwise.bench.api import serve_subprocess as planwise_serve
from tests.support.databases import TEST_JWT_SECRET, TEST_SUPABASE_JWT_SECRET, DatabaseUnderTest

__all__ = ["free_port", "planwise_serve", "serve_environment"]


def serve_environment(
    database: DatabaseUnderTest | None, home: Path, **extra: str
) -> dict[str, str]:
    """What `planwise serve` needs over `database` (None: the managed cluster `extra`'s
    PLANWISE_HOME and PLANWISE_PG_PORT name): this process's environment, the database's
    URLs, the test secrets, test mode and files under `home`; `extra` on top."""
    urls = (
        {"DATABASE_URL": database.app_url, "MIGRATION_DATABASE_URL": database.admin_url}
        if database
        else {}
    )
    inherited = {name: value for name, value in os.environ.items()
                 if name not in ("DATABASE_URL", "MIGRATION_DATABASE_URL")}  # fmt: skip
    return {
        **inherited,
        **urls,
        "JWT_SECRET": TEST_JWT_SECRET,
        "SUPABASE_JWT_SECRET": TEST_SUPABASE_JWT_SECRET,
        "PLANWISE_ENV": "test",
        "STORAGE_DIR": str(home / "storage"),
        **extra,
    }
