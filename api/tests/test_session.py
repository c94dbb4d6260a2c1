"""The unit-of-work helper: one transaction, the acting user set inside it, and gone after."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, event, text

from planwise.config import Settings
from planwise.db.engine import build_engine, discard_if_dropped
from planwise.db.session import unit_of_work
from planwise.users.service import act_as
from tests.support.databases import DatabaseUnderTest, connect


@pytest.fixture
def one_connection_engine(test_db: DatabaseUnderTest, settings: Settings) -> Iterator[Engine]:
    """Pool of exactly one connection, so consecutive units share it."""
    engine = build_engine(
        test_db.app_url,
        settings.model_copy(update={"database_pool_size": 1, "database_max_overflow": 0}),
        application_name="planwise-test-session",
    )
    yield engine
    engine.dispose()


@pytest.fixture
def registered_user(test_db: DatabaseUnderTest) -> Iterator[int]:
    with connect(test_db.app_url) as conn:
        row = conn.execute("SELECT planwise_register_user('session_user_1', 'h', 'S')").fetchone()
    assert row is not None
    yield int(str(row[0]))
    with connect(test_db.admin_url) as conn:
        conn.execute('DELETE FROM "user" WHERE id = %s', (row[0],))


def test_acting_user_is_set_inside_and_gone_after(
    one_connection_engine: Engine, registered_user: int
) -> None:
    with unit_of_work(one_connection_engine, registered_user) as session:
        session.execute(
            text("INSERT INTO preference (user_id, category, rating) VALUES (:u, 'park', 0.5)"),
            {"u": registered_user},
        )
        backend = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with unit_of_work(one_connection_engine) as session:
        assert session.execute(text("SELECT pg_backend_pid()")).scalar_one() == backend
        setting = session.execute(text("SELECT current_setting('app.user_id', true)")).scalar()
        assert setting in ("", None)
        assert session.execute(text("SELECT count(*) FROM preference")).scalar_one() == 0
    with unit_of_work(one_connection_engine, registered_user) as session:
        assert session.execute(text("SELECT count(*) FROM preference")).scalar_one() == 1


def test_failure_rolls_the_unit_back(one_connection_engine: Engine, registered_user: int) -> None:
    with pytest.raises(RuntimeError), unit_of_work(one_connection_engine, registered_user) as s:
        s.execute(
            text("INSERT INTO preference (user_id, category, rating) VALUES (:u, 'zoo', 1)"),
            {"u": registered_user},
        )
        raise RuntimeError("request failed")
    with unit_of_work(one_connection_engine, registered_user) as session:
        count = "SELECT count(*) FROM preference WHERE category = 'zoo'"
        assert session.execute(text(count)).scalar_one() == 0


def test_engine_names_itself_and_bounds_statements(
    one_connection_engine: Engine, settings: Settings
) -> None:
    with unit_of_work(one_connection_engine) as session:
        name = session.execute(text("SHOW application_name")).scalar_one()
        timeout = session.execute(text("SHOW statement_timeout")).scalar_one()
        role = session.execute(text("SELECT current_user")).scalar_one()
    assert name == "planwise-test-session"
    assert timeout == f"{settings.database_statement_timeout_ms // 1000}s"
    assert role == "app_service"
    assert event.contains(one_connection_engine, "checkout", discard_if_dropped)


def test_act_as_sets_the_user_and_reads_only_their_row_in_one_statement(
    one_connection_engine: Engine, registered_user: int
) -> None:
    statements: list[str] = []
    event.listen(one_connection_engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_a: statements.append(statement))  # fmt: skip
    with unit_of_work(one_connection_engine) as session:
        user = act_as(session, registered_user)
        assert user is not None and user.username == "session_user_1"
        assert len(statements) == 1
        acting = session.execute(text("SELECT planwise_acting_user_id()")).scalar_one()
        assert acting == registered_user
        visible = session.execute(text('SELECT count(*) FROM "user"')).scalar_one()
        assert visible == 1  # RLS: their own row only
    with unit_of_work(one_connection_engine) as session:
        assert session.execute(text("SELECT planwise_acting_user_id()")).scalar_one() is None
        assert act_as(session, 2_000_000_000) is None  # no such user: nothing, no error
