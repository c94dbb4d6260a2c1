"""Accounts for API tests, created through the API itself."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from tests.support.databases import DatabaseUnderTest, connect

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Account:
    id: int
    username: str
    headers: dict[str, str]


def new_account(client: TestClient, prefix: str = "user") -> Account:
    username = f"{prefix}_{uuid.uuid4().hex[:10]}"
    created = client.post(
        "/auth/register",
        json={"username": username, "password": PASSWORD, "full_name": prefix.title()},
    )
    assert created.status_code == 201, created.text
    return Account(created.json()["id"], username, login(client, username))


def login(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    response = client.post("/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def new_admin(client: TestClient, db: DatabaseUnderTest) -> Account:
    """Admins are made by the owner (app_service cannot change roles)."""
    account = new_account(client, "admin")
    with connect(db.admin_url) as conn:
        conn.execute("UPDATE \"user\" SET role = 'admin' WHERE id = %s", (account.id,))
    return account


def put_place(client: TestClient, admin: Account, place_id: str, **fields: Any) -> dict[str, Any]:
    body = {"name": f"Place {place_id}", "lat": 48.85, "lng": 2.35, "types": ["museum"]}
    body.update(fields)
    response = client.put(f"/places/{place_id}", json=body, headers=admin.headers)
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result
