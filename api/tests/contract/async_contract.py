"""The supabase-py contract with the async client (`supabase.acreate_client`), realtime
(`postgres_changes`, broadcast, presence, a private channel) included.

    SUPABASE_URL=… SUPABASE_ANON_KEY=… SUPABASE_SERVICE_ROLE_KEY=… \\
        ../.venv/bin/python -m tests.contract.async_contract       # from api/

Prints `ok <step>` or `FAIL <step>: <reason>` per step and `N passed, M failed`; exits 1
on any failure.
"""

from __future__ import annotations

import asyncio
import sys
import time
from functools import partial
from typing import Any

import httpx
import jwt
from postgrest.types import CountMethod
from realtime import RealtimePostgresChangesListenEvent, RealtimeSubscribeStates
from supabase import AsyncClient, AsyncClientOptions, AuthApiError, acreate_client

from tests.contract.common import (
    DELIVERY_TIMEOUT_S,
    HERE,
    PASSWORD,
    RADIUS_KM,
    SILENCE_S,
    TEXT,
    Environment,
    Report,
    Run,
    expect,
    rows,
)


class User:
    """One signed-up user with a client of their own (anon key, their session)."""

    def __init__(self, client: AsyncClient, run: Run, who: str) -> None:
        self.who = who
        self.email = run.email(who)
        self.username = run.username(who)
        self.client = client
        self.auth_id = ""
        self.refresh_token = ""
        self.user_id: int | None = None  # Planwise's user.id, as user_id columns hold it
        self.changes: list[dict[str, Any]] = []  # realtime postgres_changes received
        self.arrived = asyncio.Event()

    def table(self, name: str) -> Any:
        return self.client.table(name)

    def receive(self, payload: Any) -> None:
        self.changes.append(dict(payload))
        self.arrived.set()


async def new_client(env: Environment, key: str) -> AsyncClient:
    options = AsyncClientOptions(auto_refresh_token=False, persist_session=False)
    return await acreate_client(env.url, key, options=options)


