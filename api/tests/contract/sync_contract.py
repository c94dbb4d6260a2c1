"""The supabase-py contract with the sync client (`supabase.create_client`).

    SUPABASE_URL=… SUPABASE_ANON_KEY=… SUPABASE_SERVICE_ROLE_KEY=… \\
        ../.venv/bin/python -m tests.contract.sync_contract        # from api/

Prints `ok <step>` or `FAIL <step>: <reason>` per step and `N passed, M failed`; exits 1
on any failure. supabase-py's sync client has no realtime (its `channel()` raises
NotImplementedError): the async contract covers realtime for Python.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

import httpx
import jwt
from postgrest.types import CountMethod
from supabase import AuthApiError, Client, ClientOptions, create_client

from tests.contract.common import (
    HERE,
    PASSWORD,
    RADIUS_KM,
    TEXT,
    Environment,
    Report,
    Run,
    expect,
    rows,
)


class User:
    """One signed-up user with a client of their own (anon key, their session)."""

    def __init__(self, env: Environment, run: Run, who: str) -> None:
        self.who = who
        self.email = run.email(who)
        self.username = run.username(who)
        self.client: Client = new_client(env, env.anon_key)
        self.auth_id = ""
        self.refresh_token = ""
        self.user_id: int | None = None  # Planwise's user.id, as user_id columns hold it

    def table(self, name: str) -> Any:
        return self.client.table(name)


def new_client(env: Environment, key: str) -> Client:
    options = ClientOptions(auto_refresh_token=False, persist_session=False)
    return create_client(env.url, key, options=options)


def contract(env: Environment) -> int:
    report = Report("supabase-py sync")
    run = Run("py", env.email_domain)
    service = new_client(env, env.service_role_key)
    anon = new_client(env, env.anon_key)
    first, second = User(env, run, "a"), User(env, run, "b")
    users = (first, second)
    museum, park = run.place_ids
    path = ""
    ids: dict[str, int] = {}

    def insert_places() -> None:
        inserted = rows(service.table("place").insert(run.places()).execute().data)
        expect(sorted(r["id"] for r in inserted) == sorted(run.place_ids), f"got {inserted}")

    def anon_reads_places() -> None:
        found = rows(anon.table("place").select("id, name").in_("id", run.place_ids).execute().data)
        expect(len(found) == 2, f"anon saw {len(found)} of the 2 places")

    def create_bucket() -> None:
        service.storage.create_bucket(run.bucket, options={"public": False})
        bucket = service.storage.get_bucket(run.bucket)
        expect(bucket.id == run.bucket and not bucket.public, f"got {bucket}")

    def sign_up() -> None:
        for user in users:
            data = {"username": user.username, "full_name": f"Contract {user.who.upper()}"}
            answer = user.client.auth.sign_up(
                {"email": user.email, "password": PASSWORD, "options": {"data": data}}
            )
            expect(answer.user is not None and answer.user.email == user.email, "no user")
            expect(answer.session is not None, f"{user.who}: no session (email confirmation on?)")
            assert answer.user is not None
            user.auth_id = answer.user.id
        expect(first.auth_id != second.auth_id, "both users got the same id")

    def sign_in() -> None:
        for user in users:
            answer = user.client.auth.sign_in_with_password(
                {"email": user.email, "password": PASSWORD}
            )
            session = answer.session
            expect(session is not None, f"{user.who}: no session")
            assert session is not None
            expect(session.user.id == user.auth_id, f"{user.who}: signed in as someone else")
            claims = jwt.decode(session.access_token, options={"verify_signature": False})
            expect(claims.get("sub") == user.auth_id, f"{user.who}: sub {claims.get('sub')}")
            expect(claims.get("role") == "authenticated", f"{user.who}: role {claims.get('role')}")
            user.refresh_token = session.refresh_token
        bad = new_client(env, env.anon_key)
        try:
            bad.auth.sign_in_with_password({"email": first.email, "password": PASSWORD + "x"})
        except AuthApiError as error:
            expect(error.code == "invalid_credentials", f"wrong password: {error.code} {error}")
        else:
            raise AssertionError("a wrong password signed in")

    def refresh() -> None:
        for user in users:
            answer = user.client.auth.refresh_session()
            session = answer.session
            expect(session is not None, f"{user.who}: no session")
            assert session is not None
            expect(session.refresh_token != user.refresh_token, "refresh token not rotated")
            expect(session.user.id == user.auth_id, f"{user.who}: refreshed as someone else")
            user.refresh_token = session.refresh_token

    def get_user() -> None:
        for user in users:
            answer = user.client.auth.get_user()
            expect(answer is not None and answer.user.email == user.email, f"got {answer}")

    def update_user() -> None:
        for user in users:
            name = f"Contract {user.who.upper()} renamed"
            answer = user.client.auth.update_user({"data": {"full_name": name}})
            expect(answer.user.user_metadata.get("full_name") == name, f"got {answer.user}")
            again = user.client.auth.get_user()
            assert again is not None
            expect(again.user.user_metadata.get("full_name") == name, "update not kept")

    def preference_insert() -> None:
        for user, category in zip(users, ("museum", "park"), strict=True):
            answer = user.table("preference").insert({"category": category, "rating": 0.9})
            row = rows(answer.execute().data)
            expect(len(row) == 1 and row[0]["category"] == category, f"got {row}")
            expect(isinstance(row[0]["user_id"], int), f"user_id not filled in: {row[0]}")
            user.user_id = row[0]["user_id"]
            ids[f"preference {user.who}"] = row[0]["id"]
        expect(first.user_id != second.user_id, "both users own the same user_id")

    def preference_select() -> None:
        mine = rows(first.table("preference").select("id, category, rating").execute().data)
        expect([r["id"] for r in mine] == [ids["preference a"]], f"first sees {mine}")
        theirs = second.table("preference").select("*").eq("id", ids["preference a"]).execute()
        expect(rows(theirs.data) == [], f"second sees the first's row: {theirs.data}")
        own = rows(second.table("preference").select("id").execute().data)
        expect([r["id"] for r in own] == [ids["preference b"]], f"second sees {own}")

    def rating_of(table: str, key: str) -> float:
        found = rows(first.table(table).select("rating").eq("id", ids[key]).execute().data)
        expect(len(found) == 1, f"{key}: {len(found)} rows")
        return float(found[0]["rating"])

    def preference_update() -> None:
        row = rows(
            first.table("preference").update({"rating": 0.8}).eq("id", ids["preference a"])
            .execute().data
        )  # fmt: skip
        expect(len(row) == 1 and row[0]["rating"] == 0.8, f"got {row}")
        other = second.table("preference").update({"rating": 0.1})
        changed = rows(other.eq("id", ids["preference a"]).execute().data)
        expect(changed == [], f"second changed {changed}")
        expect(rating_of("preference", "preference a") == 0.8, "the first's row changed")

    def preference_upsert() -> None:
        row = rows(
            first.table("preference")
            .upsert({"category": "museum", "rating": 0.95}, on_conflict="user_id,category")
            .execute().data
        )  # fmt: skip
        expect(len(row) == 1 and row[0]["id"] == ids["preference a"], f"got {row}")
        expect(row[0]["rating"] == 0.95, f"got {row}")
        attempt = {"id": ids["preference a"], "category": "museum", "rating": 0.0}
        refused_or_empty(lambda: second.table("preference").upsert(attempt).execute().data)
        expect(rating_of("preference", "preference a") == 0.95, "the first's row changed")
        count = first.table("preference").select("id", count=CountMethod.exact).execute().count
        expect(count == 1, f"first has {count} preferences after the upsert")

    def review_insert() -> None:
        for user, rating in zip(users, (4.0, 2.0), strict=True):
            body = {"place_id": museum, "rating": rating, "comment": f"by {user.who}"}
            row = rows(user.table("review").insert(body).execute().data)
            expect(len(row) == 1 and row[0]["user_id"] == user.user_id, f"got {row}")
            ids[f"review {user.who}"] = row[0]["id"]

    def review_select() -> None:
        mine = rows(
            first.table("review").select("id, rating, comment, place(id, name)").execute().data
        )
        expect(len(mine) == 1 and mine[0]["id"] == ids["review a"], f"first sees {mine}")
        expect(mine[0]["place"] == {"id": museum, "name": run.places()[0]["name"]}, f"{mine}")
        theirs = rows(second.table("review").select("*").eq("id", ids["review a"]).execute().data)
        expect(theirs == [], f"second sees the first's review: {theirs}")

    def review_update() -> None:
        row = rows(
            first.table("review").update({"rating": 5.0}).eq("id", ids["review a"]).execute().data
        )
        expect(len(row) == 1 and row[0]["rating"] == 5.0, f"got {row}")
        changed = rows(
            second.table("review").update({"rating": 1.0}).eq("id", ids["review a"])
            .execute().data
        )  # fmt: skip
        expect(changed == [], f"second changed {changed}")
        expect(rating_of("review", "review a") == 5.0, "the first's review changed")

    def review_upsert() -> None:
        body = {"place_id": museum, "rating": 3.0, "comment": "upserted"}
        row = rows(
            first.table("review").upsert(body, on_conflict="user_id,place_id").execute().data
        )
        expect(len(row) == 1 and row[0]["id"] == ids["review a"], f"got {row}")
        expect(row[0]["comment"] == "upserted", f"got {row}")
        attempt = {"id": ids["review a"], "place_id": museum, "rating": 1.0}
        refused_or_empty(lambda: second.table("review").upsert(attempt).execute().data)
        expect(rating_of("review", "review a") == 3.0, "the first's review changed")

    def recommend() -> None:
        args = {"lat": HERE[0], "lng": HERE[1], "radius_km": RADIUS_KM, "max_results": 20}
        for user, want, other in ((first, museum, park), (second, park, museum)):
            found = rows(user.client.rpc("recommend_places", args).execute().data)
            got = [r["id"] for r in found]
            expect(want in got and other not in got, f"{user.who} got {got}")
            expect(all(r["score"] > 0 for r in found), f"{user.who}: scores {found}")

    def anon_recommend() -> None:
        args = {"lat": HERE[0], "lng": HERE[1], "radius_km": RADIUS_KM}
        refused_or_empty(lambda: anon.rpc("recommend_places", args).execute().data)

    def upload() -> None:
        nonlocal path
        path = f"{first.auth_id}/note-{run.tag}.txt"
        first.client.storage.from_(run.bucket).upload(
            path, TEXT.encode(), {"content-type": "text/plain"}
        )

    def download() -> None:
        data = first.client.storage.from_(run.bucket).download(path)
        expect(data == TEXT.encode(), f"downloaded {data!r}")
        refused(lambda: second.client.storage.from_(run.bucket).download(path))

    def signed_url() -> None:
        signed = first.client.storage.from_(run.bucket).create_signed_url(path, 60)
        url = signed["signedURL"]
        expect(url, f"no signed URL in {signed}")
        answer = httpx.get(str(url), timeout=10)
        expect(answer.status_code == 200, f"GET signed URL: {answer.status_code} {answer.text}")
        expect(answer.content == TEXT.encode(), f"signed URL served {answer.content!r}")
        refused(lambda: second.client.storage.from_(run.bucket).create_signed_url(path, 60))

    def storage_remove() -> None:
        removed = second.client.storage.from_(run.bucket).remove([path])
        expect(removed == [], f"second removed {removed}")
        expect(first.client.storage.from_(run.bucket).download(path) == TEXT.encode(), "gone")
        removed = first.client.storage.from_(run.bucket).remove([path])
        expect(len(removed) == 1, f"first removed {removed}")

    def no_realtime() -> None:
        try:
            first.client.channel("planwise-contract")
        except NotImplementedError:
            return
        raise AssertionError("the sync client now has realtime: add it to this contract")

    def delete(table: str) -> None:
        key = f"{table} a"
        gone = rows(second.table(table).delete().eq("id", ids[key]).execute().data)
        expect(gone == [], f"second deleted {gone}")
        expect(rating_of(table, key) > 0, "the first's row vanished")
        gone = rows(first.table(table).delete().eq("id", ids[key]).execute().data)
        expect([r["id"] for r in gone] == [ids[key]], f"first deleted {gone}")
        left = rows(first.table(table).select("id").execute().data)
        expect(left == [], f"first still has {left}")

    def delete_without_filter_refused() -> None:
        refused(lambda: second.table("preference").delete().execute())

    def sign_out() -> None:
        for user in users:
            user.client.auth.sign_out()
            expect(user.client.auth.get_session() is None, f"{user.who}: session kept")
            refused(partial(user.client.auth.refresh_session, user.refresh_token))

    def admin_users() -> None:
        listed = service.auth.admin.get_user_by_id(first.auth_id)
        expect(listed.user.email == first.email, f"got {listed.user}")
        for user in users:
            service.auth.admin.delete_user(user.auth_id)
        refused(lambda: service.auth.admin.get_user_by_id(first.auth_id))

    def delete_bucket() -> None:
        if path:
            service.storage.from_(run.bucket).remove([path])
        service.storage.delete_bucket(run.bucket)

    def delete_places() -> None:
        gone = rows(service.table("place").delete().in_("id", run.place_ids).execute().data)
        expect(len(gone) == 2, f"deleted {len(gone)} places")

    r = report.run
    r("service_role: insert places", insert_places)
    r("anon: select place", anon_reads_places, ["service_role: insert places"])
    r("service_role: create bucket", create_bucket)
    r("auth: sign up", sign_up)
    r("auth: sign in with password", sign_in, ["auth: sign up"])
    r("auth: refresh session", refresh, ["auth: sign in with password"])
    r("auth: get user", get_user, ["auth: sign in with password"])
    r("auth: update user metadata", update_user, ["auth: sign in with password"])
    r("rest: preference insert", preference_insert, ["auth: sign in with password"])
    r("rest: preference select", preference_select, ["rest: preference insert"])
    r("rest: preference update", preference_update, ["rest: preference insert"])
    r("rest: preference upsert", preference_upsert, ["rest: preference insert"])
    places_and_users = ["service_role: insert places", "rest: preference insert"]
    r("rest: review insert", review_insert, places_and_users)
    r("rest: review select (embedding place)", review_select, ["rest: review insert"])
    r("rest: review update", review_update, ["rest: review insert"])
    r("rest: review upsert", review_upsert, ["rest: review insert"])
    r("rest: rpc recommend_places", recommend, places_and_users)
    r("anon: rpc recommend_places refused or empty", anon_recommend)
    storage = ["service_role: create bucket", "auth: sign in with password"]
    r("storage: upload", upload, storage)
    r("storage: download", download, ["storage: upload"])
    r("storage: signed URL", signed_url, ["storage: upload"])
    r("storage: remove", storage_remove, ["storage: upload"])
    report.note("realtime: supabase-py's sync client has none (channel() raises)")
    r("realtime: sync client has none", no_realtime)
    r("rest: delete without a filter is refused", delete_without_filter_refused,
      ["rest: preference insert"])  # fmt: skip
    r("rest: review delete", lambda: delete("review"), ["rest: review insert"])
    r("rest: preference delete", lambda: delete("preference"), ["rest: preference insert"])
    r("auth: sign out", sign_out, ["auth: refresh session"])
    r("auth: admin get and delete users", admin_users, ["auth: sign up"])
    r("service_role: delete bucket", delete_bucket, ["service_role: create bucket"])
    r("service_role: delete places", delete_places, ["service_role: insert places"])
    return report.finish()


def refused(call: Any) -> None:
    """The call must fail (an error from the server, raised by the client)."""
    try:
        result = call()
    except Exception:
        return
    raise AssertionError(f"not refused: {result!r}")


def refused_or_empty(call: Any) -> None:
    """A write on another user's row: an error (RLS) or no row touched."""
    try:
        result = call()
    except Exception:
        return
    expect(result == [], f"touched {result!r}")


def main() -> None:
    sys.exit(contract(Environment.from_os()))


if __name__ == "__main__":
    main()
