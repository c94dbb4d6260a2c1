"""The local Supabase Auth (`/auth/v1`) and the API keys, against the real database.

Requests go through the app in-process (TestClient), as supabase-js and supabase-py send
them (`apikey`, `Authorization`, `X-Supabase-Api-Version`); the last tests drive the
official `supabase_auth` client against the app served by uvicorn.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from planwise.config import Settings
from planwise.supabase import keys
from tests.support.cli import planwise
from tests.support.databases import TEST_SUPABASE_JWT_SECRET, DatabaseUnderTest, connect
from tests.support.live import serve

PASSWORD = "s3cret-passw0rd"
# A row of auth.users as a Supabase project's dump holds it: GoTrue's bcrypt ($2a$, cost 10)
# of "restored from supabase".
DUMP_HASH = "$2a$10$NKjxV4/0hFpsyVbWtXcZu.e2V2uNS1JZb/qXb6XhkFlDQK5biBzVi"
DUMP_PASSWORD = "restored from supabase"
API_VERSION = {"X-Supabase-Api-Version": "2024-01-01"}


@pytest.fixture(scope="module")
def api_keys(api_settings: Settings) -> keys.ApiKeys:
    return keys.api_keys(api_settings)


@pytest.fixture
def http(api_app: Any) -> Iterator[TestClient]:
    with TestClient(api_app, base_url="http://testserver") as client:
        yield client


@dataclass
class Auth:
    """A client as supabase-py is one: anon key as apikey, the session's token as bearer."""

    http: TestClient
    keys: keys.ApiKeys

    def headers(self, token: str | None = None, **extra: str) -> dict[str, str]:
        return {
            "apikey": self.keys.anon,
            "Authorization": f"Bearer {token or self.keys.anon}",
            **extra,
        }

    def admin_headers(self) -> dict[str, str]:
        return {
            "apikey": self.keys.service_role,
            "Authorization": f"Bearer {self.keys.service_role}",
        }

    def signup(self, email: str, password: str = PASSWORD, **data: Any) -> Any:
        return self.http.post(
            "/auth/v1/signup",
            json={"email": email, "password": password, "data": data},
            headers=self.headers(),
        )

    def sign_in(self, email: str, password: str = PASSWORD, **headers: str) -> Any:
        return self.http.post(
            "/auth/v1/token?grant_type=password",
            json={"email": email, "password": password},
            headers=self.headers(**headers),
        )

    def refresh(self, refresh_token: str) -> Any:
        return self.http.post(
            "/auth/v1/token?grant_type=refresh_token",
            json={"refresh_token": refresh_token},
            headers=self.headers(),
        )

    def new_user(self, prefix: str = "user", **data: Any) -> dict[str, Any]:
        response = self.signup(new_email(prefix), **data)
        assert response.status_code == 200, response.text
        session: dict[str, Any] = response.json()
        return session


@pytest.fixture
def auth(http: TestClient, api_keys: keys.ApiKeys) -> Auth:
    return Auth(http, api_keys)


def new_email(prefix: str = "user") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}@example.org"


def claims_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(
        token, TEST_SUPABASE_JWT_SECRET, algorithms=["HS256"], audience="authenticated"
    )
    return decoded


def age_refresh_tokens(db: DatabaseUnderTest, session_id: str, seconds: int) -> None:
    """Move a session's refresh tokens back in time, past the reuse interval."""
    with connect(db.admin_url) as conn:
        conn.execute(
            "UPDATE auth.refresh_tokens SET updated_at = updated_at - make_interval(secs => %s) "
            "WHERE session_id = %s",
            (seconds, session_id),
        )


# -- keys and `planwise supabase status` ---------------------------------------------------


def test_keys_are_supabase_shaped_and_deterministic() -> None:
    secret = "a-project-secret-" + "z" * 40
    anon, service = keys.api_key(secret, "anon"), keys.api_key(secret, "service_role")
    assert anon == keys.api_key(secret, "anon")  # every process computes the same key
    assert anon != keys.api_key(secret + "!", "anon")
    for key, role in ((anon, "anon"), (service, "service_role")):
        assert jwt.get_unverified_header(key) == {"alg": "HS256", "typ": "JWT"}
        claims = jwt.decode(key, secret, algorithms=["HS256"])
        assert claims["role"] == role
        assert claims["iss"] == "supabase-demo"
        assert claims["exp"] - claims["iat"] > 10 * 365 * 24 * 3600
        assert keys.classify_apikey(secret, key) == role
    assert keys.classify_apikey("another-secret-" + "q" * 40, anon) is None


def test_status_prints_what_supabase_status_prints() -> None:
    secret = "status-secret-" + "s" * 40
    env = {"SUPABASE_JWT_SECRET": secret}
    result = planwise(
        "supabase", "status", "-o", "env", "--api-url", "http://localhost:9999/", **env
    )
    assert result.returncode == 0, result.stderr
    values = dict(line.split("=", 1) for line in result.stdout.splitlines())
    values = {name: json.loads(value) for name, value in values.items()}
    assert values["API_URL"] == "http://localhost:9999"
    assert values["JWT_SECRET"] == secret
    assert values["ANON_KEY"] == keys.api_key(secret, "anon")
    assert values["SERVICE_ROLE_KEY"] == keys.api_key(secret, "service_role")
    assert values["DB_URL"].startswith("postgresql://")
    as_json = planwise("supabase", "status", "-o", "json", **env)
    assert json.loads(as_json.stdout)["API_URL"] == "http://127.0.0.1:8000"
    table = planwise("supabase", "status", **env)
    assert table.returncode == 0 and "SERVICE_ROLE_KEY" in table.stdout
    unset = planwise("supabase", "status", SUPABASE_JWT_SECRET="")
    assert unset.returncode == 2 and "SUPABASE_JWT_SECRET" in unset.stderr


