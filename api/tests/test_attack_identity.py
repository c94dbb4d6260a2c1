"""Attacks on identities, token lifetimes and stored types (issue 14, items 3, 5 and 7),
against a real uvicorn server: a squatted `sb_<uuid>` username, tokens that outlive a
password change, a logout or a deactivation, signed URLs of a deactivated user, and a
content type that smuggles HTML past the allowlist."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from planwise.config import Settings
from planwise.supabase import keys
from planwise.users.security import create_access_token
from tests.support.accounts import PASSWORD, Account, login, new_account, new_admin
from tests.support.databases import TEST_SUPABASE_JWT_SECRET, DatabaseUnderTest, connect
from tests.support.live import LiveServer

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


@pytest.fixture(scope="module")
def live_settings(api_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return api_settings.model_copy(
        update={"storage_dir": tmp_path_factory.mktemp("attack-storage") / "root"}
    )


@pytest.fixture(scope="module")
def root(live: LiveServer) -> Iterator[httpx.Client]:
    """The live server from its root: /api/v1, /auth/v1 and /storage/v1."""
    with httpx.Client(base_url=live.url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def api_keys(live_settings: Settings) -> keys.ApiKeys:
    return keys.api_keys(live_settings)


def supabase_token(sub: uuid.UUID, **claims: Any) -> str:
    now = datetime.now(UTC)
    payload = {
        "sub": str(sub),
        "aud": "authenticated",
        "role": "authenticated",
        "iat": now,
        "exp": now + timedelta(minutes=5),
        **claims,
    }
    return jwt.encode(payload, TEST_SUPABASE_JWT_SECRET, algorithm="HS256")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def me(root: httpx.Client, headers: dict[str, str]) -> int:
    return root.get("/api/v1/users/me", headers=headers).status_code


def recommendations(root: httpx.Client, headers: dict[str, str]) -> int:
    """The hot path resolves its token in its own statement (`planwise_recommend_for`)."""
    return root.get("/api/v1/recommendations?lat=48.85&lng=2.35", headers=headers).status_code


# -- item 3: identities nobody can squat -------------------------------------------------


def test_an_internal_username_cannot_be_taken_from_a_supabase_user(
    http: httpx.Client, root: httpx.Client
) -> None:
    victim = uuid.uuid4()
    squatted = f"sb_{victim.hex}"
    taken = http.post(
        "/auth/register", json={"username": squatted, "password": PASSWORD, "full_name": "S"}
    )
    assert taken.status_code == 409, taken.text
    mallory = new_account(http, "squat")
    renamed = http.patch("/users/me", json={"username": squatted}, headers=mallory.headers)
    assert renamed.status_code == 409, renamed.text

    token = bearer(supabase_token(victim, user_metadata={"full_name": "Victim"}))
    for path in (
        "/api/v1/users/me",
        "/api/v1/preferences",
        "/api/v1/recommendations?lat=48.85&lng=2.35",
    ):
        assert root.get(path, headers=token).status_code == 200, path
    assert root.get("/api/v1/users/me", headers=token).json()["username"] == squatted


def test_a_squatter_from_before_is_renamed_and_the_victim_gets_in(
    http: httpx.Client, root: httpx.Client, api_db: DatabaseUnderTest
) -> None:
    """A row holding someone's internal name, as the old code let anyone register it (the
    constraint, lifted for the test, refuses it now): the victim's first sight takes the
    next name instead of failing."""
    victim = uuid.uuid4()
    squatted = f"sb_{victim.hex}"
    with connect(api_db.admin_url) as conn:
        conn.autocommit = True  # each statement its own transaction: the server must see it
        conn.execute('ALTER TABLE "user" DROP CONSTRAINT IF EXISTS ck_user_internal_username')
        try:
            conn.execute(
                'INSERT INTO "user" (username, hashed_password, full_name, role) '
                "VALUES (%s, 'x', 'Squatter', 'user')",
                (squatted,),
            )
            token = bearer(supabase_token(victim))
            # Even with the name taken, first sight answers with a row, never a 500.
            seen = root.get("/api/v1/users/me", headers=token)
            assert seen.status_code == 200, seen.text
            assert seen.json()["username"] == f"{squatted}_2"
        finally:
            conn.execute(
                "UPDATE \"user\" SET username = 'renamed_' || id WHERE username = %s", (squatted,)
            )
            conn.execute(
                'ALTER TABLE "user" ADD CONSTRAINT ck_user_internal_username CHECK '
                "(username !~ '^sb_[0-9a-f]{32}$' "
                "OR username = 'sb_' || replace(auth_user_id::text, '-', ''))"
            )


def test_a_gotrue_signup_cannot_take_an_internal_name(
    root: httpx.Client, api_keys: keys.ApiKeys
) -> None:
    victim = uuid.uuid4()
    headers = {"apikey": api_keys.anon, "Authorization": f"Bearer {api_keys.anon}"}
    signup = root.post(
        "/auth/v1/signup",
        json={
            "email": f"sb_{victim.hex}@example.com",
            "password": PASSWORD,
            "data": {"username": f"sb_{victim.hex}"},
        },
        headers=headers,
    )
    assert signup.status_code == 200, signup.text
    row = root.get("/api/v1/users/me", headers=bearer(signup.json()["access_token"])).json()
    assert row["username"] != f"sb_{victim.hex}"
    assert me(root, bearer(supabase_token(victim))) == 200


# -- item 5: changes that take effect everywhere ------------------------------------------


def test_a_password_change_refuses_tokens_issued_before_it(
    http: httpx.Client, root: httpx.Client, live_settings: Settings
) -> None:
    account = new_account(http, "pwchange")
    earlier = bearer(
        create_access_token(live_settings, account.id, now=datetime.now(UTC) - timedelta(seconds=5))
    )
    assert me(root, earlier) == recommendations(root, earlier) == 200
    changed = http.patch("/users/me", json={"password": "a brand new one"}, headers=earlier)
    assert changed.status_code == 200, changed.text
    assert me(root, earlier) == recommendations(root, earlier) == 401
    assert me(root, login(http, account.username, "a brand new one")) == 200


def test_gotrue_logout_and_a_new_password_end_access_tokens(
    root: httpx.Client, api_keys: keys.ApiKeys
) -> None:
    anon = {"apikey": api_keys.anon}
    email = f"ended-{uuid.uuid4().hex[:10]}@example.com"
    first = root.post(
        "/auth/v1/signup", json={"email": email, "password": PASSWORD}, headers=anon
    ).json()

    def sign_in(password: str = PASSWORD) -> str:
        session = root.post(
            "/auth/v1/token?grant_type=password",
            headers=anon,
            json={"email": email, "password": password},
        )
        assert session.status_code == 200, session.text
        token: str = session.json()["access_token"]
        return token

    other = sign_in()
    assert me(root, bearer(first["access_token"])) == me(root, bearer(other)) == 200
    changed = root.put(
        "/auth/v1/user",
        json={"password": "another password"},
        headers={**anon, **bearer(first["access_token"])},
    )
    assert changed.status_code == 200, changed.text
    assert me(root, bearer(other)) == 401  # its session ended with the new password
    assert me(root, bearer(first["access_token"])) == 200  # the changing session stays

    again = sign_in("another password")
    ended = root.post("/auth/v1/logout?scope=global", headers={**anon, **bearer(again)})
    assert ended.status_code == 204
    assert recommendations(root, bearer(again)) == 401
    for token in (first["access_token"], again):
        assert me(root, bearer(token)) == 401
        assert root.get("/storage/v1/bucket", headers=bearer(token)).status_code == 401


def _storage_setup(root: httpx.Client, admin: Account, owner: Account) -> tuple[str, str]:
    bucket = f"attack-{uuid.uuid4().hex[:8]}"
    made = root.post(
        "/storage/v1/bucket", json={"id": bucket, "name": bucket}, headers=admin.headers
    )
    assert made.status_code == 200, made.text
    name = f"{owner.id}/secret.png"
    stored = root.post(
        f"/storage/v1/object/{bucket}/{name}",
        content=PNG,
        headers={**owner.headers, "content-type": "image/png"},
    )
    assert stored.status_code == 200, stored.text
    return bucket, name


def _signed_object(
    http: httpx.Client, root: httpx.Client, db: DatabaseUnderTest, prefix: str
) -> tuple[Account, str, str]:
    """A new user, a private bucket with an object of theirs, and its signed download URL."""
    admin, owner = new_admin(http, db), new_account(http, prefix)
    bucket, name = _storage_setup(root, admin, owner)
    signed: str = root.post(
        f"/storage/v1/object/sign/{bucket}/{name}", json={"expiresIn": 600}, headers=owner.headers
    ).json()["signedURL"]
    return owner, bucket, signed


def test_signed_urls_stop_working_when_the_signer_is_deactivated(
    http: httpx.Client, root: httpx.Client, api_db: DatabaseUnderTest
) -> None:
    owner, bucket, signed = _signed_object(http, root, api_db, "signer")
    upload = root.post(
        f"/storage/v1/object/upload/sign/{bucket}/{owner.id}/later.png", headers=owner.headers
    ).json()["url"]
    assert root.get(f"/storage/v1{signed}").content == PNG

    with connect(api_db.admin_url) as conn:
        conn.execute('UPDATE "user" SET is_active = false WHERE id = %s', (owner.id,))
    download = root.get(f"/storage/v1{signed}")
    assert download.status_code == 403, download.text
    uploaded = root.put(f"/storage/v1{upload}", content=PNG, headers={"content-type": "image/png"})
    assert uploaded.status_code == 403, uploaded.text


def test_signed_urls_signed_before_a_password_change_are_refused(
    http: httpx.Client, root: httpx.Client, api_db: DatabaseUnderTest
) -> None:
    owner, _, signed = _signed_object(http, root, api_db, "resigner")
    time.sleep(1.05)  # `iat` has whole seconds: the change must come in a later one
    changed = http.patch("/users/me", json={"password": "rotated password"}, headers=owner.headers)
    assert changed.status_code == 200, changed.text
    assert root.get(f"/storage/v1{signed}").status_code == 401


# -- item 7: stored types -----------------------------------------------------------------


def test_only_the_canonical_type_is_stored_and_served(
    http: httpx.Client, root: httpx.Client, api_db: DatabaseUnderTest
) -> None:
    admin, owner = new_admin(http, api_db), new_account(http, "types")
    bucket, _ = _storage_setup(root, admin, owner)
    sent = {
        f"{owner.id}/smuggled.png": ("image/png;,text/html", "image/png"),
        f"{owner.id}/notes.txt": (
            "Text/Plain; Charset=UTF-8; boundary=x",
            "text/plain; charset=utf-8",
        ),
        f"{owner.id}/data.json": ("application/json;text/html", "application/json"),
    }
    for name, (declared, _) in sent.items():
        stored = root.post(
            f"/storage/v1/object/{bucket}/{name}",
            content=b"<script>1</script>",
            headers={**owner.headers, "content-type": declared},
        )
        assert stored.status_code == 200, stored.text
    for declared in ("image/png, text/html", "text/html", "foo", "image/ png"):
        refused = root.post(
            f"/storage/v1/object/{bucket}/{owner.id}/x-{uuid.uuid4().hex}",
            content=b"x",
            headers={**owner.headers, "content-type": declared},
        )
        assert refused.status_code == 415, (declared, refused.text)

    for name, (_, canonical) in sent.items():
        served = root.get(
            f"/storage/v1/object/authenticated/{bucket}/{name}", headers=owner.headers
        )
        assert served.headers["content-type"] == canonical
        assert served.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in served.headers["content-security-policy"]
        disposition = served.headers.get("content-disposition", "")
        assert disposition.startswith("attachment") == (not canonical.startswith("image/")), name
        info = root.get(f"/storage/v1/object/info/{bucket}/{name}", headers=owner.headers)
        assert info.json()["content_type"] == canonical


def test_a_private_name_of_someone_else_answers_alike_taken_or_free(
    http: httpx.Client, root: httpx.Client, api_db: DatabaseUnderTest
) -> None:
    admin, alice, bob = (
        new_admin(http, api_db),
        new_account(http, "oracle_a"),
        new_account(http, "oracle_b"),
    )
    bucket, taken = _storage_setup(root, admin, alice)
    free = f"{alice.id}/free-{uuid.uuid4().hex[:6]}.png"

    def answer(name: str, **headers: str) -> tuple[int, Any]:
        sent = root.post(
            f"/storage/v1/object/{bucket}/{name}",
            content=PNG,
            headers={**bob.headers, "content-type": "image/png", **headers},
        )
        return sent.status_code, sent.json()

    for extra in ({}, {"x-upsert": "true"}):
        assert answer(taken, **extra) == answer(free, **extra)
        assert answer(taken, **extra)[0] == 403
    bobs = root.post(
        f"/storage/v1/object/{bucket}/{bob.id}/mine.png",
        content=PNG,
        headers={**bob.headers, "content-type": "image/png"},
    )
    assert bobs.status_code == 200, bobs.text
    moves = [
        root.post(
            "/storage/v1/object/move",
            headers=bob.headers,
            json={"bucketId": bucket, "sourceKey": f"{bob.id}/mine.png", "destinationKey": name},
        )
        for name in (taken, free)
    ]
    assert [m.status_code for m in moves] == [403, 403] and moves[0].json() == moves[1].json()
    signing = [
        root.post(f"/storage/v1/object/upload/sign/{bucket}/{name}", headers=bob.headers)
        for name in (taken, free)
    ]
    assert [s.status_code for s in signing] == [403, 403]
    # A Supabase user's folder may also be named by their auth uuid.
    auth_user = uuid.uuid4()
    supabase = {**bearer(supabase_token(auth_user)), "content-type": "image/png"}
    by_uuid = root.post(
        f"/storage/v1/object/{bucket}/{auth_user}/photo.png", content=PNG, headers=supabase
    )
    assert by_uuid.status_code == 200, by_uuid.text


def test_hostile_subjects_never_answer_500(
    http: httpx.Client, root: httpx.Client, api_keys: keys.ApiKeys
) -> None:
    """Validly signed Supabase tokens whose other claims are hostile, on every surface
    that maps a `sub` to a user: refused or served, never a 500."""
    squatted = uuid.uuid4()
    http.post(
        "/auth/register",
        json={"username": f"sb_{squatted.hex}", "password": PASSWORD, "full_name": "S"},
    )
    tokens = {
        "squatted": supabase_token(squatted),
        "NUL in the name": supabase_token(uuid.uuid4(), user_metadata={"full_name": "a\x00b"}),
        "huge negative iat": supabase_token(uuid.uuid4(), iat=-1e300),
        "iat true": supabase_token(uuid.uuid4(), iat=True),
        "session_id not a uuid": supabase_token(uuid.uuid4(), session_id="nope"),
        "session_id a number": supabase_token(uuid.uuid4(), session_id=5),
        "unknown session": supabase_token(uuid.uuid4(), session_id=str(uuid.uuid4())),
    }
    paths = (
        "/api/v1/users/me",
        "/api/v1/recommendations?lat=1&lng=2",
        "/storage/v1/bucket",
        "/rest/v1/preference?select=id",
    )
    for why, token in tokens.items():
        for path in paths:
            answer = root.get(path, headers={**bearer(token), "apikey": api_keys.anon})
            # 400: /rest/v1 answers PostgreSQL's 22P05 for a NUL in the claims, as PostgREST.
            assert answer.status_code in (200, 400, 401, 403, 409), (why, path, answer.text)
