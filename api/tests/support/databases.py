"""Databases under test: where they are, and how to reach them."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from sqlalchemy.engine import make_url

from planwise.db.engine import libpq_url

TEST_JWT_SECRET = "test-secret-" + "x" * 40
TEST_SUPABASE_JWT_SECRET = "supabase-project-jwt-secret-" + "y" * 40


@dataclass(frozen=True)
class DatabaseUnderTest:
    name: str
    admin_url: str
    app_url: str
    read_url: str


def on_database(url: str, dbname: str) -> str:
    """The same server and credentials, another database."""
    return make_url(url).set(database=dbname).render_as_string(hide_password=False)


def connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(libpq_url(url), application_name="planwise-tests")
