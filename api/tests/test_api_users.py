"""Accounts through HTTP: registration, tokens, profile, deletion, deactivation."""

from __future__ import annotations

import time

import jwt
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from planwise.config import ConfigError, Settings
from planwise.users.security import InvalidToken, decode_access_token
from tests.support.accounts import PASSWORD, Account, login, new_account, new_admin, put_place
from tests.support.databases import TEST_JWT_SECRET, DatabaseUnderTest, connect


def test_register_login_and_read_me(client: TestClient) -> None:
    account = new_account(client, "ana")
    me = client.get("/users/me", headers=account.headers)
    assert me.status_code == 200
    assert me.json() | {"created_at": None} == {
        "id": account.id,
        "username": account.username,
        "full_name": "Ana",
        "role": "user",
        "is_active": True,
        "created_at": None,
    }


def test_token_claims_are_supabase_shaped(client: TestClient) -> None:
    account = new_account(client)
    token = account.headers["Authorization"].split()[1]
    claims = jwt.decode(token, TEST_JWT_SECRET, algorithms=["HS256"], audience="authenticated")
    assert claims["sub"] == str(account.id)
    assert claims["role"] == "authenticated" and claims["aud"] == "authenticated"
    assert claims["exp"] > claims["iat"] >= int(time.time()) - 5


def test_password_is_stored_as_argon2(client: TestClient, api_db: DatabaseUnderTest) -> None:
    account = new_account(client)
    with connect(api_db.admin_url) as conn:
        row = conn.execute('SELECT hashed_password FROM "user" WHERE id = %s', (account.id,))
        hashed = str(row.fetchone()[0])  # type: ignore[index]
    assert hashed.startswith("$argon2id$") and PASSWORD not in hashed


def test_duplicate_username_is_409(client: TestClient) -> None:
    account = new_account(client)
    again = client.post(
        "/auth/register",
        json={"username": account.username, "password": PASSWORD, "full_name": "Again"},
    )
    assert again.status_code == 409 and "taken" in again.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"username": "ab", "password": PASSWORD, "full_name": "Too short"},
        {"username": "x" * 51, "password": PASSWORD, "full_name": "Too long"},
        {"username": "has space", "password": PASSWORD, "full_name": "Bad char"},
        {"username": "shortpass", "password": "1234567", "full_name": "Short"},
        {"username": "nulname", "password": PASSWORD, "full_name": "nul\x00byte"},
        {"username": "noname", "password": PASSWORD},
    ],
)
def test_invalid_registration_is_422(client: TestClient, body: dict[str, str]) -> None:
    response = client.post("/auth/register", json=body)
    assert response.status_code == 422 and response.json()["detail"]


