"""Settings: the document's variables, their defaults, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from planwise.config import ConfigError, Settings, load_settings

DOCUMENT_VARIABLES = (
    "DATABASE_URL",
    "MIGRATION_DATABASE_URL",
    "DATABASE_POOL_SIZE",
    "DATABASE_MAX_OVERFLOW",
    "DATABASE_POOL_TIMEOUT",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in DOCUMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_the_documents() -> None:
    settings = Settings(_env_file=None)
    assert (settings.database_pool_size, settings.database_max_overflow) == (20, 10)
    # The document's DATABASE_POOL_TIMEOUT=30 would equal the statement timeout; kept
    # apart instead (issue 15): 3 s to get a connection, 10 s for a statement.
    assert (settings.database_pool_timeout, settings.database_statement_timeout_ms) == (3, 10_000)
    assert settings.uses_managed_cluster


def test_migration_url_defaults_to_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:pw@db.example:5432/planwise")
    settings = Settings(_env_file=None)
    assert settings.admin_url == settings.app_url == "postgresql://app:pw@db.example:5432/planwise"
    assert not settings.uses_managed_cluster
    monkeypatch.setenv("MIGRATION_DATABASE_URL", "postgresql://owner:pw@db.example:5432/planwise")
    assert Settings(_env_file=None).admin_url.startswith("postgresql://owner:")


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DATABASE_POOL_SIZE=7\nDATABASE_POOL_TIMEOUT=2.5\n")
    settings = Settings(_env_file=env_file)
    assert (settings.database_pool_size, settings.database_pool_timeout) == (7, 2.5)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_POOL_SIZE", "twenty"),
        ("DATABASE_POOL_SIZE", "0"),
        ("DATABASE_MAX_OVERFLOW", "-1"),
        ("DATABASE_POOL_TIMEOUT", "soon"),
        ("DATABASE_URL", "mysql://root@localhost/planwise"),
        ("MIGRATION_DATABASE_URL", "not a url"),
        ("PLANWISE_PG_PORT", "80"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()