def test_without_a_secret_the_local_auth_is_off(api_settings: Settings) -> None:
    from planwise.app import create_app

    app = create_app(api_settings.model_copy(update={"supabase_jwt_secret": None}))
    with TestClient(app, base_url="http://testserver") as client:
        off = client.get("/auth/v1/health", headers={"apikey": "anything"})
        assert (off.status_code, off.json()["error_code"]) == (501, "unexpected_failure")
    app.state.engine.dispose()


def test_db_up_generates_the_supabase_jwt_secret(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from planwise.db import cluster

    local_env = tmp_path / "local.env"
    monkeypatch.setattr(cluster, "LOCAL_ENV_FILE", local_env)
    unset = settings.model_copy(update={"supabase_jwt_secret": None})
    assert "SUPABASE_JWT_SECRET" in cluster.ensure_local_secrets(unset)
    line = next(x for x in local_env.read_text().splitlines() if x.startswith("SUPABASE_JWT"))
    assert len(line.split("=", 1)[1]) >= 64
    assert local_env.stat().st_mode & 0o777 == 0o600
    already = settings.model_copy(update={"supabase_jwt_secret": SecretStr("x" * 40)})
    assert "SUPABASE_JWT_SECRET" not in cluster.ensure_local_secrets(already)


# -- the gateway ---------------------------------------------------------------------------


def test_requests_without_a_valid_apikey_are_refused_as_the_gateway_does(
    http: TestClient, auth: Auth
) -> None:
    missing = http.get("/auth/v1/settings")
    assert missing.status_code == 401
    assert missing.json()["message"] == "No API key found in request"
    forged = keys.api_key("not-the-project-secret-" + "n" * 30, "service_role")
    for bad in (forged, "garbage"):
        refused = http.get("/auth/v1/settings", headers={"apikey": bad})
        assert refused.status_code == 401
        assert refused.json()["message"] == "Invalid API key"
    assert http.get(f"/auth/v1/health?apikey={auth.keys.anon}").status_code == 200
    session = auth.new_user()
    assert (
        http.get("/auth/v1/health", headers={"apikey": session["access_token"]}).status_code == 200
    )


def test_health_and_settings_say_email_only_and_autoconfirm(auth: Auth) -> None:
    assert auth.http.get("/auth/v1/health", headers=auth.headers()).json()["name"] == "GoTrue"
    settings = auth.http.get("/auth/v1/settings", headers=auth.headers()).json()
    assert settings["mailer_autoconfirm"] is True
    assert settings["disable_signup"] is False
    assert settings["external"]["email"] is True
    assert not any(on for name, on in settings["external"].items() if name != "email")


# -- sign-up and sign-in ---------------------------------------------------------------------


def test_signup_returns_a_session_with_gotrue_claims(auth: Auth, api_db: DatabaseUnderTest) -> None:
    email = new_email("Signup")
    response = auth.signup(email, username=f"sign_{uuid.uuid4().hex[:8]}", full_name="Ada L.")
    assert response.status_code == 200, response.text
    session = response.json()
    assert session["token_type"] == "bearer"
    assert session["expires_in"] == 3600
    assert abs(session["expires_at"] - (time.time() + 3600)) < 60
    user = session["user"]
    assert user["email"] == email.lower()
    assert user["aud"] == user["role"] == "authenticated"
    assert user["app_metadata"] == {"provider": "email", "providers": ["email"]}
    assert user["user_metadata"]["full_name"] == "Ada L."
    assert user["email_confirmed_at"] and user["confirmed_at"] and user["last_sign_in_at"]
    assert user["phone"] == "" and user["is_anonymous"] is False
    [identity] = user["identities"]
    assert identity["provider"] == "email" and identity["id"] == user["id"]
    assert identity["identity_data"]["email"] == email.lower()

    claims = claims_of(session["access_token"])
    assert claims["sub"] == user["id"]
    assert claims["iss"] == "http://testserver/auth/v1"
    assert claims["role"] == "authenticated" and claims["aal"] == "aal1"
    assert claims["email"] == email.lower() and claims["phone"] == ""
    assert claims["app_metadata"] == user["app_metadata"]
    assert claims["user_metadata"] == user["user_metadata"]
    assert claims["amr"][0]["method"] == "password"
    assert claims["is_anonymous"] is False
    assert claims["exp"] - claims["iat"] == 3600
    with connect(api_db.admin_url) as conn:
        row = conn.execute(
            "SELECT s.aal::text, r.revoked, r.parent FROM auth.sessions s "
            "JOIN auth.refresh_tokens r ON r.session_id = s.id WHERE s.id = %s",
            (claims["session_id"],),
        ).fetchone()
        assert row == ("aal1", False, None)
        stored = conn.execute(
            "SELECT encrypted_password FROM auth.users WHERE id = %s", (user["id"],)
        ).fetchone()
    assert stored is not None and str(stored[0]).startswith("$2a$10$")  # GoTrue's bcrypt


def test_signup_creates_the_planwise_user_row(auth: Auth, api_db: DatabaseUnderTest) -> None:
    username = f"meta_{uuid.uuid4().hex[:8]}"
    with_meta = auth.new_user(username=username, full_name="Grace Hopper")
    local = f"same.{uuid.uuid4().hex[:6]}"
    first = auth.signup(f"{local}@example.org", name="By Name").json()
    second = auth.signup(f"{local}@example.net").json()
    taken = auth.signup(new_email(), username=username).json()
    with connect(api_db.admin_url) as conn:

        def row(session: dict[str, Any]) -> tuple[Any, ...]:
            found = conn.execute(
                'SELECT username, full_name, role, hashed_password FROM "user" '
                "WHERE auth_user_id = %s",
                (session["user"]["id"],),
            ).fetchone()
            assert found is not None
            return tuple(found)

        assert row(with_meta) == (username, "Grace Hopper", "user", "!supabase-auth")
        assert row(first)[:2] == (local, "By Name")
        assert row(second)[:2] == (f"{local}_2", f"{local}@example.net")
        assert row(taken)[0] == f"{username}_2"


def test_duplicate_signup_is_user_already_exists_in_both_api_versions(auth: Auth) -> None:
    email = new_email("dup")
    assert auth.signup(email).status_code == 200
    legacy = auth.signup(email.upper())
    assert legacy.status_code == 422
    assert legacy.json() == {
        "code": 422,
        "error_code": "user_already_exists",
        "msg": "User already registered",
    }
    assert legacy.headers["x-sb-error-code"] == "user_already_exists"
    current = auth.http.post(
        "/auth/v1/signup",
        json={"email": email, "password": PASSWORD},
        headers=auth.headers(**API_VERSION),
    )
    assert current.status_code == 422
    assert current.json() == {"code": "user_already_exists", "message": "User already registered"}
    assert current.headers["X-Supabase-Api-Version"] == "2024-01-01"


def test_bad_signups_are_refused_in_gotrue_shape(auth: Auth) -> None:
    weak = auth.signup(new_email(), password="12345")
    assert weak.status_code == 422
    assert weak.json()["error_code"] == "weak_password"
    assert weak.json()["weak_password"] == {"reasons": ["length"]}
    long = auth.signup(new_email(), password="p" * 73)
    assert (long.status_code, long.json()["error_code"]) == (400, "validation_failed")
    for email in ("not-an-email", "a@", "x" * 250 + "@example.org", ""):
        invalid = auth.signup(email)
        assert (invalid.status_code, invalid.json()["error_code"]) == (400, "validation_failed")
    no_password = auth.http.post(
        "/auth/v1/signup", json={"email": new_email()}, headers=auth.headers()
    )
    assert no_password.json()["error_code"] == "validation_failed"
    phone = auth.http.post(
        "/auth/v1/signup", json={"phone": "+15555550100", "password": PASSWORD},
        headers=auth.headers(),
    )  # fmt: skip
    assert (phone.status_code, phone.json()["error_code"]) == (400, "phone_provider_disabled")
    for body, code in (
        ("{not json", "bad_json"),
        ('{"email": 5, "password": []}', "bad_json"),
        ('{"email": "a\\u0000b@x.org", "password": "long enough"}', "validation_failed"),
    ):
        broken = auth.http.post(
            "/auth/v1/signup",
            content=body,
            headers={**auth.headers(), "Content-Type": "application/json"},
        )
        assert broken.status_code == 400, broken.text
        assert broken.json()["error_code"] == code
    nul_metadata = auth.signup(new_email(), note="a\x00b")
    assert (nul_metadata.status_code, nul_metadata.json()["error_code"]) == (
        400,
        "validation_failed",
    )


def test_sign_in_with_password(auth: Auth) -> None:
    email = new_email("signin")
    auth.signup(email)
    signed_in = auth.sign_in(email.upper())
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["user"]["email"] == email
    wrong = auth.sign_in(email, "wrong password")
    assert wrong.status_code == 400
    assert wrong.json() == {
        "code": 400,
        "error_code": "invalid_credentials",
        "msg": "Invalid login credentials",
    }
    unknown = auth.sign_in(new_email("nobody"), **API_VERSION)
    assert unknown.json() == {"code": "invalid_credentials", "message": "Invalid login credentials"}
    missing = auth.http.post(
        "/auth/v1/token?grant_type=password", json={"password": "x"}, headers=auth.headers()
    )
    assert missing.json()["error_code"] == "validation_failed"
    unsupported = auth.http.post("/auth/v1/token?grant_type=magic", json={}, headers=auth.headers())
    assert (unsupported.status_code, unsupported.json()["error_code"]) == (
        400,
        "invalid_credentials",
    )


def test_a_supabase_dump_of_auth_users_restores_and_signs_in(
    auth: Auth, api_db: DatabaseUnderTest
) -> None:
    """Rows as GoTrue writes them (instance_id nil, bcrypt $2a$10$, an email identity)."""
    user_id, email = uuid.uuid4(), new_email("restored")
    with connect(api_db.admin_url) as conn:
        conn.execute(
            "INSERT INTO auth.users (instance_id, id, aud, role, email, encrypted_password, "
            "email_confirmed_at, confirmation_token, recovery_token, email_change_token_new, "
            "email_change, last_sign_in_at, raw_app_meta_data, raw_user_meta_data, "
            "created_at, updated_at, is_sso_user, is_anonymous) VALUES ("
            "'00000000-0000-0000-0000-000000000000', %s, 'authenticated', 'authenticated', "
            "%s, %s, '2024-03-01 10:00:00+00', '', '', '', '', NULL, "
            '\'{"provider": "email", "providers": ["email"]}\', '
            "'{\"full_name\": \"Restored User\"}', '2024-03-01 10:00:00+00', "
            "'2024-03-01 10:00:00+00', false, false)",
            (user_id, email, DUMP_HASH),
        )
        conn.execute(
            "INSERT INTO auth.identities (provider_id, user_id, identity_data, provider, "
            "created_at, updated_at) VALUES (%s, %s, %s, 'email', now(), now())",
            (str(user_id), user_id, json.dumps({"sub": str(user_id), "email": email})),
        )
        made = conn.execute(
            'SELECT full_name, hashed_password FROM "user" WHERE auth_user_id = %s', (user_id,)
        ).fetchone()
    assert made == ("Restored User", "!supabase-auth")  # by the trigger, at the insert
    signed_in = auth.sign_in(email, DUMP_PASSWORD)
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["user"]["id"] == str(user_id)
    assert signed_in.json()["user"]["created_at"] == "2024-03-01T10:00:00.000000Z"
    assert auth.sign_in(email, "not it").status_code == 400
    me = auth.http.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {signed_in.json()['access_token']}"}
    )
    assert me.status_code == 200, me.text
    assert me.json()["full_name"] == "Restored User"