async def contract(env: Environment) -> int:
    report = Report("supabase-py async")
    run = Run("pyasync", env.email_domain)
    service = await new_client(env, env.service_role_key)
    anon = await new_client(env, env.anon_key)
    first = User(await new_client(env, env.anon_key), run, "a")
    second = User(await new_client(env, env.anon_key), run, "b")
    users = (first, second)
    museum, park = run.place_ids
    path = ""
    ids: dict[str, int] = {}

    async def insert_places() -> None:
        inserted = rows((await service.table("place").insert(run.places()).execute()).data)
        expect(sorted(r["id"] for r in inserted) == sorted(run.place_ids), f"got {inserted}")

    async def anon_reads_places() -> None:
        query = anon.table("place").select("id, name").in_("id", run.place_ids)
        found = rows((await query.execute()).data)
        expect(len(found) == 2, f"anon saw {len(found)} of the 2 places")

    async def create_bucket() -> None:
        await service.storage.create_bucket(run.bucket, options={"public": False})
        bucket = await service.storage.get_bucket(run.bucket)
        expect(bucket.id == run.bucket and not bucket.public, f"got {bucket}")

    async def sign_up() -> None:
        for user in users:
            data = {"username": user.username, "full_name": f"Contract {user.who.upper()}"}
            answer = await user.client.auth.sign_up(
                {"email": user.email, "password": PASSWORD, "options": {"data": data}}
            )
            expect(answer.user is not None and answer.user.email == user.email, "no user")
            expect(answer.session is not None, f"{user.who}: no session (email confirmation on?)")
            assert answer.user is not None
            user.auth_id = answer.user.id
        expect(first.auth_id != second.auth_id, "both users got the same id")

    async def sign_in() -> None:
        for user in users:
            answer = await user.client.auth.sign_in_with_password(
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
        bad = await new_client(env, env.anon_key)
        try:
            await bad.auth.sign_in_with_password({"email": first.email, "password": PASSWORD + "x"})
        except AuthApiError as error:
            expect(error.code == "invalid_credentials", f"wrong password: {error.code} {error}")
        else:
            raise AssertionError("a wrong password signed in")

    async def refresh() -> None:
        for user in users:
            answer = await user.client.auth.refresh_session()
            session = answer.session
            expect(session is not None, f"{user.who}: no session")
            assert session is not None
            expect(session.refresh_token != user.refresh_token, "refresh token not rotated")
            expect(session.user.id == user.auth_id, f"{user.who}: refreshed as someone else")
            user.refresh_token = session.refresh_token

    async def get_user() -> None:
        for user in users:
            answer = await user.client.auth.get_user()
            expect(answer is not None and answer.user.email == user.email, f"got {answer}")

    async def update_user() -> None:
        for user in users:
            name = f"Contract {user.who.upper()} renamed"
            answer = await user.client.auth.update_user({"data": {"full_name": name}})
            expect(answer.user.user_metadata.get("full_name") == name, f"got {answer.user}")
            again = await user.client.auth.get_user()
            assert again is not None
            expect(again.user.user_metadata.get("full_name") == name, "update not kept")

    async def preference_insert() -> None:
        for user, category in zip(users, ("museum", "park"), strict=True):
            query = user.table("preference").insert({"category": category, "rating": 0.9})
            row = rows((await query.execute()).data)
            expect(len(row) == 1 and row[0]["category"] == category, f"got {row}")
            expect(isinstance(row[0]["user_id"], int), f"user_id not filled in: {row[0]}")
            user.user_id = row[0]["user_id"]
            ids[f"preference {user.who}"] = row[0]["id"]
        expect(first.user_id != second.user_id, "both users own the same user_id")

    async def preference_select() -> None:
        query = first.table("preference").select("id, category, rating")
        mine = rows((await query.execute()).data)
        expect([r["id"] for r in mine] == [ids["preference a"]], f"first sees {mine}")
        query = second.table("preference").select("*").eq("id", ids["preference a"])
        theirs = rows((await query.execute()).data)
        expect(theirs == [], f"second sees the first's row: {theirs}")
        own = rows((await second.table("preference").select("id").execute()).data)
        expect([r["id"] for r in own] == [ids["preference b"]], f"second sees {own}")

    async def rating_of(table: str, key: str) -> float:
        query = first.table(table).select("rating").eq("id", ids[key])
        found = rows((await query.execute()).data)
        expect(len(found) == 1, f"{key}: {len(found)} rows")
        return float(found[0]["rating"])

    async def preference_update() -> None:
        query = first.table("preference").update({"rating": 0.8}).eq("id", ids["preference a"])
        row = rows((await query.execute()).data)
        expect(len(row) == 1 and row[0]["rating"] == 0.8, f"got {row}")
        query = second.table("preference").update({"rating": 0.1}).eq("id", ids["preference a"])
        changed = rows((await query.execute()).data)
        expect(changed == [], f"second changed {changed}")
        expect(await rating_of("preference", "preference a") == 0.8, "the first's row changed")

    async def preference_upsert() -> None:
        query = first.table("preference").upsert(
            {"category": "museum", "rating": 0.95}, on_conflict="user_id,category"
        )
        row = rows((await query.execute()).data)
        expect(len(row) == 1 and row[0]["id"] == ids["preference a"], f"got {row}")
        expect(row[0]["rating"] == 0.95, f"got {row}")
        attempt = {"id": ids["preference a"], "category": "museum", "rating": 0.0}
        await refused_or_empty(second.table("preference").upsert(attempt).execute())
        expect(await rating_of("preference", "preference a") == 0.95, "the first's row changed")
        query = first.table("preference").select("id", count=CountMethod.exact)
        count = (await query.execute()).count
        expect(count == 1, f"first has {count} preferences after the upsert")

    async def review_insert() -> None:
        for user, rating in zip(users, (4.0, 2.0), strict=True):
            body = {"place_id": museum, "rating": rating, "comment": f"by {user.who}"}
            row = rows((await user.table("review").insert(body).execute()).data)
            expect(len(row) == 1 and row[0]["user_id"] == user.user_id, f"got {row}")
            ids[f"review {user.who}"] = row[0]["id"]

    async def review_select() -> None:
        query = first.table("review").select("id, rating, comment, place(id, name)")
        mine = rows((await query.execute()).data)
        expect(len(mine) == 1 and mine[0]["id"] == ids["review a"], f"first sees {mine}")
        expect(mine[0]["place"] == {"id": museum, "name": run.places()[0]["name"]}, f"{mine}")
        query = second.table("review").select("*").eq("id", ids["review a"])
        theirs = rows((await query.execute()).data)
        expect(theirs == [], f"second sees the first's review: {theirs}")

    async def review_update() -> None:
        query = first.table("review").update({"rating": 5.0}).eq("id", ids["review a"])
        row = rows((await query.execute()).data)
        expect(len(row) == 1 and row[0]["rating"] == 5.0, f"got {row}")
        query = second.table("review").update({"rating": 1.0}).eq("id", ids["review a"])
        changed = rows((await query.execute()).data)
        expect(changed == [], f"second changed {changed}")
        expect(await rating_of("review", "review a") == 5.0, "the first's review changed")

    async def review_upsert() -> None:
        body = {"place_id": museum, "rating": 3.0, "comment": "upserted"}
        query = first.table("review").upsert(body, on_conflict="user_id,place_id")
        row = rows((await query.execute()).data)
        expect(len(row) == 1 and row[0]["id"] == ids["review a"], f"got {row}")
        expect(row[0]["comment"] == "upserted", f"got {row}")
        attempt = {"id": ids["review a"], "place_id": museum, "rating": 1.0}
        await refused_or_empty(second.table("review").upsert(attempt).execute())
        expect(await rating_of("review", "review a") == 3.0, "the first's review changed")

    async def recommend() -> None:
        args = {"lat": HERE[0], "lng": HERE[1], "radius_km": RADIUS_KM, "max_results": 20}
        for user, want, other in ((first, museum, park), (second, park, museum)):
            found = rows((await user.client.rpc("recommend_places", args).execute()).data)
            got = [r["id"] for r in found]
            expect(want in got and other not in got, f"{user.who} got {got}")
            expect(all(r["score"] > 0 for r in found), f"{user.who}: scores {found}")

    async def anon_recommend() -> None:
        args = {"lat": HERE[0], "lng": HERE[1], "radius_km": RADIUS_KM}
        await refused_or_empty(anon.rpc("recommend_places", args).execute())

    async def upload() -> None:
        nonlocal path
        path = f"{first.auth_id}/note-{run.tag}.txt"
        await first.client.storage.from_(run.bucket).upload(
            path, TEXT.encode(), {"content-type": "text/plain"}
        )

    async def download() -> None:
        data = await first.client.storage.from_(run.bucket).download(path)
        expect(data == TEXT.encode(), f"downloaded {data!r}")
        await refused(second.client.storage.from_(run.bucket).download(path))

    async def signed_url() -> None:
        signed = await first.client.storage.from_(run.bucket).create_signed_url(path, 60)
        url = signed["signedURL"]
        expect(url, f"no signed URL in {signed}")
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.get(str(url))
        expect(answer.status_code == 200, f"GET signed URL: {answer.status_code} {answer.text}")
        expect(answer.content == TEXT.encode(), f"signed URL served {answer.content!r}")
        await refused(second.client.storage.from_(run.bucket).create_signed_url(path, 60))

    async def storage_remove() -> None:
        removed = await second.client.storage.from_(run.bucket).remove([path])
        expect(removed == [], f"second removed {removed}")
        data = await first.client.storage.from_(run.bucket).download(path)
        expect(data == TEXT.encode(), "the first's file changed")
        removed = await first.client.storage.from_(run.bucket).remove([path])
        expect(len(removed) == 1, f"first removed {removed}")

    async def realtime() -> None:
        for user in users:
            states: list[RealtimeSubscribeStates] = []
            channel = user.client.channel(f"contract-{run.tag}-{user.who}")
            channel.on_postgres_changes(
                RealtimePostgresChangesListenEvent.All,
                schema="public",
                table="preference",
                callback=user.receive,
            )
            await channel.subscribe(partial(note_state, states))
            expect(
                states and states[-1] == RealtimeSubscribeStates.SUBSCRIBED,
                f"{user.who}: subscription {states}",
            )
        written = time.monotonic()
        query = first.table("preference").insert({"category": "cafe", "rating": 0.5})
        row = rows((await query.execute()).data)
        ids["preference cafe"] = row[0]["id"]
        while not any(change_of(c).get("category") == "cafe" for c in first.changes):
            first.arrived.clear()
            remaining = DELIVERY_TIMEOUT_S - (time.monotonic() - written)
            expect(remaining > 0, f"first got no change in {DELIVERY_TIMEOUT_S} s")
            try:
                await asyncio.wait_for(first.arrived.wait(), remaining)
            except TimeoutError:
                continue
        report.note(
            f"realtime: delivered {1000 * (time.monotonic() - written):.0f} ms after insert"
        )
        await asyncio.sleep(SILENCE_S)
        expect(second.changes == [], f"second received the first's change: {second.changes}")
        for user in users:
            await user.client.remove_all_channels()

    async def until(condition: Any, what: str) -> None:
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S
        while not condition():
            expect(time.monotonic() < deadline, f"{what} within {DELIVERY_TIMEOUT_S} s")
            await asyncio.sleep(0.01)

    lobby = f"contract-{run.tag}-lobby"
    lobby_channels: dict[str, Any] = {}
    heard: dict[str, list[dict[str, Any]]] = {user.who: [] for user in users}

    async def broadcast() -> None:
        """Both users on one public topic: the second hears the first, who (without
        `self`) does not hear itself; then the service_role sends through the REST API."""
        for user in users:
            options: Any = {"config": {"broadcast": {"ack": True}, "presence": {"key": user.who}}}
            channel = user.client.channel(lobby, options)
            for event in ("wave", "notice"):
                channel.on_broadcast(event, lambda p, who=user.who: heard[who].append(dict(p)))
            channel.on_presence_sync(lambda: None)
            states: list[RealtimeSubscribeStates] = []
            await channel.subscribe(partial(note_state, states))
            expect(states[-1:] == [RealtimeSubscribeStates.SUBSCRIBED], f"{user.who}: {states}")
            lobby_channels[user.who] = channel
        sent = time.monotonic()
        await lobby_channels["a"].send_broadcast("wave", {"from": "a"})
        await until(lambda: heard["b"], "second heard the first")
        report.note(f"realtime: broadcast heard {1000 * (time.monotonic() - sent):.0f} ms after")
        expect(heard["b"][0]["payload"] == {"from": "a"}, f"second heard {heard['b']}")
        expect(heard["b"][0]["event"] == "wave", f"second heard {heard['b']}")
        await service.channel(lobby).http_send("notice", {"from": "server"})
        for user in users:
            await until(
                lambda who=user.who: any(m["event"] == "notice" for m in heard[who]),
                f"{user.who} heard the server",
            )
        expect(not any(m["event"] == "wave" for m in heard["a"]), "the first heard itself")

    async def presence() -> None:
        for user in users:
            await lobby_channels[user.who].track({"who": user.who})
        for user in users:
            channel = lobby_channels[user.who]
            await until(lambda c=channel: set(c.presence_state()) == {"a", "b"},
                        f"{user.who}: presence of both")  # fmt: skip
        await lobby_channels["b"].untrack()
        await until(lambda: set(lobby_channels["a"].presence_state()) == {"a"}, "second left")
        for user in users:
            await user.client.remove_channel(lobby_channels[user.who])

    async def private_channel() -> None:
        """`contract-room-<auth uid>`: clients/realtime-policies.sql lets only that user in."""
        room = f"contract-room-{first.auth_id}"
        for user, expected in (
            (first, RealtimeSubscribeStates.SUBSCRIBED),
            (second, RealtimeSubscribeStates.CHANNEL_ERROR),
        ):
            channel = user.client.channel(room, {"config": {"private": True}})
            states: list[RealtimeSubscribeStates] = []
            await channel.subscribe(partial(note_state, states))
            expect(states[-1:] == [expected], f"{user.who} joining the first's room: {states}")
            await user.client.remove_channel(channel)

    async def delete(table: str) -> None:
        key = f"{table} a"
        query = second.table(table).delete().eq("id", ids[key])
        gone = rows((await query.execute()).data)
        expect(gone == [], f"second deleted {gone}")
        expect(await rating_of(table, key) > 0, "the first's row vanished")
        mine = [ids[k] for k in (key, f"{table} cafe") if k in ids]
        gone = rows((await first.table(table).delete().in_("id", mine).execute()).data)
        expect(sorted(r["id"] for r in gone) == sorted(mine), f"first deleted {gone}")
        left = rows((await first.table(table).select("id").execute()).data)
        expect(left == [], f"first still has {left}")

    async def delete_without_filter_refused() -> None:
        await refused(second.table("preference").delete().execute())

    async def sign_out() -> None:
        for user in users:
            await user.client.auth.sign_out()
            expect(await user.client.auth.get_session() is None, f"{user.who}: session kept")
            await refused(user.client.auth.refresh_session(user.refresh_token))

    async def admin_users() -> None:
        listed = await service.auth.admin.get_user_by_id(first.auth_id)
        expect(listed.user.email == first.email, f"got {listed.user}")
        for user in users:
            await service.auth.admin.delete_user(user.auth_id)
        await refused(service.auth.admin.get_user_by_id(first.auth_id))

    async def delete_bucket() -> None:
        if path:
            await service.storage.from_(run.bucket).remove([path])
        await service.storage.delete_bucket(run.bucket)

    async def delete_places() -> None:
        query = service.table("place").delete().in_("id", run.place_ids)
        gone = rows((await query.execute()).data)
        expect(len(gone) == 2, f"deleted {len(gone)} places")

    r = report.arun
    await r("service_role: insert places", insert_places)
    await r("anon: select place", anon_reads_places, ["service_role: insert places"])
    await r("service_role: create bucket", create_bucket)
    await r("auth: sign up", sign_up)
    await r("auth: sign in with password", sign_in, ["auth: sign up"])
    await r("auth: refresh session", refresh, ["auth: sign in with password"])
    await r("auth: get user", get_user, ["auth: sign in with password"])
    await r("auth: update user metadata", update_user, ["auth: sign in with password"])
    await r("rest: preference insert", preference_insert, ["auth: sign in with password"])
    await r("rest: preference select", preference_select, ["rest: preference insert"])
    await r("rest: preference update", preference_update, ["rest: preference insert"])
    await r("rest: preference upsert", preference_upsert, ["rest: preference insert"])
    places_and_users = ["service_role: insert places", "rest: preference insert"]
    await r("rest: review insert", review_insert, places_and_users)
    await r("rest: review select (embedding place)", review_select, ["rest: review insert"])
    await r("rest: review update", review_update, ["rest: review insert"])
    await r("rest: review upsert", review_upsert, ["rest: review insert"])
    await r("rest: rpc recommend_places", recommend, places_and_users)
    await r("anon: rpc recommend_places refused or empty", anon_recommend)
    storage = ["service_role: create bucket", "auth: sign in with password"]
    await r("storage: upload", upload, storage)
    await r("storage: download", download, ["storage: upload"])
    await r("storage: signed URL", signed_url, ["storage: upload"])
    await r("storage: remove", storage_remove, ["storage: upload"])
    await r("realtime: postgres_changes on preference", realtime, ["rest: preference insert"])
    await r("realtime: broadcast between the users", broadcast, ["auth: sign in with password"])
    await r("realtime: presence sync", presence, ["realtime: broadcast between the users"])
    await r("realtime: private channel, the other user refused by policy", private_channel,
            ["auth: sign in with password"])  # fmt: skip
    await r(
        "rest: delete without a filter is refused",
        delete_without_filter_refused,
        ["rest: preference insert"],
    )
    await r("rest: review delete", lambda: delete("review"), ["rest: review insert"])
    await r("rest: preference delete", lambda: delete("preference"), ["rest: preference insert"])
    await r("auth: sign out", sign_out, ["auth: refresh session"])
    await r("auth: admin get and delete users", admin_users, ["auth: sign up"])
    await r("service_role: delete bucket", delete_bucket, ["service_role: create bucket"])
    await r("service_role: delete places", delete_places, ["service_role: insert places"])
    for client in (service, anon, first.client, second.client):
        await client.realtime.close()
    return report.finish()


def note_state(
    states: list[RealtimeSubscribeStates], state: RealtimeSubscribeStates, _: Exception | None
) -> None:
    states.append(state)


def change_of(change: dict[str, Any]) -> dict[str, Any]:
    """The new row of a postgres_changes payload."""
    data = change.get("data", {})
    return dict(data.get("record") or {})


async def refused(call: Any) -> None:
    """The call must fail (an error from the server, raised by the client)."""
    try:
        result = await call
    except Exception:
        return
    raise AssertionError(f"not refused: {result!r}")


async def refused_or_empty(call: Any) -> None:
    """A write on another user's row: an error (RLS) or no row touched."""
    try:
        result = await call
    except Exception:
        return
    expect(result.data == [], f"touched {result.data!r}")


def main() -> None:
    sys.exit(asyncio.run(contract(Environment.from_os())))


if __name__ == "__main__":
    main()
