"""Storage with the official `storage3` client against a real uvicorn server: buckets,
uploads, downloads, listings, signed and public URLs, limits, and who may do what."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from fastapi.testclient import TestClient
from storage3 import SyncStorageClient
from storage3.exceptions import StorageApiError

from planwise.app import create_app
from planwise.config import Settings
from planwise.db import migrations
from planwise.db.roles import configured_role_passwords, set_role_passwords
from planwise.supabase import keys
from tests.support.accounts import Account, new_account, new_admin
from tests.support.databases import TEST_SUPABASE_JWT_SECRET, DatabaseUnderTest, connect
from tests.support.live import LiveServer

MAX_OBJECT_BYTES = 64 * 1024
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture(scope="module")
def storage_settings(api_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return api_settings.model_copy(
        update={
            "storage_dir": tmp_path_factory.mktemp("storage") / "root",
            "storage_max_object_bytes": MAX_OBJECT_BYTES,
        }
    )


@pytest.fixture(scope="module")
def live_settings(storage_settings: Settings) -> Settings:
    return storage_settings


@pytest.fixture(scope="module")
def accounts(http: httpx.Client, api_db: DatabaseUnderTest) -> dict[str, Account]:
    return {
        "admin": new_admin(http, api_db),
        "alice": new_account(http, "st_alice"),
        "bob": new_account(http, "st_bob"),
    }


StorageFor = Callable[[Account | None], SyncStorageClient]


@pytest.fixture(scope="module")
def storage_for(live: LiveServer) -> Iterator[StorageFor]:
    clients: list[SyncStorageClient] = []

    def make(account: Account | None) -> SyncStorageClient:
        headers = dict(account.headers) if account else {}
        client = SyncStorageClient(f"{live.url}/storage/v1/", headers)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.session.close()


@pytest.fixture(scope="module")
def buckets(storage_for: StorageFor, accounts: dict[str, Account]) -> dict[str, str]:
    admin = storage_for(accounts["admin"])
    suffix = uuid.uuid4().hex[:8]
    made = {"public": f"photos-{suffix}", "private": f"drafts-{suffix}"}
    admin.create_bucket(made["public"], options={"public": True})
    admin.create_bucket(made["private"])
    return made


def status_of(call: Callable[[], Any]) -> tuple[int, str, str]:
    """The HTTP status, `error` and message of a refused storage3 call."""
    with pytest.raises(StorageApiError) as refused:
        call()
    return int(refused.value.status), refused.value.code, refused.value.message


def files_on_disk(settings: Settings) -> set[Path]:
    assert settings.storage_dir is not None
    return {p for p in (settings.storage_dir / "objects").rglob("*") if p.is_file()}


def test_buckets_are_created_and_changed_by_admins_only(
    storage_for: StorageFor, accounts: dict[str, Account], buckets: dict[str, str]
) -> None:
    admin, alice = storage_for(accounts["admin"]), storage_for(accounts["alice"])
    public = alice.get_bucket(buckets["public"])
    assert (public.id, public.public, public.owner) == (
        buckets["public"],
        True,
        str(accounts["admin"].id),
    )
    assert {b.id for b in alice.list_buckets()} >= set(buckets.values())
    assert status_of(lambda: alice.create_bucket(f"mine-{uuid.uuid4().hex[:6]}"))[0] == 403
    assert status_of(lambda: admin.create_bucket(buckets["public"]))[:2] == (409, "Duplicate")
    assert status_of(lambda: admin.create_bucket("list"))[0] == 400  # a word of the paths
    assert status_of(lambda: admin.create_bucket("../etc"))[0] == 400
    assert status_of(lambda: alice.get_bucket("no-such-bucket"))[0] == 404
    limited = f"limited-{uuid.uuid4().hex[:6]}"
    admin.create_bucket(limited, options={"file_size_limit": "1KB"})
    admin.update_bucket(limited, {"public": False, "allowed_mime_types": ["image/*"]})
    bucket = alice.get_bucket(limited)
    assert (bucket.file_size_limit, bucket.allowed_mime_types) == (1024, ["image/*"])
    too_big = {"file_size_limit": MAX_OBJECT_BYTES + 1}
    assert status_of(lambda: admin.update_bucket(limited, too_big))[0] == 400  # type: ignore[arg-type]
    assert status_of(lambda: alice.update_bucket(limited, {"public": True}))[0] == 403
    admin.delete_bucket(limited)


def test_upload_download_list_and_public_url(
    storage_for: StorageFor, accounts: dict[str, Account], buckets: dict[str, str]
) -> None:
    alice, bob = storage_for(accounts["alice"]), storage_for(accounts["bob"])
    photos = alice.from_(buckets["public"])
    uploaded = photos.upload("places/p1/front.png", PNG, {"content-type": "image/png"})
    assert uploaded.full_path == f"{buckets['public']}/places/p1/front.png"
    photos.upload("places/p1/back.png", PNG[:100], {"content-type": "image/png"})
    photos.upload("places/p2/side.png", PNG[:10], {"content-type": "image/png"})
    assert photos.download("places/p1/front.png") == PNG
    assert bob.from_(buckets["public"]).download("places/p1/front.png") == PNG  # public bucket

    top = photos.list("places")
    assert [(e["name"], e["id"]) for e in top] == [("p1", None), ("p2", None)]
    files = photos.list("places/p1", {"limit": 1, "sortBy": {"column": "name", "order": "desc"}})
    assert [e["name"] for e in files] == ["front.png"]
    assert files[0]["metadata"]["size"] == len(PNG)
    assert files[0]["metadata"]["mimetype"] == "image/png"
    assert [e["name"] for e in photos.list("places/p1", {"offset": 1})] == ["front.png"]
    assert [e["name"] for e in photos.list("places/p1", {"search": "BA"})] == ["back.png"]

    authenticated = httpx.get(
        photos.get_public_url("places/p1/front.png").replace("/public/", "/authenticated/"),
        headers=accounts["bob"].headers,
    )
    assert authenticated.status_code == 200 and authenticated.content == PNG

    info = photos.info("places/p1/front.png")
    assert (info["size"], info["content_type"]) == (len(PNG), "image/png")
    assert photos.exists("places/p1/front.png") and not photos.exists("places/p1/nope.png")

    public_url = photos.get_public_url("places/p1/front.png")
    anonymous = httpx.get(public_url)
    assert anonymous.status_code == 200 and anonymous.content == PNG
    assert anonymous.headers["content-type"] == "image/png"
    assert anonymous.headers["x-content-type-options"] == "nosniff"
    etag = anonymous.headers["etag"]
    assert httpx.get(public_url, headers={"If-None-Match": etag}).status_code == 304
    attachment = httpx.get(public_url, params={"download": "façade.png"})
    assert "filename*=UTF-8''fa%C3%A7ade.png" in attachment.headers["content-disposition"]


def test_private_objects_stay_with_their_owner(
    storage_for: StorageFor, accounts: dict[str, Account], buckets: dict[str, str]
) -> None:
    alice = storage_for(accounts["alice"]).from_(buckets["private"])
    bob = storage_for(accounts["bob"]).from_(buckets["private"])
    name = f"{accounts['alice'].id}/draft.txt"
    alice.upload(name, b"my notes", {"content-type": "text/plain"})

    assert status_of(lambda: bob.download(name))[:2] == (404, "not_found")
    assert not bob.exists(name)
    assert bob.list(str(accounts["alice"].id)) == []
    assert bob.remove([name]) == []  # nothing of Bob's to delete
    # Alice's folder: refused as a free name there would be (no existence oracle).
    assert (
        status_of(lambda: bob.upload(name, b"mine now", {"content-type": "text/plain"}))[0] == 403
    )
    assert status_of(lambda: bob.create_signed_url(name, 60))[0] == 404
    assert alice.download(name) == b"my notes"

    public_url = storage_for(None).from_(buckets["private"]).get_public_url(name)
    assert httpx.get(public_url).status_code == 404  # not a public bucket
    anonymous = storage_for(None).from_(buckets["private"])
    assert status_of(lambda: anonymous.download(name))[0] == 401


def test_nobody_overwrites_or_deletes_another_users_object(
    storage_for: StorageFor, accounts: dict[str, Account], buckets: dict[str, str]
) -> None:
    alice = storage_for(accounts["alice"]).from_(buckets["public"])
    bob = storage_for(accounts["bob"]).from_(buckets["public"])
    name = f"reviews/{uuid.uuid4().hex[:6]}.png"
    alice.upload(name, PNG, {"content-type": "image/png"})
    options = {"content-type": "image/png", "upsert": "true"}
    assert status_of(lambda: bob.upload(name, b"\x89PNG", options))[0] == 403  # type: ignore[arg-type]
    assert status_of(lambda: bob.update(name, b"\x89PNG", {"content-type": "image/png"}))[0] == 403
    assert bob.remove([name]) == []
    assert status_of(lambda: bob.move(name, "reviews/stolen.png"))[0] == 403
    assert bob.download(name) == PNG  # still Alice's, still there

    # Moderation: an administrator may delete it.
    admin = storage_for(accounts["admin"]).from_(buckets["public"])
    assert [row["name"] for row in admin.remove([name])] == [name]


def test_signed_urls_work_then_expire(
    storage_for: StorageFor, accounts: dict[str, Account], buckets: dict[str, str]
) -> None:
    alice = storage_for(accounts["alice"]).from_(buckets["private"])
    name = f"{accounts['alice'].id}/signed photo.png"
    alice.upload(name, PNG, {"content-type": "image/png"})

    url = alice.create_signed_url(name, 60)["signedURL"]
    assert url is not None and "/object/sign/" in url and "signed%20photo.png" in url
    response = httpx.get(url)
    assert response.status_code == 200 and response.content == PNG

    items = alice.create_signed_urls([name, "missing.png"], 60)
    assert items[0]["signedURL"] and items[1]["signedURL"] is None and items[1]["error"]

    short = alice.create_signed_url(name, 1)["signedURL"]
    assert short is not None
    time.sleep(1.2)
    expired = httpx.get(short)
    assert expired.status_code == 400
    assert expired.json() == {
        "statusCode": "400", "error": "InvalidJWT", "code": "InvalidJWT", "message": "jwt expired",
    }  # fmt: skip

    token = url.split("token=", 1)[1]
    elsewhere = url.split("/object/sign/")[0] + f"/object/sign/{buckets['private']}/other.png"
    assert httpx.get(elsewhere, params={"token": token}).json()["error"] == "InvalidSignature"
    # A signed URL's token is no access token, and an access token signs no URL.
    assert httpx.get(url.split("?")[0], params={"token": token[:-2] + "xx"}).status_code == 400
    headers = {"Authorization": f"Bearer {token}"}
    me = url.split("/storage/v1/")[0] + "/api/v1/users/me"
    assert httpx.get(me, headers=headers).status_code == 401


def test_size_and_content_type_limits(
    storage_for: StorageFor,
    accounts: dict[str, Account],
    buckets: dict[str, str],
    storage_settings: Settings,
    live: LiveServer,
) -> None:
    admin, alice = storage_for(accounts["admin"]), storage_for(accounts["alice"])
    small = f"small-{uuid.uuid4().hex[:6]}"
    admin.create_bucket(small, options={"file_size_limit": 1024, "allowed_mime_types": ["image/*"]})
    bucket, folder = alice.from_(small), accounts["alice"].id  # private: her folder
    bucket.upload(f"{folder}/ok.png", b"x" * 1024, {"content-type": "image/png"})
    status, error, message = status_of(
        lambda: bucket.upload(f"{folder}/big.png", b"x" * 1025, {"content-type": "image/png"})
    )
    assert (status, error) == (413, "Payload too large") and "1024 bytes" in message
    status, error, _ = status_of(
        lambda: bucket.upload(f"{folder}/notes.txt", b"hello", {"content-type": "text/plain"})
    )
    assert (status, error) == (415, "invalid_mime_type")

    photos = alice.from_(buckets["public"])  # no bucket limits: the server's apply
    too_big = b"x" * (MAX_OBJECT_BYTES + 1)
    png = {"content-type": "image/png"}
    assert status_of(lambda: photos.upload("huge.png", too_big, png))[0] == 413
    html = {"content-type": "text/html"}
    assert status_of(lambda: photos.upload("page.html", b"<script>", html))[0] == 415
    svg = {"content-type": "image/svg+xml"}
    assert status_of(lambda: photos.upload("logo.svg", b"<svg/>", svg))[0] == 415
    # A raw body (not multipart) is limited the same way, before it is read.
    raw = httpx.post(
        f"{live.url}/storage/v1/object/{buckets['public']}/raw.png",
        content=too_big,
        headers={**accounts["alice"].headers, "Content-Type": "image/png"},
    )
    assert raw.status_code == 413 and raw.json()["code"] == "EntityTooLarge"
    assert storage_settings.storage_dir is not None
    assert list((storage_settings.storage_dir / "tmp").iterdir()) == []  # nothing left behind
    admin.empty_bucket(small)
    admin.delete_bucket(small)


def test_upsert_update_move_copy_and_files_follow(
    storage_for: StorageFor,
    accounts: dict[str, Account],
    buckets: dict[str, str],
    storage_settings: Settings,
) -> None:
    alice = storage_for(accounts["alice"]).from_(buckets["public"])
    name = f"versions/{uuid.uuid4().hex[:6]}.png"
    before = files_on_disk(storage_settings)
    alice.upload(name, b"\x89PNG one", {"content-type": "image/png"})
    png = {"content-type": "image/png"}
    assert status_of(lambda: alice.upload(name, b"\x89PNG two", png))[:2] == (409, "Duplicate")
    upsert = {"content-type": "image/png", "upsert": "true"}
    alice.upload(name, b"\x89PNG two", upsert)  # type: ignore[arg-type]
    assert alice.download(name) == b"\x89PNG two"
    alice.update(name, b"\x89PNG three", {"content-type": "image/png"})
    assert alice.download(name) == b"\x89PNG three"
    assert len(files_on_disk(storage_settings) - before) == 1  # old versions removed

    moved = name.replace("versions/", "moved/")
    alice.move(name, moved)
    assert status_of(lambda: alice.download(name))[0] == 404
    copied = alice.copy(moved, moved + ".copy")
    assert copied["Key"] == f"{buckets['public']}/{moved}.copy"
    assert alice.download(moved + ".copy") == alice.download(moved) == b"\x89PNG three"
    assert len(files_on_disk(storage_settings) - before) == 2

    removed = alice.remove([moved, moved + ".copy", "versions/none.png"])
    assert sorted(row["name"] for row in removed) == sorted([moved, moved + ".copy"])
    assert files_on_disk(storage_settings) - before == set()


@pytest.mark.parametrize(
    "path",
    ["..%2F..%2Fescape.png", "a/../../escape.png", "%2Fabsolute.png", "a//b.png", "nul%00.png",
     "back%5Cslash.png", "dot/./x.png", "trailing/"],
)  # fmt: skip
def test_object_names_cannot_escape_the_store(
    live: LiveServer,
    accounts: dict[str, Account],
    buckets: dict[str, str],
    storage_settings: Settings,
    path: str,
) -> None:
    # http.client sends the path as written (httpx would normalise the dot segments away).
    connection = HTTPConnection(live.url.removeprefix("http://"), timeout=10)
    headers = {**accounts["alice"].headers, "Content-Type": "image/png"}
    connection.request("POST", f"/storage/v1/object/{buckets['public']}/{path}", PNG, headers)
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    assert response.status == 400, body
    assert body["error"] == "InvalidKey"
    assert storage_settings.storage_dir is not None
    root = storage_settings.storage_dir.parent
    assert not [p for p in root.rglob("*escape*")]


def test_signed_upload_url_uploads_in_the_signers_name(
    storage_for: StorageFor, accounts: dict[str, Account], buckets: dict[str, str]
) -> None:
    alice = storage_for(accounts["alice"]).from_(buckets["private"])
    name = f"{accounts['alice'].id}/from-a-link.png"
    signed = alice.create_signed_upload_url(name)
    anonymous = storage_for(None).from_(buckets["private"])
    png = {"content-type": "image/png"}
    result = anonymous.upload_to_signed_url(name, signed["token"], PNG, png)
    assert result.full_path == f"{buckets['private']}/{name}"
    assert alice.download(name) == PNG
    again = anonymous.upload_to_signed_url
    assert status_of(lambda: again(name, signed["token"], PNG, png))[0] == 409


def test_emptying_and_deleting_buckets(
    storage_for: StorageFor, accounts: dict[str, Account], storage_settings: Settings
) -> None:
    admin, alice = storage_for(accounts["admin"]), storage_for(accounts["alice"])
    bucket_id = f"temp-{uuid.uuid4().hex[:6]}"
    admin.create_bucket(bucket_id)
    alice.from_(bucket_id).upload(
        f"{accounts['alice'].id}/a.png", PNG, {"content-type": "image/png"}
    )
    before = files_on_disk(storage_settings)
    assert status_of(lambda: admin.delete_bucket(bucket_id))[:2] == (409, "InvalidRequest")
    assert status_of(lambda: alice.empty_bucket(bucket_id))[0] == 403
    admin.empty_bucket(bucket_id)  # an admin empties even private objects of others
    admin.delete_bucket(bucket_id)
    assert status_of(lambda: admin.get_bucket(bucket_id))[0] == 404
    assert len(before - files_on_disk(storage_settings)) == 1


def test_supabase_users_and_deleted_accounts(
    storage_for: StorageFor,
    http: httpx.Client,
    buckets: dict[str, str],
    storage_settings: Settings,
    live: LiveServer,
) -> None:
    """A Supabase Auth token works as ours; a deleted account's files go with it."""
    claims = {"sub": str(uuid.uuid4()), "aud": "authenticated", "exp": int(time.time()) + 600}
    supabase_token = jwt.encode(claims, TEST_SUPABASE_JWT_SECRET, algorithm="HS256")
    supabase_user = storage_for(
        Account(0, "supabase", {"Authorization": f"Bearer {supabase_token}"})
    )
    photos = supabase_user.from_(buckets["public"])
    photos.upload("supabase/me.png", PNG, {"content-type": "image/png"})
    assert photos.download("supabase/me.png") == PNG

    leaving = new_account(http, "st_leaving")
    before = files_on_disk(storage_settings)
    storage_for(leaving).from_(buckets["private"]).upload(
        f"{leaving.id}/x.png", PNG, {"content-type": "image/png"}
    )
    assert len(files_on_disk(storage_settings) - before) == 1
    assert http.delete("/users/me", headers=leaving.headers).status_code == 204
    photos.remove(["supabase/me.png"])  # any later write reaps the files of deleted rows
    assert files_on_disk(storage_settings) - before == set()