def test_wrong_password_and_unknown_user_are_401(client: TestClient) -> None:
    account = new_account(client)
    for username, password in ((account.username, "wrong password"), ("nobody_here", PASSWORD)):
        response = client.post("/auth/token", data={"username": username, "password": password})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer not-a-jwt",
        "Bearer " + jwt.encode({"sub": "1", "aud": "authenticated", "iat": 0, "exp": 1},
                               TEST_JWT_SECRET, algorithm="HS256"),
        "Bearer " + jwt.encode({"sub": "1", "aud": "authenticated", "iat": 0,
                                "exp": 4102444800}, "another-secret-" * 3, algorithm="HS256"),
    ],
)  # fmt: skip
def test_missing_bad_expired_or_forged_tokens_are_401(
    client: TestClient, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    response = client.get("/users/me", headers=headers)
    assert response.status_code == 401 and response.json()["detail"]


@pytest.mark.parametrize("subject", [str(2**40), str(2**31), "0", "-1", "1.5", "١٢"])
@pytest.mark.parametrize("path", ["/users/me", "/recommendations?lat=0&lng=0"])
def test_validly_signed_tokens_naming_no_possible_user_are_401(
    client: TestClient, subject: str, path: str
) -> None:
    """`user.id` is an int4: a `sub` outside it (or not a plain decimal) names nobody."""
    token = jwt.encode({"sub": subject, "aud": "authenticated", "iat": 0, "exp": 4102444800},
                       TEST_JWT_SECRET, algorithm="HS256")  # fmt: skip
    response = client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    assert "names no Planwise user" in response.json()["detail"]


def test_a_remembered_token_still_expires_and_only_its_key_verifies_it(
    client: TestClient, api_settings: Settings
) -> None:
    """Verified tokens are remembered by their text and keys (`decode_access_token`): the
    token accepted a moment ago is refused once its `exp` has passed, on the hot path and
    the others, and its bytes are no token for an app with another JWT_SECRET."""
    account = new_account(client, "remembered")
    now = int(time.time())
    token = jwt.encode({"sub": str(account.id), "aud": "authenticated", "iat": now,
                        "exp": now + 2}, TEST_JWT_SECRET, algorithm="HS256")  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    paths = ("/users/me", "/recommendations?lat=0&lng=0")
    for _ in range(2):  # the second time from memory
        assert [client.get(path, headers=headers).status_code for path in paths] == [200, 200]
        assert decode_access_token(api_settings, token).subject == account.id
    other = api_settings.model_copy(update={"jwt_secret": SecretStr("another-secret-" * 3)})
    with pytest.raises(InvalidToken, match=r"(?i)signature"):
        decode_access_token(other, token)
    time.sleep(max(0.0, now + 2 - time.time()) + 0.05)
    for path in paths:
        refused = client.get(path, headers=headers)
        assert refused.status_code == 401 and "expired" in refused.json()["detail"], path


def test_update_profile_and_password(client: TestClient) -> None:
    account = new_account(client)
    changed = client.patch(
        "/users/me",
        json={"full_name": "New Name", "password": "a brand new password"},
        headers=account.headers,
    )
    assert changed.status_code == 200 and changed.json()["full_name"] == "New Name"
    assert (
        client.post(
            "/auth/token", data={"username": account.username, "password": PASSWORD}
        ).status_code
        == 401
    )
    login(client, account.username, "a brand new password")


def test_renaming_to_a_taken_username_is_409(client: TestClient) -> None:
    first, second = new_account(client), new_account(client)
    response = client.patch("/users/me", json={"username": first.username}, headers=second.headers)
    assert response.status_code == 409


def test_role_cannot_be_changed_through_the_api(client: TestClient) -> None:
    account = new_account(client)
    response = client.patch("/users/me", json={"role": "admin"}, headers=account.headers)
    assert response.status_code == 200 and response.json()["role"] == "user"


def test_delete_me_cascades(client: TestClient, api_db: DatabaseUnderTest) -> None:
    admin = new_admin(client, api_db)
    put_place(client, admin, "cascade-place")
    account = new_account(client)
    assert (
        client.post(
            "/reviews", json={"place_id": "cascade-place", "rating": 4}, headers=account.headers
        ).status_code
        == 201
    )
    assert (
        client.put("/preferences/museum", json={"rating": 0.9}, headers=account.headers).status_code
        == 201
    )
    assert client.delete("/users/me", headers=account.headers).status_code == 204
    with connect(api_db.admin_url) as conn:
        for table in ("review", "preference"):
            row = conn.execute(f"SELECT count(*) FROM {table} WHERE user_id = %s", (account.id,))
            assert row.fetchone() == (0,)
    assert client.get("/users/me", headers=account.headers).status_code == 401


def test_deactivated_user_gets_403(client: TestClient, api_db: DatabaseUnderTest) -> None:
    account: Account = new_account(client)
    with connect(api_db.admin_url) as conn:
        conn.execute('UPDATE "user" SET is_active = false WHERE id = %s', (account.id,))
    assert client.get("/users/me", headers=account.headers).status_code == 403
    response = client.post("/auth/token", data={"username": account.username, "password": PASSWORD})
    assert response.status_code == 403


def test_production_refuses_the_default_secret(settings: Settings) -> None:
    from pydantic import SecretStr

    from planwise.app import create_app
    from planwise.config import DEFAULT_JWT_SECRET

    for env in ("production", "test"):
        unsafe = settings.model_copy(
            update={"planwise_env": env, "jwt_secret": SecretStr(DEFAULT_JWT_SECRET)}
        )
        with pytest.raises(ConfigError, match="JWT_SECRET"):
            create_app(unsafe)
    weak = settings.model_copy(
        update={"planwise_env": "production", "jwt_secret": SecretStr("short")}
    )
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        create_app(weak)
    development = settings.model_copy(
        update={"planwise_env": "development", "jwt_secret": SecretStr(DEFAULT_JWT_SECRET)}
    )
    create_app(development).state.engine.dispose()


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/auth/register", '{"username": "nan_user", "password": %s, "full_name": "N"}'),
        ("/auth/register", '{"username": %s, "password": "long enough", "full_name": "N"}'),
    ],
)
def test_non_finite_numbers_in_a_json_body_are_422_not_500(
    client: TestClient, path: str, body: str, number: str
) -> None:
    """Python's JSON parser accepts NaN and Infinity; the 422 that echoes them must render."""
    response = client.post(
        path, content=body % number, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    echoed = response.json()["detail"][0]
    # A password is never echoed (tests/test_attack_surface.py), not even a NaN.
    secret = echoed["loc"][-1] == "password"
    assert echoed["input"] == ("[redacted]" if secret else str(float(number)))
