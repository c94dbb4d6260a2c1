"""`planwise users promote|demote|deactivate|activate`, checked through the API itself."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.support.accounts import new_account
from tests.support.cli import planwise
from tests.support.databases import DatabaseUnderTest

PLACE = {"name": "Promoted", "lat": 48.85, "lng": 2.35, "types": ["museum"]}


def test_promote_demote_deactivate_activate(client: TestClient, api_db: DatabaseUnderTest) -> None:
    env = {"MIGRATION_DATABASE_URL": api_db.admin_url}
    account = new_account(client, "cli_admin")
    place = f"/places/users-cli-{account.id}"
    assert client.put(place, json=PLACE, headers=account.headers).status_code == 403

    promoted = planwise("users", "promote", account.username, **env)
    assert promoted.returncode == 0 and "is now an admin" in promoted.stdout, promoted.stderr
    assert client.put(place, json=PLACE, headers=account.headers).status_code == 201

    demoted = planwise("users", "demote", account.username, **env)
    assert demoted.returncode == 0 and "is now a plain user" in demoted.stdout
    assert client.put(place, json=PLACE, headers=account.headers).status_code == 403

    assert planwise("users", "deactivate", account.username, **env).returncode == 0
    assert client.get("/users/me", headers=account.headers).status_code == 403  # same token
    again = planwise("users", "deactivate", account.username, **env)
    assert again.returncode == 0 and "was already deactivated" in again.stdout
    assert planwise("users", "activate", account.username, **env).returncode == 0
    assert client.get("/users/me", headers=account.headers).status_code == 200

    unknown = planwise("users", "promote", "nobody_by_that_name", **env)
    assert unknown.returncode == 1 and "no user 'nobody_by_that_name'" in unknown.stderr