def test_a_supabase_owned_storage_schema_is_left_alone(
    create_database: Callable[[str], DatabaseUnderTest], settings: Settings
) -> None:
    """On a Supabase project `storage` is Supabase Storage's: the migration and its
    downgrade leave it be, and the API says so instead of misreading it."""
    database = create_database("planwise_foreign_storage")
    with connect(database.admin_url) as conn:
        conn.execute("CREATE SCHEMA storage")
        conn.execute("CREATE TABLE storage.objects (id uuid PRIMARY KEY, owner uuid)")
        conn.commit()
    migrations.upgrade(database.admin_url)
    set_role_passwords(database.admin_url, configured_role_passwords(settings))
    with connect(database.admin_url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'storage'"
        ).fetchall()
    assert tables == [("objects",)]

    from pydantic import SecretStr

    app_settings = settings.model_copy(
        update={
            "database_url": database.app_url,
            "planwise_env": "test",
            "jwt_secret": SecretStr("t" * 40),
        }
    )
    app = create_app(app_settings)
    with TestClient(app) as client:
        username = f"st_{uuid.uuid4().hex[:8]}"
        body = {"username": username, "password": "correct horse battery", "full_name": "S"}
        assert client.post("/api/v1/auth/register", json=body).status_code == 201
        token = client.post(
            "/api/v1/auth/token", data={"username": username, "password": body["password"]}
        ).json()["access_token"]
        response = client.get("/storage/v1/bucket", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 501 and response.json()["error"] == "NotImplemented"
    app.state.engine.dispose()

    migrations.downgrade(database.admin_url, "base")
    with connect(database.admin_url) as conn:
        assert conn.execute("SELECT to_regclass('storage.objects')").fetchone() == (
            "storage.objects",
        )


def test_policies_hold_for_a_real_app_service_login(
    storage_for: StorageFor,
    accounts: dict[str, Account],
    buckets: dict[str, str],
    api_db: DatabaseUnderTest,
) -> None:
    """Below the API: `app_service` with another user's id set sees and changes nothing
    of Alice's private objects, and cannot make buckets."""
    alice = storage_for(accounts["alice"]).from_(buckets["private"])
    name = f"{accounts['alice'].id}/sql.txt"
    alice.upload(name, b"secret", {"content-type": "text/plain"})
    bob = storage_for(accounts["bob"]).from_(buckets["private"])
    bob.upload(f"{accounts['bob'].id}/sql.txt", b"mine", {"content-type": "text/plain"})
    bob_id, alice_id = accounts["bob"].id, accounts["alice"].id

    with connect(api_db.app_url) as conn:
        conn.execute("SELECT set_config('app.user_id', %s, false)", (str(bob_id),))
        assert conn.execute(
            "SELECT count(*) FROM storage.objects WHERE bucket_id = %s AND owner <> %s",
            (buckets["private"], bob_id),
        ).fetchone() == (0,)
        assert conn.execute("UPDATE storage.objects SET owner = %s WHERE owner = %s",
                            (bob_id, alice_id)).rowcount == 0  # fmt: skip
        assert (
            conn.execute("DELETE FROM storage.objects WHERE owner = %s", (alice_id,)).rowcount == 0
        )
        for statement, params in (
            ("INSERT INTO storage.objects (bucket_id, name, owner, version) "
             "VALUES (%s, 'x', %s, gen_random_uuid())", (buckets["private"], alice_id)),
            ("INSERT INTO storage.buckets (id, name) VALUES ('bobs', 'bobs')", ()),
            ("UPDATE storage.objects SET owner = %s WHERE owner = %s", (alice_id, bob_id)),
        ):  # fmt: skip
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute(statement, params)
        conn.execute("SELECT set_config('app.user_id', '', false)")
        assert conn.execute(
            "SELECT count(*) FROM storage.objects WHERE bucket_id = %s", (buckets["private"],)
        ).fetchone() == (0,)
    assert alice.download(name) == b"secret"


def test_api_keys_act_as_supabase_roles(
    storage_for: StorageFor,
    accounts: dict[str, Account],
    buckets: dict[str, str],
    storage_settings: Settings,
) -> None:
    """service_role bypasses RLS and administers buckets; anon reads what is public only."""
    project_keys = keys.api_keys(storage_settings)

    def with_key(key: str) -> SyncStorageClient:
        account = Account(id=0, username="key", headers={"Authorization": f"Bearer {key}"})
        return storage_for(account)

    service, anon = with_key(project_keys.service_role), with_key(project_keys.anon)
    bucket = f"admin-{uuid.uuid4().hex[:8]}"
    service.create_bucket(bucket)
    assert bucket in {b.id for b in service.list_buckets()}
    assert status_of(lambda: anon.create_bucket(f"no-{bucket}"))[0] == 403

    alice = storage_for(accounts["alice"]).from_(buckets["private"])
    name = f"{accounts['alice'].id}/secret-{uuid.uuid4().hex[:6]}.txt"
    alice.upload(name, b"alice only", {"content-type": "text/plain"})
    assert service.from_(buckets["private"]).download(name) == b"alice only"
    assert status_of(lambda: anon.from_(buckets["private"]).download(name))[0] == 404
    signed = service.from_(buckets["private"]).create_signed_url(name, 60)
    assert httpx.get(signed["signedURL"]).content == b"alice only"

    service.from_(bucket).upload("by-the-service.txt", b"ours", {"content-type": "text/plain"})
    assert service.from_(bucket).download("by-the-service.txt") == b"ours"
    anon_public = anon.from_(buckets["public"])
    plain = {"content-type": "text/plain"}
    assert status_of(lambda: anon_public.upload("a.txt", b"x", plain))[0] == 403  # type: ignore[arg-type]

    public_name = f"reviews/{uuid.uuid4().hex[:6]}.png"
    storage_for(accounts["alice"]).from_(buckets["public"]).upload(
        public_name, PNG, {"content-type": "image/png"}
    )
    assert anon.from_(buckets["public"]).download(public_name) == PNG
    assert service.from_(buckets["public"]).remove([public_name])[0]["name"] == public_name
