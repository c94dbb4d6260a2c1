"""How the API behaves when the database is busy, gone or back; health and metrics."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from planwise.app import create_app
from planwise.config import Settings
from tests.support.accounts import new_account, new_admin, put_place
from tests.support.databases import DatabaseUnderTest, connect


def test_health_reports_database_and_migration(client: TestClient) -> None:
    response = client.get("http://testserver/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["migration"] == body["expected_migration"]


def test_metrics_expose_requests_and_pool(client: TestClient) -> None:
    client.get("/places")
    text = client.get("http://testserver/metrics").text
    assert 'planwise_http_requests_total{method="GET",route="/places",status="200"}' in text
    for gauge in ("size", "checked_out", "idle", "overflow"):
        assert f"planwise_db_pool_{gauge} " in text


@pytest.fixture
def tiny_pool_client(api_settings: Settings) -> Iterator[TestClient]:
    settings = api_settings.model_copy(
        update={"database_pool_size": 1, "database_max_overflow": 0, "database_pool_timeout": 0.5}
    )
    app = create_app(settings)
    with TestClient(app, base_url="http://testserver/api/v1") as test_client:
        yield test_client
    app.state.engine.dispose()


def test_exhausted_pool_answers_503_with_retry_after(tiny_pool_client: TestClient) -> None:
    engine: Engine = tiny_pool_client.app.state.engine  # type: ignore[attr-defined]
    with engine.connect():  # hold the only connection
        started = time.perf_counter()
        response = tiny_pool_client.get("/places")
        waited = time.perf_counter() - started
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "busy" in response.json()["detail"]
    assert 0.4 < waited < 5
    assert tiny_pool_client.get("/places").status_code == 200


def test_lost_connections_recover_by_themselves(
    tiny_pool_client: TestClient, api_db: DatabaseUnderTest
) -> None:
    assert tiny_pool_client.get("/places").status_code == 200
    with connect(api_db.admin_url) as conn:  # as if the server restarted
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'planwise-api' AND datname = %s",
            (api_db.name,),
        )
    assert tiny_pool_client.get("/places").status_code == 200


def test_unreachable_database_answers_503(api_settings: Settings) -> None:
    gone = api_settings.model_copy(
        update={"database_url": "postgresql://app_service:x@127.0.0.1:1/planwise"}
    )
    app = create_app(gone)
    with TestClient(app, base_url="http://testserver/api/v1") as test_client:
        response = test_client.get("/places")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.json()["detail"].startswith("database unavailable")
        assert test_client.get("http://testserver/health").status_code == 503
    app.state.engine.dispose()


def count_statements(engine: Engine) -> tuple[list[str], Any]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    return statements, record


@pytest.mark.parametrize("size", [1, 40])
def test_list_endpoints_run_a_fixed_number_of_queries(
    client: TestClient, api_db: DatabaseUnderTest, size: int
) -> None:
    """No N+1: statements per request do not grow with the page size."""
    admin = new_admin(client, api_db)
    user = new_account(client)
    for n in range(size):
        place = put_place(client, admin, f"nplus1-{size}-{n}-{user.id}")
        client.post("/reviews", json={"place_id": place["id"], "rating": 4}, headers=user.headers)
        client.put(f"/preferences/{['museum', 'park', 'zoo'][n % 3]}", json={"rating": 0.5},
                   headers=user.headers)  # fmt: skip
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    statements, listener = count_statements(engine)
    try:
        counts = {}
        for path, headers in (
            ("/places?limit=100", {}),
            ("/reviews?limit=100", user.headers),
            ("/preferences", user.headers),
        ):
            statements.clear()
            assert client.get(path, headers=headers).status_code == 200
            counts[path] = len(statements)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    # places: 1 query; user endpoints: planwise_begin_request (acting user + row), the list.
    assert counts == {"/places?limit=100": 1, "/reviews?limit=100": 2, "/preferences": 2}


def test_concurrent_users_never_see_each_other(
    client: TestClient, api_db: DatabaseUnderTest
) -> None:
    admin = new_admin(client, api_db)
    place = put_place(client, admin, f"concurrent-{admin.id}")
    accounts = [new_account(client, f"c{n}") for n in range(4)]
    for account in accounts:
        client.post(
            "/reviews", json={"place_id": place["id"], "rating": 3}, headers=account.headers
        )
    failures: list[str] = []

    def hammer(account: Any) -> None:
        for _ in range(25):
            items = client.get("/reviews", headers=account.headers).json()["items"]
            if {item["user_id"] for item in items} != {account.id}:
                failures.append(f"{account.username} saw {items}")

    threads = [threading.Thread(target=hammer, args=(a,)) for a in accounts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_a_recommendation_is_one_round_trip(client: TestClient, api_db: DatabaseUnderTest) -> None:
    """Counted by the server (top-level statements in pg_stat_statements, BEGIN and COMMIT
    included): no pre-ping, no transaction block, no separate user lookup; deactivation
    still answers 403 and a deleted user 401."""
    admin, user = new_admin(client, api_db), new_account(client, "one_trip")
    put_place(client, admin, f"one-trip-{user.id}", name="One Trip Museum", lat=51.5, lng=-0.12,
              types=["museum"])  # fmt: skip
    client.put("/preferences/museum", json={"rating": 0.9}, headers=user.headers)
    params = {"lat": 51.5, "lng": -0.12}
    assert client.get("/recommendations", params=params, headers=user.headers).json()["items"]

    def app_statements() -> int:
        with connect(api_db.admin_url) as conn:
            row = conn.execute(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s "
                "JOIN pg_database d ON d.oid = s.dbid "
                "WHERE d.datname = %s AND s.userid = 'app_service'::regrole AND s.toplevel",
                (api_db.name,),
            ).fetchone()
        assert row is not None
        return int(row[0])

    before, requests = app_statements(), 10
    for _ in range(requests):
        response = client.get("/recommendations", params=params, headers=user.headers)
        assert response.status_code == 200 and response.json()["items"]
    assert app_statements() - before == requests

    with connect(api_db.admin_url) as conn:  # as if the server restarted
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE usename = 'app_service' AND datname = %s",
            (api_db.name,),
        )
    assert client.get("/recommendations", params=params, headers=user.headers).status_code == 200

    with connect(api_db.admin_url) as conn:
        conn.execute('UPDATE "user" SET is_active = false WHERE id = %s', (user.id,))
    refused = client.get("/recommendations", params=params, headers=user.headers)
    assert refused.status_code == 403 and refused.json() == {"detail": "account is deactivated"}
    with connect(api_db.admin_url) as conn:
        conn.execute('DELETE FROM "user" WHERE id = %s', (user.id,))
    gone = client.get("/recommendations", params=params, headers=user.headers)
    assert gone.status_code == 401 and "no longer exists" in gone.json()["detail"]