def test_access_tokens_work_on_the_planwise_api(auth: Auth, api_db: DatabaseUnderTest) -> None:
    username = f"api_{uuid.uuid4().hex[:8]}"
    session = auth.new_user(username=username, full_name="Api User")
    bearer = {"Authorization": f"Bearer {session['access_token']}"}
    me = auth.http.get("/api/v1/users/me", headers=bearer)
    assert me.status_code == 200, me.text
    assert me.json()["username"] == username
    put = auth.http.put("/api/v1/preferences/museum", json={"rating": 0.8}, headers=bearer)
    assert put.status_code in (200, 201), put.text
    with connect(api_db.admin_url) as conn:
        owner = conn.execute(
            'SELECT u.auth_user_id::text FROM preference p JOIN "user" u ON u.id = p.user_id '
            "WHERE u.username = %s",
            (username,),
        ).fetchone()
    assert owner == (session["user"]["id"],)
    # Planwise's own login cannot be used with such an account: it has no usable password.
    planwise_login = auth.http.post(
        "/api/v1/auth/token", data={"username": username, "password": PASSWORD}
    )
    assert planwise_login.status_code == 401


# -- refresh tokens --------------------------------------------------------------------------


def test_refresh_rotates_and_a_lost_answer_can_be_retried(auth: Auth) -> None:
    first = auth.new_user("refresh")
    rotated = auth.refresh(first["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (
        claims_of(second["access_token"])["session_id"]
        == claims_of(first["access_token"])["session_id"]
    )
    # The client lost the answer and retries with the parent: it gets the same child.
    again = auth.refresh(first["refresh_token"])
    assert again.status_code == 200
    assert again.json()["refresh_token"] == second["refresh_token"]
    third = auth.refresh(second["refresh_token"]).json()
    assert auth.refresh(third["refresh_token"]).status_code == 200


def test_reusing_a_rotated_token_revokes_the_session_family(
    auth: Auth, api_db: DatabaseUnderTest
) -> None:
    first = auth.new_user("reuse")
    other = auth.sign_in(first["user"]["email"]).json()  # another session of the same user
    session_id = claims_of(first["access_token"])["session_id"]
    second = auth.refresh(first["refresh_token"]).json()
    third = auth.refresh(second["refresh_token"]).json()
    # Within the reuse interval (10 s) an older token still rotates (concurrent tabs).
    fourth = auth.refresh(first["refresh_token"])
    assert fourth.status_code == 200
    age_refresh_tokens(api_db, session_id, 11)
    # `second` was rotated into `third`, which is no longer the newest: a reuse.
    reused = auth.refresh(second["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["error_code"] == "refresh_token_already_used"
    assert reused.json()["msg"] == "Invalid Refresh Token: Already Used"
    # The whole family is revoked, the newest tokens included, for good.
    for token in (fourth.json()["refresh_token"], third["refresh_token"], first["refresh_token"]):
        refused = auth.refresh(token)
        assert refused.json()["error_code"] == "refresh_token_already_used", refused.text
    with connect(api_db.admin_url) as conn:
        live = conn.execute(
            "SELECT count(*) FROM auth.refresh_tokens WHERE session_id = %s AND NOT revoked",
            (session_id,),
        ).fetchone()
    assert live == (0,)
    assert auth.refresh(other["refresh_token"]).status_code == 200  # other sessions live on


def test_refresh_of_an_expired_session(auth: Auth, api_db: DatabaseUnderTest) -> None:
    session = auth.new_user("expired")
    with connect(api_db.admin_url) as conn:
        conn.execute(
            "UPDATE auth.sessions SET not_after = now() - interval '1 second' WHERE id = %s",
            (claims_of(session["access_token"])["session_id"],),
        )
    expired = auth.refresh(session["refresh_token"])
    assert (expired.status_code, expired.json()["error_code"]) == (400, "session_expired")


def test_refresh_errors(auth: Auth) -> None:
    unknown = auth.refresh("no-such-token")
    assert (unknown.status_code, unknown.json()["error_code"]) == (400, "refresh_token_not_found")
    empty = auth.http.post(
        "/auth/v1/token?grant_type=refresh_token", json={}, headers=auth.headers()
    )
    assert empty.status_code == 400
    assert empty.json() == {
        "error": "invalid_request",
        "error_description": "refresh_token required",
    }


# -- the signed-in user ----------------------------------------------------------------------


def test_get_and_update_the_user(auth: Auth) -> None:
    session = auth.new_user("me", theme="dark", lang="en")
    token = session["access_token"]
    me = auth.http.get("/auth/v1/user", headers=auth.headers(token))
    assert me.status_code == 200 and me.json()["id"] == session["user"]["id"]
    assert me.json()["user_metadata"] == {"theme": "dark", "lang": "en"}

    updated = auth.http.put(
        "/auth/v1/user",
        json={"data": {"theme": "light", "lang": None, "new": {"kept": None}}},
        headers=auth.headers(token),
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["user_metadata"] == {"theme": "light", "new": {"kept": None}}

    email = new_email("changed")
    moved = auth.http.put("/auth/v1/user", json={"email": email}, headers=auth.headers(token))
    assert moved.json()["email"] == email
    assert moved.json()["identities"][0]["identity_data"]["email"] == email
    taken = auth.new_user("taken")["user"]["email"]
    clash = auth.http.put("/auth/v1/user", json={"email": taken}, headers=auth.headers(token))
    assert (clash.status_code, clash.json()["error_code"]) == (422, "email_exists")

    same = auth.http.put("/auth/v1/user", json={"password": PASSWORD}, headers=auth.headers(token))
    assert (same.status_code, same.json()["error_code"]) == (422, "same_password")
    weak = auth.http.put("/auth/v1/user", json={"password": "abc"}, headers=auth.headers(token))
    assert weak.json()["error_code"] == "weak_password"
    admin_only = auth.http.put(
        "/auth/v1/user", json={"app_metadata": {"plan": "pro"}}, headers=auth.headers(token)
    )
    assert (admin_only.status_code, admin_only.json()["error_code"]) == (403, "not_admin")

    elsewhere = auth.sign_in(email).json()
    new_password = "another-passw0rd"
    changed = auth.http.put(
        "/auth/v1/user", json={"password": new_password}, headers=auth.headers(token)
    )
    assert changed.status_code == 200
    assert auth.sign_in(email).json()["error_code"] == "invalid_credentials"
    assert auth.sign_in(email, new_password).status_code == 200
    # A new password ends the user's other sessions; this one lives on.
    assert auth.refresh(elsewhere["refresh_token"]).json()["error_code"] == (
        "refresh_token_not_found"
    )
    assert auth.refresh(session["refresh_token"]).status_code == 200


def test_user_endpoints_need_a_user_token(auth: Auth) -> None:
    no_token = auth.http.get("/auth/v1/user", headers={"apikey": auth.keys.anon})
    assert (no_token.status_code, no_token.json()["error_code"]) == (401, "no_authorization")
    anon = auth.http.get("/auth/v1/user", headers=auth.headers())
    assert (anon.status_code, anon.json()["error_code"]) == (403, "bad_jwt")
    forged = jwt.encode({"sub": str(uuid.uuid4())}, "wrong-secret-" + "w" * 30, algorithm="HS256")
    bad = auth.http.get("/auth/v1/user", headers=auth.headers(forged))
    assert (bad.status_code, bad.json()["error_code"]) == (403, "bad_jwt")
    ghost = jwt.encode(
        {"sub": str(uuid.uuid4()), "role": "authenticated", "exp": int(time.time()) + 60},
        TEST_SUPABASE_JWT_SECRET,
        algorithm="HS256",
    )
    gone = auth.http.get("/auth/v1/user", headers=auth.headers(ghost))
    assert (gone.status_code, gone.json()["error_code"]) == (403, "user_not_found")


# -- logout ----------------------------------------------------------------------------------


def test_logout_scopes(auth: Auth) -> None:
    email = new_email("logout")
    a = auth.signup(email).json()
    b, c, d = (auth.sign_in(email).json() for _ in range(3))

    others = auth.http.post("/auth/v1/logout?scope=others", headers=auth.headers(a["access_token"]))
    assert others.status_code == 204
    for ended in (b, c, d):
        assert auth.refresh(ended["refresh_token"]).json()["error_code"] == (
            "refresh_token_not_found"
        )
    a = auth.refresh(a["refresh_token"]).json()

    e, f = (auth.sign_in(email).json() for _ in range(2))
    local = auth.http.post("/auth/v1/logout?scope=local", headers=auth.headers(e["access_token"]))
    assert local.status_code == 204
    assert auth.refresh(e["refresh_token"]).json()["error_code"] == "refresh_token_not_found"
    after = auth.http.get("/auth/v1/user", headers=auth.headers(e["access_token"]))
    assert (after.status_code, after.json()["error_code"]) == (403, "session_not_found")
    # Unlike GoTrue's, the access token of an ended session is refused everywhere at once
    # (issue 14; tests/test_attack_identity.py).
    me = auth.http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {e['access_token']}"})
    assert me.status_code == 401
    assert auth.refresh(f["refresh_token"]).status_code == 200

    everywhere = auth.http.post("/auth/v1/logout", headers=auth.headers(a["access_token"]))
    assert everywhere.status_code == 204
    for ended in (a, f):
        assert auth.refresh(ended["refresh_token"]).status_code == 400
    bad = auth.http.post("/auth/v1/logout?scope=nowhere", headers=auth.headers(a["access_token"]))
    assert (bad.status_code, bad.json()["error_code"]) == (400, "validation_failed")


# -- admin -----------------------------------------------------------------------------------


def test_admin_users_with_the_service_role_key(auth: Auth) -> None:
    admin = auth.admin_headers()
    email = new_email("admin-made")
    created = auth.http.post(
        "/auth/v1/admin/users",
        json={"email": email, "password": PASSWORD, "email_confirm": True,
              "user_metadata": {"full_name": "Made By Admin"}, "app_metadata": {"plan": "pro"}},
        headers=admin,
    )  # fmt: skip
    assert created.status_code == 200, created.text
    user = created.json()
    assert user["app_metadata"] == {"provider": "email", "providers": ["email"], "plan": "pro"}
    assert auth.sign_in(email).status_code == 200
    user_id = user["id"]

    listed = auth.http.get("/auth/v1/admin/users?per_page=1000", headers=admin)
    assert listed.status_code == 200
    assert user_id in {u["id"] for u in listed.json()["users"]}
    assert int(listed.headers["X-Total-Count"]) >= 1
    page = auth.http.get("/auth/v1/admin/users?page=1&per_page=1", headers=admin).json()
    assert len(page["users"]) == 1 and page["aud"] == "authenticated"
    link = auth.http.get("/auth/v1/admin/users?page=1&per_page=1", headers=admin).headers["Link"]
    assert 'rel="next"' in link and 'rel="last"' in link
    bad_page = auth.http.get("/auth/v1/admin/users?per_page=0", headers=admin)
    assert (bad_page.status_code, bad_page.json()["error_code"]) == (400, "validation_failed")

    assert auth.http.get(f"/auth/v1/admin/users/{user_id}", headers=admin).json()["email"] == email
    duplicate = auth.http.post(
        "/auth/v1/admin/users", json={"email": email, "password": PASSWORD}, headers=admin
    )
    assert (duplicate.status_code, duplicate.json()["error_code"]) == (422, "email_exists")

    banned = auth.http.put(
        f"/auth/v1/admin/users/{user_id}", json={"ban_duration": "24h"}, headers=admin
    )
    assert banned.status_code == 200 and banned.json()["banned_until"]
    assert auth.sign_in(email).json()["error_code"] == "user_banned"
    auth.http.put(f"/auth/v1/admin/users/{user_id}", json={"ban_duration": "none"}, headers=admin)
    assert auth.sign_in(email).status_code == 200
    bad_ban = auth.http.put(
        f"/auth/v1/admin/users/{user_id}", json={"ban_duration": "forever"}, headers=admin
    )
    assert bad_ban.json()["error_code"] == "validation_failed"

    renamed = auth.http.put(
        f"/auth/v1/admin/users/{user_id}",
        json={"password": "admin-set-passw0rd", "user_metadata": {"full_name": None}},
        headers=admin,
    )
    assert renamed.json()["user_metadata"] == {}
    assert auth.sign_in(email, "admin-set-passw0rd").status_code == 200

    deleted = auth.http.delete(f"/auth/v1/admin/users/{user_id}", headers=admin)
    assert deleted.status_code == 200 and deleted.json() == {}
    gone = auth.http.get(f"/auth/v1/admin/users/{user_id}", headers=admin)
    assert (gone.status_code, gone.json()["error_code"]) == (404, "user_not_found")
    assert auth.sign_in(email, "admin-set-passw0rd").json()["error_code"] == "invalid_credentials"
    for method in ("DELETE", "PUT"):
        missing = auth.http.request(
            method, f"/auth/v1/admin/users/{user_id}", json={}, headers=admin
        )
        assert (missing.status_code, missing.json()["error_code"]) == (404, "user_not_found")
    taken_id = auth.new_user("taken-id")["user"]["id"]
    clash = auth.http.post(
        "/auth/v1/admin/users", json={"id": taken_id, "email": new_email()}, headers=admin
    )
    assert (clash.status_code, clash.json()["error_code"]) == (422, "validation_failed")
    not_uuid = auth.http.get("/auth/v1/admin/users/not-a-uuid", headers=admin)
    assert (not_uuid.status_code, not_uuid.json()["error_code"]) == (404, "validation_failed")


def test_admin_soft_delete_and_password_hash(auth: Auth) -> None:
    from pwdlib.hashers.argon2 import Argon2Hasher

    admin = auth.admin_headers()
    argon_email = new_email("argon")
    argon = auth.http.post(
        "/auth/v1/admin/users",
        json={"email": argon_email, "password_hash": Argon2Hasher().hash(PASSWORD),
              "email_confirm": True},
        headers=admin,
    )  # fmt: skip
    assert argon.status_code == 200, argon.text
    assert auth.sign_in(argon_email).status_code == 200
    unconfirmed = new_email("unconfirmed")
    auth.http.post(
        "/auth/v1/admin/users", json={"email": unconfirmed, "password": PASSWORD}, headers=admin
    )
    assert auth.sign_in(unconfirmed).json()["error_code"] == "email_not_confirmed"
    not_a_hash = auth.http.post(
        "/auth/v1/admin/users", json={"email": new_email(), "password_hash": "plain"},
        headers=admin,
    )  # fmt: skip
    assert not_a_hash.json()["error_code"] == "validation_failed"
    email = new_email("hashed")
    created = auth.http.post(
        "/auth/v1/admin/users",
        json={"email": email, "password_hash": DUMP_HASH, "email_confirm": True},
        headers=admin,
    ).json()
    assert auth.sign_in(email, DUMP_PASSWORD).status_code == 200
    soft = auth.http.request(
        "DELETE", f"/auth/v1/admin/users/{created['id']}", json={"should_soft_delete": True},
        headers=admin,
    )  # fmt: skip
    assert soft.status_code == 200
    assert auth.sign_in(email, DUMP_PASSWORD).json()["error_code"] == "invalid_credentials"
    kept = auth.http.get(f"/auth/v1/admin/users/{created['id']}", headers=admin).json()
    assert kept["deleted_at"] and kept["email"] == "" and kept["identities"] == []


def test_admin_is_refused_without_the_service_role(auth: Auth) -> None:
    user = auth.new_user("notadmin")
    for bearer in (auth.keys.anon, user["access_token"]):
        refused = auth.http.get("/auth/v1/admin/users", headers=auth.headers(bearer))
        assert (refused.status_code, refused.json()["error_code"]) == (403, "not_admin")
    # The service_role key as apikey is not enough: GoTrue reads the bearer token's role.
    only_apikey = auth.http.get(
        "/auth/v1/admin/users",
        headers={"apikey": auth.keys.service_role, "Authorization": f"Bearer {auth.keys.anon}"},
    )
    assert only_apikey.status_code == 403
    none = auth.http.post("/auth/v1/admin/users", json={}, headers={"apikey": auth.keys.anon})
    assert (none.status_code, none.json()["error_code"]) == (401, "no_authorization")


# -- the official client, over HTTP ----------------------------------------------------------


def test_supabase_auth_client_end_to_end(api_settings: Settings) -> None:
    from supabase_auth import SyncGoTrueClient
    from supabase_auth.errors import AuthApiError, AuthWeakPasswordError

    api_keys = keys.api_keys(api_settings)
    with serve(api_settings) as live:
        url = f"{live.url}/auth/v1"
        client = SyncGoTrueClient(
            url=url,
            headers={"apikey": api_keys.anon, "Authorization": f"Bearer {api_keys.anon}"},
            auto_refresh_token=False,
            persist_session=True,
        )
        email = new_email("client")
        signed_up = client.sign_up({"email": email, "password": PASSWORD,
                                    "options": {"data": {"full_name": "Client User"}}})  # fmt: skip
        assert signed_up.user is not None and signed_up.session is not None
        assert signed_up.user.email == email
        with pytest.raises(AuthApiError) as duplicate:
            client.sign_up({"email": email, "password": PASSWORD})
        assert duplicate.value.code == "user_already_exists"
        with pytest.raises(AuthWeakPasswordError) as weak:
            client.sign_up({"email": new_email(), "password": "123"})
        assert weak.value.reasons == ["length"]
        with pytest.raises(AuthApiError) as wrong:
            client.sign_in_with_password({"email": email, "password": "nope"})
        assert (wrong.value.status, wrong.value.code) == (400, "invalid_credentials")

        signed_in = client.sign_in_with_password({"email": email, "password": PASSWORD})
        assert signed_in.session is not None
        user = client.get_user()
        assert user is not None and user.user.user_metadata == {"full_name": "Client User"}
        updated = client.update_user({"data": {"full_name": "Renamed"}})
        assert updated.user.user_metadata["full_name"] == "Renamed"
        refreshed = client.refresh_session()
        assert refreshed.session is not None
        assert refreshed.session.refresh_token != signed_in.session.refresh_token
        client.sign_out()
        assert client.get_session() is None

        admin = SyncGoTrueClient(
            url=url,
            headers={"apikey": api_keys.service_role,
                     "Authorization": f"Bearer {api_keys.service_role}"},
            auto_refresh_token=False,
            persist_session=False,
        )  # fmt: skip
        listed = admin.admin.list_users(page=1, per_page=1000)
        assert email in {u.email for u in listed}
        created = admin.admin.create_user(
            {"email": new_email("client-admin"), "password": PASSWORD, "email_confirm": True}
        )
        admin.admin.delete_user(created.user.id)
        with pytest.raises(AuthApiError) as missing:
            admin.admin.get_user_by_id(created.user.id)
        assert missing.value.code == "user_not_found"


# -- bad input never breaks it -------------------------------------------------------------


def test_fuzzed_requests_get_gotrue_errors_never_5xx(api_app: Any, api_keys: keys.ApiKeys) -> None:
    """Every /auth/v1 operation, with generated parameters and bodies, as anon with a user
    token and as service_role: answers below 500, errors in GoTrue's shape."""
    import schemathesis
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hypothesis_settings
    from schemathesis.checks import not_a_server_error

    with TestClient(api_app, base_url="http://testserver") as client:
        user = Auth(client, api_keys).new_user("fuzz")
    identities = (
        {"apikey": api_keys.anon, "Authorization": f"Bearer {user['access_token']}"},
        {"apikey": api_keys.service_role, "Authorization": f"Bearer {api_keys.service_role}"},
    )

    def gotrue_shaped(ctx: Any, response: Any, case: Any) -> bool:
        if response.status_code >= 400:
            body = response.json()
            assert ("error_code" in body and "msg" in body) or "error" in body, body
        return True

    def fuzz(operation: Any, headers: dict[str, str], checks: list[Any]) -> None:
        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=15, deadline=None, suppress_health_check=list(HealthCheck),
            database=None, derandomize=True,
        )  # fmt: skip
        def exercise(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=checks)

        exercise()

    schema = schemathesis.openapi.from_asgi("/openapi.json", api_app)
    exercised = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith("/auth/v1"):
            continue
        if operation.method.upper() == "POST" and operation.path == "/auth/v1/logout":
            continue  # ends the fuzzing user's sessions; logout has its own test
        for headers in identities:
            fuzz(operation, headers, [not_a_server_error, gotrue_shaped])
        exercised.append(f"{operation.method.upper()} {operation.path}")
    assert len(exercised) == 11, exercised


# -- the database side -----------------------------------------------------------------------


def test_app_service_reaches_auth_tables_only_through_the_functions(
    api_db: DatabaseUnderTest,
) -> None:
    from psycopg import errors

    with connect(api_db.app_url) as conn:
        for statement in (
            "SELECT count(*) FROM auth.users",
            "SELECT count(*) FROM auth.refresh_tokens",
            "UPDATE auth.sessions SET not_after = now()",
            "SELECT auth.planwise_user_json(gen_random_uuid())",  # an internal helper
            "SET ROLE planwise_auth",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)
            conn.rollback()
        assert (
            conn.execute("SELECT * FROM auth.planwise_find_login('nobody@example.org')").fetchall()
            == []
        )
    with connect(api_db.admin_url) as conn:
        owners = conn.execute(
            "SELECT DISTINCT relowner::regrole::text FROM pg_class "
            "WHERE relnamespace = 'auth'::regnamespace AND relkind IN ('r', 'S')"
        ).fetchall()
        definers = conn.execute(
            "SELECT DISTINCT proowner::regrole::text, prosecdef FROM pg_proc "
            "WHERE pronamespace = 'auth'::regnamespace AND proname LIKE 'planwise%%' "
            "AND proname NOT IN ('planwise_ts', 'planwise_merge_metadata', "
            "'planwise_user_json', 'planwise_new_user')"
        ).fetchall()
    assert owners == [("planwise_auth",)]
    assert definers == [("planwise_auth", True)]


def test_downgrade_removes_exactly_what_the_upgrade_made(
    create_migrated_database: Any,
) -> None:
    from planwise.db import migrations

    db = create_migrated_database("planwise_auth_down")

    def auth_objects() -> list[Any]:
        with connect(db.admin_url) as conn:
            return conn.execute(
                "SELECT 'class', relname FROM pg_class WHERE relnamespace = 'auth'::regnamespace "
                "UNION ALL SELECT 'proc', proname FROM pg_proc "
                "WHERE pronamespace = 'auth'::regnamespace "
                "UNION ALL SELECT 'type', typname FROM pg_type "
                "WHERE typnamespace = 'auth'::regnamespace AND typtype = 'e' "
                "UNION ALL SELECT 'grant', array_to_string(nspacl, ',') FROM pg_namespace "
                "WHERE nspname = 'auth' ORDER BY 1, 2"
            ).fetchall()

    migrations.downgrade(db.admin_url, "b2c3d4e5f6a7")
    before = auth_objects()
    assert {name for kind, name in before if kind == "proc"} == {"jwt", "uid", "role"}
    assert not [name for kind, name in before if kind in ("class", "type")]
    migrations.upgrade(db.admin_url)
    assert ("class", "users") in auth_objects()
    migrations.downgrade(db.admin_url, "b2c3d4e5f6a7")
    assert auth_objects() == before
    migrations.upgrade(db.admin_url)
    assert migrations.schema_drift(db.admin_url) is None


def test_on_a_supabase_project_the_local_auth_stands_aside(
    create_database: Any, settings: Settings, api_settings: Settings
) -> None:
    """`auth` is Supabase's there: no tables of ours in it, and /auth/v1 answers 501."""
    from planwise.app import create_app
    from planwise.db import migrations
    from planwise.db.roles import configured_role_passwords, set_role_passwords
    from tests.test_supabase import SUPABASE_PREPARATION

    db = create_database("planwise_auth_supabase")
    with connect(db.admin_url) as conn:
        conn.execute("DROP EXTENSION postgis")
        conn.execute(SUPABASE_PREPARATION)
        conn.execute(f'ALTER DATABASE "{db.name}" SET search_path = "$user", public, extensions')
        conn.commit()
    migrations.upgrade(db.admin_url)
    set_role_passwords(db.admin_url, configured_role_passwords(settings))
    with connect(db.admin_url) as conn:
        tables = conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'auth'::regnamespace "
            "AND relkind = 'r'"
        ).fetchall()
    assert tables == [("users",)]  # Supabase's own (abridged), untouched
    app = create_app(
        api_settings.model_copy(
            update={"database_url": db.app_url, "migration_database_url": db.admin_url}
        )
    )
    api_keys = keys.api_keys(api_settings)
    with TestClient(app, base_url="http://testserver") as client:
        answer = Auth(client, api_keys).signup(new_email())
        assert answer.status_code == 501
        assert answer.json()["error_code"] == "unexpected_failure"
    app.state.engine.dispose()


def test_supabase_auth_async_client(api_settings: Settings) -> None:
    """The async client (supabase-py's `acreate_client` uses it) on the same endpoints."""
    import asyncio

    from supabase_auth import AsyncGoTrueClient
    from supabase_auth.errors import AuthApiError

    api_keys = keys.api_keys(api_settings)

    async def scenario(url: str) -> None:
        client = AsyncGoTrueClient(
            url=url,
            headers={"apikey": api_keys.anon, "Authorization": f"Bearer {api_keys.anon}"},
            auto_refresh_token=False,
        )
        email = new_email("async")
        await client.sign_up({"email": email, "password": PASSWORD})
        signed_in = await client.sign_in_with_password({"email": email, "password": PASSWORD})
        assert signed_in.user is not None and signed_in.user.email == email
        user = await client.get_user()
        assert user is not None and user.user.id == signed_in.user.id
        refreshed = await client.refresh_session()
        assert refreshed.session is not None
        await client.sign_out()
        with pytest.raises(AuthApiError) as wrong:
            await client.sign_in_with_password({"email": email, "password": "wrong"})
        assert wrong.value.code == "invalid_credentials"

    with serve(api_settings) as live:
        asyncio.run(scenario(f"{live.url}/auth/v1"))
