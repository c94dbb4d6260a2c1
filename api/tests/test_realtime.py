"""Realtime with the official `realtime` client against a real uvicorn server: changes
made through the HTTP API reach the users allowed to read them, and only them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
import websockets
from realtime import AsyncRealtimeClient, RealtimeSubscribeStates
from realtime.message import ServerMessageAdapter

from planwise.config import Settings
from planwise.db import migrations
from planwise.realtime import bus
from planwise.realtime import listener as listener_module
from planwise.supabase import keys
from tests.support.accounts import Account, new_account, new_admin
from tests.support.databases import TEST_SUPABASE_JWT_SECRET, DatabaseUnderTest, connect
from tests.support.live import LiveServer
from tests.support.served import planwise_serve, serve_environment

DELIVERY_TIMEOUT = 1.0
LATENCY_SAMPLES = 30
QUIET_PERIOD = 0.4  # how long "receives nothing" is watched, after a positive control


def token_of(account: Account) -> str:
    return account.headers["Authorization"].removeprefix("Bearer ")


@dataclass
class Inbox:
    """Payloads a callback received, with their arrival times."""

    items: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, payload: dict[str, Any]) -> None:
        self.items.append((time.perf_counter(), payload))
        self.arrived.set()

    async def next(self, timeout: float = DELIVERY_TIMEOUT) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while not self.items:
            self.arrived.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"nothing arrived within {timeout} s")
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except TimeoutError:
                continue
        return self.items.pop(0)


@dataclass
class Subscription:
    client: AsyncRealtimeClient
    states: list[tuple[RealtimeSubscribeStates, Exception | None]]
    inboxes: list[Inbox]


async def subscribe(
    live: LiveServer,
    token: str,
    bindings: list[dict[str, Any]],
    *,
    topic: str = "changes",
    join_token: str | None = None,
) -> Subscription:
    """An AsyncRealtimeClient joined to `topic` with one inbox per binding."""
    client = AsyncRealtimeClient(live.realtime_url, token, max_retries=1, timeout=5)
    if join_token is not None:
        await client.set_auth(join_token)
    channel = client.channel(topic)
    inboxes = []
    for binding in bindings:
        inbox = Inbox()
        channel.on_postgres_changes(callback=inbox, **binding)
        inboxes.append(inbox)
    states: list[tuple[RealtimeSubscribeStates, Exception | None]] = []
    await channel.subscribe(lambda state, error: states.append((state, error)))
    return Subscription(client, states, inboxes)


def run(coroutine: Callable[[], Any]) -> Any:
    return asyncio.run(coroutine())


async def in_thread(call: Callable[[], httpx.Response]) -> httpx.Response:
    return await asyncio.to_thread(call)


def test_a_user_receives_their_changes_and_nobody_else_does(
    live: LiveServer, http: httpx.Client
) -> None:
    alice, bob = new_account(http, "rt_alice"), new_account(http, "rt_bob")
    latencies: list[float] = []
    from_request: list[float] = []

    async def scenario() -> None:
        a = await subscribe(live, token_of(alice), [{"event": "*", "table": "preference"}])
        b = await subscribe(live, token_of(bob), [{"event": "*", "table": "preference"}])
        assert a.states[-1][0] == RealtimeSubscribeStates.SUBSCRIBED, a.states
        assert b.states[-1][0] == RealtimeSubscribeStates.SUBSCRIBED, b.states
        try:
            for method, rating, event in (
                ("put", 0.9, "INSERT"),
                ("put", 0.4, "UPDATE"),
                ("delete", None, "DELETE"),
            ):
                body = {"json": {"rating": rating}} if rating is not None else {}
                response = await in_thread(
                    lambda m=method, kw=body: http.request(  # type: ignore[misc]
                        m.upper(), "/preferences/museum", headers=alice.headers, **kw
                    )
                )
                answered = time.perf_counter()
                assert response.status_code in (200, 201, 204), response.text
                arrived, payload = await a.inboxes[0].next()
                latencies.append(arrived - answered)
                data = payload["data"]
                # The client keeps Realtime's keys (type/record/old_record) of the payload.
                assert data["type"] == event
                assert (data["schema"], data["table"]) == ("public", "preference")
                assert data["commit_timestamp"].endswith("Z")
                assert payload["ids"] and data["errors"] is None
                if event == "DELETE":
                    assert data["old_record"]["user_id"] == alice.id
                    assert "record" not in data
                else:
                    assert data["record"]["user_id"] == alice.id
                    assert data["record"]["category"] == "museum"
                    assert data["record"]["rating"] == rating
                    assert {"name": "rating", "type": "float8"} in data["columns"]
                if event == "UPDATE":
                    assert data["old_record"] == {"id": data["record"]["id"]}
            # Latency: from the request leaving, and from its response arriving.
            for i in range(LATENCY_SAMPLES):
                sent = time.perf_counter()
                response = await in_thread(
                    lambda r=0.1 + i / 100: http.put(  # type: ignore[misc]
                        "/preferences/zoo", json={"rating": r}, headers=alice.headers
                    )
                )
                answered = time.perf_counter()
                arrived, _ = await a.inboxes[0].next()
                latencies.append(arrived - answered)
                from_request.append(arrived - sent)
            # Bob's own change reaches Bob (his subscription works) but not Alice.
            response = await in_thread(
                lambda: http.put("/preferences/park", json={"rating": 0.5}, headers=bob.headers)
            )
            assert response.status_code == 201
            _, payload = await b.inboxes[0].next()
            assert payload["data"]["record"]["user_id"] == bob.id
            await asyncio.sleep(QUIET_PERIOD)
            assert a.inboxes[0].items == [], "Alice received Bob's change"
            assert b.inboxes[0].items == [], "Bob received more than his own change"
        finally:
            await a.client.close()
            await b.client.close()

    run(scenario)
    for label, figures in (("response", latencies), ("request", from_request)):
        ms = sorted(x * 1000 for x in figures)
        print(f"\nchange received after the HTTP {label}: median {statistics.median(ms):.1f} ms, "
              f"max {ms[-1]:.1f} ms over {len(ms)}")  # fmt: skip
    assert max(latencies) < DELIVERY_TIMEOUT


# -- the protocol, frame by frame ------------------------------------------------------


class RawSocket:
    """A bare websocket client, to see the frames themselves."""

    def __init__(self, connection: Any, vsn: str) -> None:
        self.connection = connection
        self.vsn = vsn
        self.ref = 0

    async def push(
        self, topic: str, event: str, payload: dict[str, Any], join_ref: str | None = None
    ) -> str:
        self.ref += 1
        ref = str(self.ref)
        if self.vsn == "2.0.0":
            frame: Any = [join_ref, ref, topic, event, payload]
        else:
            frame = {"topic": topic, "event": event, "payload": payload, "ref": ref,
                     "join_ref": join_ref}  # fmt: skip
        await self.connection.send(json.dumps(frame))
        return ref

    async def receive(self, timeout: float = DELIVERY_TIMEOUT) -> dict[str, Any]:
        text = await asyncio.wait_for(self.connection.recv(), timeout)
        if isinstance(text, bytes):
            return decode_user_broadcast(text)
        if self.vsn == "2.0.0":
            join_ref, ref, topic, event, payload = json.loads(text)
            return {"join_ref": join_ref, "ref": ref, "topic": topic, "event": event,
                    "payload": payload}  # fmt: skip
        ServerMessageAdapter.validate_json(text)  # what the official client accepts
        message: dict[str, Any] = json.loads(text)
        return message


@asynccontextmanager
async def raw_socket(live: LiveServer, token: str, vsn: str = "1.0.0") -> AsyncIterator[RawSocket]:
    url = f"{live.realtime_url}/websocket?apikey={token}&vsn={vsn}"
    async with websockets.connect(url) as connection:
        yield RawSocket(connection, vsn)


def decode_user_broadcast(data: bytes) -> dict[str, Any]:
    """Kind 4, as supabase-js's serializer (realtime-js lib/serializer.js) decodes it."""
    assert data[0] == 4, data[:1]
    topic_size, event_size, meta_size, encoding = data[1], data[2], data[3], data[4]
    offset = 5
    topic = data[offset : offset + topic_size].decode()
    offset += topic_size
    event = data[offset : offset + event_size].decode()
    offset += event_size + meta_size
    body = data[offset:]
    payload = json.loads(body) if encoding == 1 else body
    return {"topic": topic, "event": "broadcast", "ref": None, "join_ref": None, "binary": True,
            "payload": {"type": "broadcast", "event": event, "payload": payload}}  # fmt: skip


def user_broadcast_push(
    join_ref: str, ref: str, topic: str, event: str, payload: Any, *, encoding: int = 1
) -> bytes:
    """Kind 3, as supabase-js's serializer encodes `channel.send({type: 'broadcast'})`."""
    body = json.dumps(payload).encode() if encoding == 1 else payload
    parts = [p.encode() for p in (join_ref, ref, topic, event)]
    head = bytes([3, *(len(p) for p in parts), 0, encoding])
    return head + b"".join(parts) + body


def test_heartbeat_unmatched_topic_and_bad_frames(live: LiveServer, http: httpx.Client) -> None:
    """A frame the server does not understand gets an error reply (on its channel when it
    names one) and the socket stays open."""
    token = token_of(new_account(http, "rt_proto"))

    async def scenario() -> None:
        async with raw_socket(live, token) as socket:
            ref = await socket.push("phoenix", "heartbeat", {})
            assert await socket.receive() == {
                "topic": "phoenix", "event": "phx_reply", "ref": ref, "join_ref": None,
                "payload": {"status": "ok", "response": {}},
            }  # fmt: skip
            ref = await socket.push("realtime:nowhere", "access_token", {"access_token": token})
            message = await socket.receive()
            assert message["ref"] == ref
            assert message["payload"] == {
                "status": "error",
                "response": {"reason": "unmatched topic"},
            }
            join = await socket.push("realtime:room", "phx_join", {"config": {}})
            assert (await socket.receive())["payload"]["status"] == "ok"
            ref = await socket.push("realtime:room", "nonsense", {}, join)
            message = await socket.receive()
            assert (message["topic"], message["ref"]) == ("realtime:room", ref)
            assert message["payload"]["response"]["reason"] == "unknown event 'nonsense'"
            await socket.push("realtime:room", "presence", {"event": "dance"}, join)
            reason = (await socket.receive())["payload"]["response"]["reason"]
            assert reason == "unknown presence event 'dance'"
            for garbage in ("not json", "[1, 2]", '{"topic": 5}', b"\x07binary"):
                await socket.connection.send(garbage)
                message = await socket.receive()
                assert message["topic"] == "phoenix" and message["event"] == "phx_reply"
                assert message["payload"]["status"] == "error"
                assert message["payload"]["response"]["reason"].startswith("invalid frame")
            # A payload that is not an object: answered on its channel, matched by its ref.
            await socket.connection.send(
                json.dumps(
                    {
                        "topic": "realtime:room",
                        "event": "broadcast",
                        "payload": [1],
                        "ref": "77",
                        "join_ref": join,
                    }
                )
            )
            message = await socket.receive()
            assert (message["topic"], message["ref"]) == ("realtime:room", "77")
            assert "payload must be an object" in message["payload"]["response"]["reason"]
            ref = await socket.push("phoenix", "heartbeat", {})
            assert (await socket.receive())["ref"] == ref, "the socket still works"
            await socket.push("realtime:room", "phx_leave", {}, join)
            assert (await socket.receive())["payload"] == {"status": "ok", "response": {}}
            await socket.push("realtime:room", "phx_leave", {}, join)
            assert (await socket.receive())["payload"]["response"]["reason"] == "unmatched topic"
            await socket.connection.send("x" * (256 * 1024 + 1))  # past the frame limit
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                await socket.receive()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009

    run(scenario)


def test_join_reply_echoes_bindings_with_ids_and_changes_carry_both_spellings(
    live: LiveServer, http: httpx.Client
) -> None:
    """vsn 2.0.0 (arrays, as recent supabase-js sends) and the payload keys supabase-js reads."""
    account = new_account(http, "rt_vsn2")
    bindings = [
        {"event": "INSERT", "schema": "public", "table": "preference"},
        {"event": "*", "schema": "public", "table": "review", "filter": f"user_id=eq.{account.id}"},
    ]

    async def scenario() -> None:
        async with raw_socket(live, token_of(account), vsn="2.0.0") as socket:
            join = await socket.push(
                "realtime:v2", "phx_join", {"config": {"postgres_changes": bindings}}, "j1"
            )
            message = await socket.receive()
            assert (message["ref"], message["join_ref"], message["event"]) == (
                join,
                "j1",
                "phx_reply",
            )
            echoed = message["payload"]["response"]["postgres_changes"]
            assert [{k: v for k, v in b.items() if k != "id"} for b in echoed] == bindings
            ids = [b["id"] for b in echoed]
            assert len(set(ids)) == 2 and all(isinstance(i, int) for i in ids)
            system = await socket.receive()
            assert system["event"] == "system" and system["payload"]["status"] == "ok"
            assert system["payload"]["extension"] == "postgres_changes"
            response = await in_thread(
                lambda: http.put("/preferences/zoo", json={"rating": 0.3}, headers=account.headers)
            )
            assert response.status_code == 201
            change = await socket.receive()
            assert change["event"] == "postgres_changes" and change["payload"]["ids"] == [ids[0]]
            data = change["payload"]["data"]
            assert data["eventType"] == data["type"] == "INSERT"
            assert data["new"] == data["record"] and data["old"] == {}
            assert data["record"]["category"] == "zoo" and "old_record" not in data

    run(scenario)


@pytest.mark.parametrize(
    ("binding", "reason"),
    [
        ({"event": "*", "table": "secrets"}, "table 'secrets' is not published"),
        ({"event": "*", "schema": "auth", "table": "users"}, "schema 'auth' is not published"),
        ({"event": "TRUNCATE", "table": "review"}, "invalid event"),
        ({"event": "*", "table": "review", "filter": "nope=eq.1"}, "invalid column for filter"),
        ({"event": "*", "table": "review", "filter": "rating=like.%5"}, "invalid operator"),
        ({"event": "*", "table": "review", "filter": "rating"}, "expected column=operator.value"),
        ({"event": "*", "table": "user", "filter": "hashed_password=eq.x"}, "invalid column"),
    ],
)
def test_bad_bindings_are_refused_with_a_reason(
    live: LiveServer, http: httpx.Client, binding: dict[str, Any], reason: str
) -> None:
    token = token_of(new_account(http, "rt_bad"))

    async def scenario() -> None:
        async with raw_socket(live, token) as socket:
            payload = {"config": {"postgres_changes": [binding]}}
            await socket.push("realtime:bad", "phx_join", payload)
            message = await socket.receive()
            assert message["payload"]["status"] == "error"
            assert reason in message["payload"]["response"]["reason"]

    run(scenario)


def test_a_connection_with_a_foreign_apikey_is_refused(live: LiveServer) -> None:
    forged = jwt.encode({"sub": "1", "aud": "authenticated", "exp": time.time() + 60},
                        "not-our-secret-" + "z" * 40, algorithm="HS256")  # fmt: skip

    async def scenario() -> None:
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with raw_socket(live, forged):
                pass
        assert refused.value.response.status_code == 403

    run(scenario)


# -- the official client ---------------------------------------------------------------


def test_invalid_or_expired_join_token_gets_an_error_reply(
    live: LiveServer, http: httpx.Client, api_settings: Settings
) -> None:
    account = new_account(http, "rt_token")
    secret = api_settings.jwt_secret.get_secret_value()
    expired = jwt.encode(
        {"sub": str(account.id), "aud": "authenticated", "exp": int(time.time()) - 10},
        secret, algorithm="HS256",
    )  # fmt: skip

    async def scenario() -> None:
        for bad, reason in (("garbage", "Invalid token"), (expired, "Signature has expired")):
            sub = await subscribe(
                live, token_of(account), [{"event": "*", "table": "preference"}], join_token=bad
            )
            try:
                state, error = sub.states[-1]
                assert state == RealtimeSubscribeStates.CHANNEL_ERROR
                assert reason in str(error)
            finally:
                await sub.client.close()

    run(scenario)


def test_filters_pick_the_bindings_a_change_matches(live: LiveServer, http: httpx.Client) -> None:
    alice, bob = new_account(http, "rt_filter_a"), new_account(http, "rt_filter_b")

    async def scenario() -> None:
        sub = await subscribe(
            live,
            token_of(alice),
            [
                {"event": "*", "table": "preference", "filter": f"user_id=eq.{alice.id}"},
                {"event": "INSERT", "table": "preference", "filter": "category=eq.park"},
                {"event": "*", "table": "preference", "filter": f"user_id=eq.{bob.id}"},
                {"event": "UPDATE", "table": "preference", "filter": "rating=gte.0.5"},
            ],
        )
        mine, parks, bobs, high = sub.inboxes
        try:
            await in_thread(
                lambda: http.put("/preferences/museum", json={"rating": 0.2}, headers=alice.headers)
            )
            _, payload = await mine.next()
            assert payload["data"]["record"]["category"] == "museum"
            await in_thread(
                lambda: http.put("/preferences/museum", json={"rating": 0.8}, headers=alice.headers)
            )
            _, updated = await high.next()
            assert updated["data"]["type"] == "UPDATE"
            _, also_mine = await mine.next()
            assert set(also_mine["ids"]) == set(updated["ids"])
            await in_thread(
                lambda: http.put("/preferences/park", json={"rating": 0.1}, headers=alice.headers)
            )
            _, park = await parks.next()
            await mine.next()
            assert len(park["ids"]) == 2
            await in_thread(
                lambda: http.put("/preferences/park", json={"rating": 0.9}, headers=bob.headers)
            )
            await asyncio.sleep(QUIET_PERIOD)
            assert bobs.items == [], "RLS: Bob's rows never reach Alice, whatever her filter"
            assert [inbox.items for inbox in sub.inboxes] == [[], [], [], []]
        finally:
            await sub.client.close()

    run(scenario)


def test_supabase_tokens_and_token_refresh(
    live: LiveServer, http: httpx.Client, api_settings: Settings
) -> None:
    """A Supabase Auth user subscribes with the project's JWT; a refreshed token keeps the
    channel, an invalid one closes it."""
    claims = {"sub": str(uuid.uuid4()), "aud": "authenticated", "role": "authenticated",
              "email": "rt@example.com", "exp": int(time.time()) + 600}  # fmt: skip
    supabase_token = jwt.encode(claims, TEST_SUPABASE_JWT_SECRET, algorithm="HS256")
    headers = {"Authorization": f"Bearer {supabase_token}"}

    async def scenario() -> None:
        sub = await subscribe(live, supabase_token, [{"event": "*", "table": "preference"}])
        try:
            assert sub.states[-1][0] == RealtimeSubscribeStates.SUBSCRIBED
            await in_thread(
                lambda: http.put("/preferences/museum", json={"rating": 0.6}, headers=headers)
            )
            _, payload = await sub.inboxes[0].next()
            assert payload["data"]["record"]["rating"] == 0.6
            refreshed = jwt.encode({**claims, "exp": int(time.time()) + 1200},
                                   TEST_SUPABASE_JWT_SECRET, algorithm="HS256")  # fmt: skip
            await sub.client.set_auth(refreshed)
            await in_thread(
                lambda: http.put("/preferences/museum", json={"rating": 0.7}, headers=headers)
            )
            _, payload = await sub.inboxes[0].next()
            assert payload["data"]["record"]["rating"] == 0.7
            await sub.client.set_auth("not-a-token")
            deadline = time.monotonic() + DELIVERY_TIMEOUT
            while sub.states[-1][0] != RealtimeSubscribeStates.CLOSED:
                assert time.monotonic() < deadline, sub.states
                await asyncio.sleep(0.02)
            user_id = payload["data"]["record"]["user_id"]
            assert not [c for c in live.app.state.realtime.hub.channels if c.reader == user_id]
        finally:
            await sub.client.close()

    run(scenario)


def test_places_reach_every_subscriber_and_deleted_reviews_only_their_owner(
    live: LiveServer, http: httpx.Client, api_db: DatabaseUnderTest
) -> None:
    admin = new_admin(http, api_db)
    alice, bob = new_account(http, "rt_place_a"), new_account(http, "rt_place_b")
    place_id = f"rt_place_{uuid.uuid4().hex[:8]}"
    bindings = [{"event": "*", "table": "place"}, {"event": "DELETE", "table": "review"}]

    async def scenario() -> None:
        a = await subscribe(live, token_of(alice), bindings)
        b = await subscribe(live, token_of(bob), bindings)
        try:
            body = {"name": "Realtime Museum", "lat": 48.85, "lng": 2.35, "types": ["museum"]}
            response = await in_thread(
                lambda: http.put(f"/places/{place_id}", json=body, headers=admin.headers)
            )
            assert response.status_code == 201, response.text
            for sub in (a, b):
                _, payload = await sub.inboxes[0].next()
                assert payload["data"]["record"]["id"] == place_id
            review = await in_thread(
                lambda: http.post(
                    "/reviews", json={"place_id": place_id, "rating": 4}, headers=alice.headers
                )
            )
            assert review.status_code == 201, review.text
            review_id = review.json()["id"]
            await in_thread(lambda: http.delete(f"/reviews/{review_id}", headers=alice.headers))
            _, deleted = await a.inboxes[1].next()
            assert deleted["data"]["old_record"] == {"id": review_id, "user_id": alice.id}
            await asyncio.sleep(QUIET_PERIOD)
            assert b.inboxes[1].items == [], "a deleted review went to someone else"
        finally:
            await a.client.close()
            await b.client.close()

    run(scenario)


def test_changes_made_while_the_listener_is_away_are_replayed(
    live: LiveServer, http: httpx.Client, api_db: DatabaseUnderTest
) -> None:
    """The listener's connection dies; a change committed and a broadcast sent while it
    is away reach their subscribers once it is back (from the change log and the bus),
    exactly once, with no rejoin; presence channels get a fresh presence_state."""
    account = new_account(http, "rt_reconnect")
    listener = live.app.state.realtime.listener
    service_role = keys.api_keys(live_settings_of(live)).service_role
    topic = f"gap-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        sub = await subscribe(live, token_of(account), [{"event": "*", "table": "preference"}])
        socket_context = raw_socket(live, token_of(account))
        socket = await socket_context.__aenter__()
        try:
            assert (await join(socket, topic, {"presence": {"enabled": True}}))["payload"][
                "status"
            ] == "ok"
            assert (await socket.receive())["event"] == "presence_state"
            before, replayed = listener.connections, listener.replayed
            with connect(api_db.admin_url) as conn:
                conn.execute("SELECT pg_terminate_backend(%s)", (listener.backend_pid,))
            while listener.connected.is_set():  # it notices the loss
                await asyncio.sleep(0.005)
            response = await in_thread(
                lambda: http.put("/preferences/park", json={"rating": 0.3}, headers=account.headers)
            )
            assert response.status_code == 201
            body = {"messages": [{"topic": topic, "event": "during", "payload": {"gap": True}}]}
            response = await in_thread(
                lambda: httpx.post(
                    f"{live.url}/realtime/v1/api/broadcast",
                    json=body,
                    headers={"apikey": service_role},
                )
            )
            assert response.status_code == 202
            assert listener.connections == before, "the change was made while it was away"
            written = time.perf_counter()
            arrived, payload = await sub.inboxes[0].next(timeout=5)
            assert payload["data"]["record"]["category"] == "park"
            assert listener.connections == before + 1 and listener.replayed > replayed
            await asyncio.sleep(QUIET_PERIOD)
            assert sub.inboxes[0].items == [], "delivered twice"
            states = [s for s, _ in sub.states]
            assert states == [RealtimeSubscribeStates.SUBSCRIBED], "no resync was needed"
            got = [await socket.receive(), await socket.receive()]
            assert [m["event"] for m in got] == ["broadcast", "presence_state"], got
            assert got[0]["payload"]["payload"] == {"gap": True}
            print(f"\nchange made during a listener gap delivered "
                  f"{(arrived - written) * 1000:.0f} ms after it was written")  # fmt: skip
        finally:
            await socket_context.__aexit__(None, None, None)
            await sub.client.close()

    run(scenario)


def test_a_long_gap_tells_channels_to_resync(
    live: LiveServer, http: httpx.Client, api_db: DatabaseUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the replay window nothing is replayed: channels get a system error and rejoin."""
    account = new_account(http, "rt_long_gap")
    listener = live.app.state.realtime.listener

    async def scenario() -> None:
        sub = await subscribe(live, token_of(account), [{"event": "*", "table": "preference"}])
        try:
            monkeypatch.setattr(listener_module, "REPLAY_SECONDS", -1.0)
            with connect(api_db.admin_url) as conn:
                conn.execute("SELECT pg_terminate_backend(%s)", (listener.backend_pid,))
            deadline = time.monotonic() + 5
            while [s for s, _ in sub.states].count(RealtimeSubscribeStates.SUBSCRIBED) < 2:
                assert time.monotonic() < deadline, sub.states
                await asyncio.sleep(0.02)
            assert RealtimeSubscribeStates.CHANNEL_ERROR in [s for s, _ in sub.states]
            monkeypatch.undo()
            await in_thread(
                lambda: http.put("/preferences/zoo", json={"rating": 0.3}, headers=account.headers)
            )
            _, payload = await sub.inboxes[0].next()
            assert payload["data"]["record"]["category"] == "zoo"
        finally:
            await sub.client.close()

    run(scenario)


def test_leaving_and_disconnecting_drop_the_subscriptions(
    live: LiveServer, http: httpx.Client
) -> None:
    account = new_account(http, "rt_leave")
    hub = live.app.state.realtime.hub

    def mine() -> int:
        return sum(1 for c in hub.channels if c.reader == account.id)

    async def scenario() -> None:
        sub = await subscribe(live, token_of(account), [{"event": "*", "table": "review"}])
        assert mine() == 1
        channel = sub.client.get_channels()[0]
        await sub.client.remove_channel(channel)
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while mine():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        sub = await subscribe(live, token_of(account), [{"event": "*", "table": "review"}])
        assert mine() == 1
        await sub.client.close()
        while mine():
            assert time.monotonic() < deadline + DELIVERY_TIMEOUT
            await asyncio.sleep(0.02)

    run(scenario)


def test_a_channel_ends_when_its_token_expires(
    live: LiveServer, http: httpx.Client, api_settings: Settings
) -> None:
    account = new_account(http, "rt_expiry")
    short = jwt.encode(
        {"sub": str(account.id), "aud": "authenticated", "exp": int(time.time()) + 2},
        api_settings.jwt_secret.get_secret_value(),
        algorithm="HS256",
    )

    async def scenario() -> None:
        sub = await subscribe(live, token_of(account), [{"event": "*", "table": "preference"}],
                              join_token=short)  # fmt: skip
        try:
            assert sub.states[-1][0] == RealtimeSubscribeStates.SUBSCRIBED
            expires = jwt.decode(short, options={"verify_signature": False})["exp"]
            await asyncio.sleep(max(0.0, expires - time.time()) + 0.1)
            await in_thread(
                lambda: http.put("/preferences/zoo", json={"rating": 0.2}, headers=account.headers)
            )
            deadline = time.monotonic() + DELIVERY_TIMEOUT
            while sub.states[-1][0] != RealtimeSubscribeStates.CLOSED:
                assert time.monotonic() < deadline, sub.states
                await asyncio.sleep(0.02)
            assert any("Token has expired" in str(error) for _, error in sub.states)
            assert sub.inboxes[0].items == []
        finally:
            await sub.client.close()

    run(scenario)


def test_user_rows_never_carry_password_hashes(live: LiveServer, http: httpx.Client) -> None:
    account = new_account(http, "rt_user")

    async def scenario() -> None:
        async with raw_socket(live, token_of(account)) as socket:
            bindings = [{"event": "UPDATE", "schema": "public", "table": "user"}]
            await socket.push("realtime:me", "phx_join", {"config": {"postgres_changes": bindings}})
            assert (await socket.receive())["payload"]["status"] == "ok"
            await socket.receive()  # system: subscribed
            response = await in_thread(
                lambda: http.patch(
                    "/users/me", json={"full_name": "Renamed"}, headers=account.headers
                )
            )
            assert response.status_code == 200, response.text
            data = (await socket.receive())["payload"]["data"]
            assert data["record"]["full_name"] == "Renamed"
            assert "hashed_password" not in data["record"]
            assert "hashed_password" not in {column["name"] for column in data["columns"]}

    run(scenario)


def test_api_keys_subscribe_as_their_roles(
    live: LiveServer, http: httpx.Client, api_db: DatabaseUnderTest, live_settings: Settings
) -> None:
    """The anon key receives public rows only (places); service_role receives every row."""
    project_keys = keys.api_keys(live_settings)
    admin, alice = new_admin(http, api_db), new_account(http, "rt_keys")
    place_id = f"rt_keys_{uuid.uuid4().hex[:8]}"
    bindings = [{"event": "*", "table": "place"}, {"event": "*", "table": "preference"}]

    async def scenario() -> None:
        anon = await subscribe(live, project_keys.anon, bindings)
        service = await subscribe(live, project_keys.service_role, bindings)
        try:
            for sub in (anon, service):
                assert sub.states[-1][0] == RealtimeSubscribeStates.SUBSCRIBED, sub.states
            body = {"name": "Key Museum", "lat": 59.91, "lng": 10.75, "types": ["museum"]}
            response = await in_thread(
                lambda: http.put(f"/places/{place_id}", json=body, headers=admin.headers)
            )
            assert response.status_code == 201, response.text
            for sub in (anon, service):
                _, payload = await sub.inboxes[0].next()
                assert payload["data"]["record"]["id"] == place_id
            for method in ("PUT", "DELETE"):
                kw: dict[str, Any] = {"json": {"rating": 0.8}} if method == "PUT" else {}
                response = await in_thread(
                    lambda m=method, k=kw: http.request(  # type: ignore[misc]
                        m, "/preferences/museum", headers=alice.headers, **k
                    )
                )
                assert response.status_code in (201, 204), response.text
                _, payload = await service.inboxes[1].next()
                assert payload["data"]["type"] == ("INSERT" if method == "PUT" else "DELETE")
            await asyncio.sleep(QUIET_PERIOD)
            assert anon.inboxes[1].items == [], "the anon key received a user's preference"
        finally:
            await anon.client.close()
            await service.client.close()

    run(scenario)


# -- broadcast, presence, private channels ----------------------------------------------


async def join(
    socket: RawSocket, topic: str, config: dict[str, Any], join_ref: str = "j1"
) -> dict[str, Any]:
    await socket.push(f"realtime:{topic}", "phx_join", {"config": config}, join_ref)
    message = await socket.receive()
    assert message["event"] == "phx_reply", message
    return message


async def nothing_arrives(socket: RawSocket) -> None:
    with pytest.raises(TimeoutError):
        message = await socket.receive(timeout=QUIET_PERIOD)
        raise AssertionError(f"unexpected {message}")


def test_broadcast_between_clients_with_self_and_ack(live: LiveServer, http: httpx.Client) -> None:
    """The official client sends, another receives; `self` echoes to the sender, `ack`
    replies once the message is stored."""
    alice, bob = new_account(http, "rt_bc_a"), new_account(http, "rt_bc_b")
    topic = f"room-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        a = AsyncRealtimeClient(live.realtime_url, token_of(alice), max_retries=1, timeout=5)
        b = AsyncRealtimeClient(live.realtime_url, token_of(bob), max_retries=1, timeout=5)
        try:
            heard_a, heard_b = Inbox(), Inbox()
            channel_a = a.channel(topic)
            channel_a.on_broadcast("wave", heard_a)
            channel_b = b.channel(topic)
            channel_b.on_broadcast("wave", heard_b)
            for channel in (channel_a, channel_b):
                states: list[Any] = []
                await channel.subscribe(lambda state, _e, s=states: s.append(state))  # type: ignore[misc]
                assert states == [RealtimeSubscribeStates.SUBSCRIBED]
            await channel_a.send_broadcast("wave", {"from": "alice", "n": 1})
            _, payload = await heard_b.next()
            assert payload["event"] == "wave"
            assert payload["payload"] == {"from": "alice", "n": 1}
            await asyncio.sleep(QUIET_PERIOD)
            assert heard_a.items == [], "without self the sender does not hear itself"
        finally:
            await a.close()
            await b.close()
        async with raw_socket(live, token_of(alice)) as socket:
            config = {"broadcast": {"self": True, "ack": True}}
            assert (await join(socket, topic, config))["payload"]["status"] == "ok"
            ref = await socket.push(
                f"realtime:{topic}", "broadcast",
                {"type": "broadcast", "event": "echo", "payload": {"x": 1}}, "j1",
            )  # fmt: skip
            first, second = await socket.receive(), await socket.receive()
            by_event = {m["event"]: m for m in (first, second)}
            assert by_event["phx_reply"]["ref"] == ref
            assert by_event["phx_reply"]["payload"]["status"] == "ok"
            assert by_event["broadcast"]["payload"] == {
                "type": "broadcast", "event": "echo", "payload": {"x": 1}
            }  # fmt: skip
            await socket.push(f"realtime:{topic}", "broadcast", {"payload": {}}, "j1")
            reason = (await socket.receive())["payload"]["response"]["reason"]
            assert reason == "broadcast needs an event name"

    run(scenario)


def test_binary_frames_of_protocol_2(live: LiveServer, http: httpx.Client) -> None:
    """supabase-js sends broadcasts as binary frames (kind 3); 2.0.0 subscribers receive
    them as binary frames (kind 4), 1.0.0 subscribers as JSON; a bytes payload reaches
    only 2.0.0 subscribers (JSON cannot carry it, as on Supabase)."""
    token = token_of(new_account(http, "rt_binary"))
    topic = f"bin-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        async with (
            raw_socket(live, token, vsn="2.0.0") as sender,
            raw_socket(live, token, vsn="2.0.0") as v2,
            raw_socket(live, token, vsn="1.0.0") as v1,
        ):
            for socket in (sender, v2, v1):
                assert (await join(socket, topic, {}))["payload"]["status"] == "ok"
            full = f"realtime:{topic}"
            await sender.connection.send(user_broadcast_push("j1", "5", full, "cursor", {"x": 3}))
            got = await v2.receive()
            assert got["binary"] and got["topic"] == full
            assert got["payload"] == {"type": "broadcast", "event": "cursor", "payload": {"x": 3}}
            got = await v1.receive()
            assert got["event"] == "broadcast" and got["ref"] is None
            assert got["payload"] == {"type": "broadcast", "event": "cursor", "payload": {"x": 3}}
            raw = bytes(range(256))
            await sender.connection.send(
                user_broadcast_push("j1", "6", full, "blob", raw, encoding=0)
            )
            got = await v2.receive()
            assert got["payload"]["event"] == "blob" and got["payload"]["payload"] == raw
            await nothing_arrives(v1)
            # A binary push of another kind: an error reply on its channel, socket open.
            parts = [p.encode() for p in ("j1", "9", full, "presence")]
            await sender.connection.send(bytes([0, *map(len, parts)]) + b"".join(parts) + b"x")
            message = await sender.receive()
            assert (message["topic"], message["ref"]) == (full, "9")
            assert "only accepted for broadcasts" in message["payload"]["response"]["reason"]
            bad_json = user_broadcast_push("j1", "10", full, "e", b"{nope", encoding=0)
            await sender.connection.send(bad_json[:6] + b"\x01" + bad_json[7:])
            message = await sender.receive()
            assert (message["ref"], message["payload"]["status"]) == ("10", "error")

    run(scenario)


def test_presence_state_and_diffs(live: LiveServer, http: httpx.Client) -> None:
    """Track and untrack with the official client: presence_state on join, presence_diff
    joins and leaves, and a leave when a tracking client goes away."""
    alice, bob = new_account(http, "rt_pr_a"), new_account(http, "rt_pr_b")
    topic = f"lobby-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        a = AsyncRealtimeClient(live.realtime_url, token_of(alice), max_retries=1, timeout=5)
        b = AsyncRealtimeClient(live.realtime_url, token_of(bob), max_retries=1, timeout=5)
        try:
            channel_a = a.channel(topic, {"config": {"presence": {"key": "alice"}}})
            synced, joins, leaves = Inbox(), Inbox(), Inbox()
            channel_a.on_presence_sync(lambda: synced({}))
            channel_a.on_presence_join(lambda key, _cur, new: joins({"key": key, "new": new}))
            channel_a.on_presence_leave(lambda key, _cur, left: leaves({"key": key}))
            await channel_a.subscribe()
            await synced.next()  # the (empty) presence_state
            await channel_a.track({"status": "online"})
            _, joined = await joins.next()
            assert joined["key"] == "alice" and joined["new"][0]["status"] == "online"
            channel_b = b.channel(topic, {"config": {"presence": {"key": "bob"}}})
            bob_synced = Inbox()
            channel_b.on_presence_sync(lambda: bob_synced({}))
            await channel_b.subscribe()
            await bob_synced.next()
            assert set(channel_b.presence_state()) == {"alice"}, "presence_state on join"
            await channel_b.track({"status": "away"})
            _, joined = await joins.next()
            assert joined["key"] == "bob"
            deadline = time.monotonic() + DELIVERY_TIMEOUT
            while set(channel_a.presence_state()) != {"alice", "bob"}:
                assert time.monotonic() < deadline, channel_a.presence_state()
                await asyncio.sleep(0.02)
            await channel_b.untrack()
            _, left = await leaves.next()
            assert left["key"] == "bob"
            await channel_b.track({"status": "back"})
            await joins.next()
            await b.close()  # going away untracks
            _, left = await leaves.next()
            assert left["key"] == "bob"
            assert set(channel_a.presence_state()) == {"alice"}
        finally:
            await a.close()
            await b.close()

    run(scenario)


OWN_ROOM_POLICIES = """
CREATE POLICY rt_test_read_own_room ON realtime.messages FOR SELECT TO authenticated
    USING (realtime.topic() = 'rt-room-' || (SELECT auth.uid())::text
           OR realtime.topic() = 'rt-planwise-' || (SELECT planwise_acting_user_id()));
CREATE POLICY rt_test_write_own_room ON realtime.messages FOR INSERT TO authenticated
    WITH CHECK (realtime.topic() = 'rt-room-' || (SELECT auth.uid())::text
                AND extension = 'broadcast');
"""


def test_private_channels_follow_rls_policies_on_realtime_messages(
    live: LiveServer, http: httpx.Client, api_db: DatabaseUnderTest
) -> None:
    """Supabase's own policy idiom: a user reads and writes only their room; another
    user's room is refused at join, presence writes are refused by the policy, and the
    service_role key may join any private channel."""
    with connect(api_db.admin_url) as conn:
        conn.execute("DROP POLICY IF EXISTS rt_test_read_own_room ON realtime.messages")
        conn.execute("DROP POLICY IF EXISTS rt_test_write_own_room ON realtime.messages")
        conn.execute(OWN_ROOM_POLICIES)
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    tokens = {
        who: jwt.encode(
            {
                "sub": who,
                "aud": "authenticated",
                "role": "authenticated",
                "exp": int(time.time()) + 600,
            },
            TEST_SUPABASE_JWT_SECRET,
            algorithm="HS256",
        )
        for who in (alice, bob)
    }
    project_keys = keys.api_keys(live_settings_of(live))
    private = {"private": True, "broadcast": {"self": True, "ack": True}}

    async def scenario() -> None:
        async with (
            raw_socket(live, tokens[alice]) as a,
            raw_socket(live, tokens[bob]) as b,
            raw_socket(live, project_keys.service_role) as service,
        ):
            room = f"rt-room-{alice}"
            assert (await join(a, room, private))["payload"]["status"] == "ok"
            refused = await join(b, room, private)
            assert refused["payload"]["status"] == "error"
            assert refused["payload"]["response"]["reason"] == (
                f"Unauthorized: You do not have permissions to read from this Channel topic: {room}"
            )
            # The public channel of the same name is another topic: open to Bob, and
            # nothing sent there reaches the private one.
            assert (await join(b, room, {}))["payload"]["status"] == "ok"
            assert (await join(service, room, private))["payload"]["status"] == "ok"
            await b.push(f"realtime:{room}", "broadcast",
                         {"type": "broadcast", "event": "x", "payload": {}}, "j1")  # fmt: skip
            hi = {"type": "broadcast", "event": "hi", "payload": {"n": 1}}
            ref = await a.push(f"realtime:{room}", "broadcast", hi, "j1")
            got = {m["event"]: m for m in (await a.receive(), await a.receive())}
            assert got["phx_reply"]["ref"] == ref and got["broadcast"]["payload"]["event"] == "hi"
            assert (await service.receive())["payload"]["payload"] == {"n": 1}
            await nothing_arrives(b)
            await a.push(f"realtime:{room}", "presence", {"event": "track", "payload": {}}, "j1")
            reason = (await a.receive())["payload"]["response"]["reason"]
            assert reason == "Unauthorized: presence is not allowed"
        # A Planwise token: policies see the acting user as app.user_id.
        account = new_account(http, "rt_private")
        async with raw_socket(live, token_of(account)) as mine:
            own = await join(mine, f"rt-planwise-{account.id}", private)
            assert own["payload"]["status"] == "ok"
            other = await join(mine, f"rt-planwise-{account.id + 1}", private, "j2")
            assert other["payload"]["status"] == "error"
        async with raw_socket(live, tokens[alice]) as a:
            assert (await join(a, room, private))["payload"]["status"] == "ok"
            # A new token is checked against the policies again: Bob's ends the channel.
            await a.push(f"realtime:{room}", "access_token", {"access_token": tokens[bob]}, "j1")
            events = [(await a.receive())["event"] for _ in range(3)]
            assert events == ["phx_reply", "system", "phx_close"], events

    run(scenario)


def live_settings_of(live: LiveServer) -> Settings:
    settings: Settings = live.app.state.realtime.settings
    return settings


def test_rest_broadcast_with_the_service_role_key(live: LiveServer, http: httpx.Client) -> None:
    """`POST /realtime/v1/api/broadcast` (what servers call) and the per-topic endpoint of
    `http_send`; private messages only where policies allow, bad bodies 4xx."""
    token = token_of(new_account(http, "rt_rest"))
    project_keys = keys.api_keys(live_settings_of(live))
    topic = f"news-{uuid.uuid4().hex[:8]}"
    api = f"{live.url}/realtime/v1/api/broadcast"
    service = {"apikey": project_keys.service_role,
               "Authorization": f"Bearer {project_keys.service_role}"}  # fmt: skip

    async def scenario() -> None:
        async with raw_socket(live, token) as socket:
            assert (await join(socket, topic, {}))["payload"]["status"] == "ok"
            body = {"messages": [{"topic": topic, "event": "flash", "payload": {"n": 1}}]}
            response = await in_thread(lambda: httpx.post(api, json=body, headers=service))
            assert response.status_code == 202 and response.content == b""
            got = await socket.receive()
            assert got["payload"] == {"type": "broadcast", "event": "flash", "payload": {"n": 1}}
            private = {"messages": [{**body["messages"][0], "private": True}]}
            response = await in_thread(lambda: httpx.post(api, json=private, headers=service))
            assert response.status_code == 202
            await nothing_arrives(socket)  # a private message never reaches a public channel
            response = await in_thread(
                lambda: httpx.post(f"{api}/{topic}/events/ping", json={"m": 2}, headers=service)
            )
            assert response.status_code == 202
            assert (await socket.receive())["payload"]["payload"] == {"m": 2}
        for headers, payload, code in (
            ({}, body, 401),
            ({"apikey": "nope"}, body, 401),
            (service, {"messages": []}, 422),
            (service, {"messages": [{"topic": topic}]}, 422),
            (
                service,
                {"messages": [{"topic": topic, "event": "e", "payload": {"x": "y" * 2**20}}]},
                413,
            ),
        ):
            response = await in_thread(
                lambda h=headers, p=payload: httpx.post(api, json=p, headers=h)  # type: ignore[misc]
            )
            assert response.status_code == code, response.text
            assert "message" in response.json()
        response = await in_thread(
            lambda: httpx.post(
                api, content=b"{", headers={**service, "content-type": "application/json"}
            )
        )
        assert response.status_code == 422

    run(scenario)


def test_a_forged_notify_delivers_nothing(
    live: LiveServer, http: httpx.Client, api_db: DatabaseUnderTest
) -> None:
    """Any database login may NOTIFY; what it names must be a change log (or bus) row
    not yet delivered, which only the triggers (or the API) can write."""
    account = new_account(http, "rt_forged")
    listener = live.app.state.realtime.listener
    topic = f"forged-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        sub = await subscribe(live, token_of(account), [{"event": "*", "table": "preference"}])
        try:
            async with raw_socket(live, token_of(account)) as socket:
                assert (await join(socket, topic, {}))["payload"]["status"] == "ok"
                response = await in_thread(
                    lambda: http.put(
                        "/preferences/museum", json={"rating": 0.5}, headers=account.headers
                    )
                )
                assert response.status_code == 201
                _, real = await sub.inboxes[0].next()  # the positive control
                row_id = real["data"]["record"]["id"]
                with connect(api_db.app_url) as conn:  # app_service: the API's own login
                    last = conn.execute("SELECT max(id) FROM planwise_realtime.change_log")
                    (logged,) = last.fetchone()  # type: ignore[misc]
                    with pytest.raises(Exception, match="permission denied"):
                        conn.execute(
                            "INSERT INTO planwise_realtime.change_log (table_name, op, keys) "
                            "VALUES ('preference', 'DELETE', '{1}')"
                        )
                ignored = listener.ignored
                forged = [
                    ("planwise_changes", json.dumps({"table": "preference", "type": "DELETE",
                                                     "at": "x", "rows": [[row_id, account.id]]})),
                    ("planwise_changes", str(logged)),  # already delivered
                    ("planwise_changes", str(logged + 1000)),  # no such row
                    ("planwise_changes", "1"),  # older than the process, or pruned
                    ("planwise_bus", "999999999"),
                ]  # fmt: skip
                with connect(api_db.admin_url) as conn:
                    for channel, payload in forged:
                        conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))
                deadline = time.monotonic() + DELIVERY_TIMEOUT
                while listener.ignored < ignored + len(forged):
                    assert time.monotonic() < deadline, (listener.ignored, ignored)
                    await asyncio.sleep(0.02)
                await asyncio.sleep(QUIET_PERIOD)
                assert sub.inboxes[0].items == [], "a forged NOTIFY was delivered"
                await nothing_arrives(socket)
        finally:
            await sub.client.close()

    run(scenario)


def test_deactivating_a_user_closes_their_channels(
    live: LiveServer, http: httpx.Client, api_db: DatabaseUnderTest
) -> None:
    alice, bob = new_account(http, "rt_deact_a"), new_account(http, "rt_deact_b")

    async def scenario() -> None:
        a = await subscribe(live, token_of(alice), [{"event": "*", "table": "preference"}])
        b = await subscribe(live, token_of(bob), [{"event": "*", "table": "preference"}])
        try:
            with connect(api_db.admin_url) as conn:
                conn.execute('UPDATE "user" SET is_active = false WHERE id = %s', (alice.id,))
            deadline = time.monotonic() + DELIVERY_TIMEOUT
            while a.states[-1][0] != RealtimeSubscribeStates.CLOSED:
                assert time.monotonic() < deadline, a.states
                await asyncio.sleep(0.02)
            assert any("user deactivated" in str(error) for _, error in a.states)
            hub = live.app.state.realtime.hub
            assert not [c for c in hub.channels if c.reader == alice.id]
            assert b.states[-1][0] == RealtimeSubscribeStates.SUBSCRIBED, "Bob keeps his"
            refused = await subscribe(live, token_of(alice), [{"event": "*", "table": "review"}])
            assert refused.states[-1][0] == RealtimeSubscribeStates.CHANNEL_ERROR
            await refused.client.close()
        finally:
            with connect(api_db.admin_url) as conn:
                conn.execute('UPDATE "user" SET is_active = true WHERE id = %s', (alice.id,))
            await a.client.close()
            await b.client.close()

    run(scenario)


# -- several API processes ---------------------------------------------------------------

SUBSCRIBERS = 100
BROADCASTS = 40


@pytest.fixture(scope="module")
def two_workers(
    create_migrated_database: Callable[[str], DatabaseUnderTest],
    api_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, DatabaseUnderTest]]:
    """`planwise serve --workers 2` over a database of its own."""
    database = create_migrated_database("planwise_rt_workers")
    home = tmp_path_factory.mktemp("rt_workers")
    env = serve_environment(database, home, JWT_SECRET=api_settings.jwt_secret.get_secret_value())
    with planwise_serve(env, home / "serve.log", "--workers", "2") as (base, _pid):
        yield base, database


def test_two_workers_behave_as_one(
    two_workers: tuple[str, DatabaseUnderTest], api_settings: Settings
) -> None:
    """100 subscribers spread over two uvicorn workers all receive every broadcast and
    the presence of a client of either worker; broadcast latency is measured."""
    base, database = two_workers
    anon = keys.api_keys(api_settings).anon
    url = base.replace("http://", "ws://") + f"/realtime/v1/websocket?apikey={anon}&vsn=1.0.0"
    topic = f"realtime:crowd-{uuid.uuid4().hex[:8]}"
    latencies: list[float] = []
    first: list[float] = []
    counted: list[int] = []

    def listeners() -> int:
        with connect(database.admin_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'planwise-realtime'"
            ).fetchone()
            return int(row[0]) if row else 0

    async def scenario() -> None:
        async with contextlib.AsyncExitStack() as stack:
            sockets: list[RawSocket] = []
            keys_of: dict[int, str] = {}

            async def subscriber(number: int) -> RawSocket:
                socket = RawSocket(
                    await stack.enter_async_context(websockets.connect(url)), "1.0.0"
                )
                config = {"presence": {"key": f"s{number}", "enabled": True}}
                keys_of[id(socket)] = f"s{number}"
                await socket.push(topic, "phx_join", {"config": config}, "j1")
                assert (await socket.receive(10))["payload"]["status"] == "ok"
                assert (await socket.receive(10))["event"] == "presence_state"
                return socket

            # Ten at a time, until both workers have subscribers (each worker's listener
            # starts with its first subscriber); which worker accepts is the kernel's choice.
            flipped: list[RawSocket] = []
            while len(sockets) < SUBSCRIBERS or not flipped:
                assert len(sockets) < 500, "every subscriber landed on one worker"
                batch = await asyncio.gather(*(subscriber(len(sockets) + n) for n in range(10)))
                sockets.extend(batch)
                if not flipped and listeners() == 2:
                    flipped = list(batch)  # holds the second worker's first subscriber
            # Exactly SUBSCRIBERS, the batch that reached the second worker among them.
            kept = [s for s in sockets if s not in flipped][: SUBSCRIBERS - len(flipped)]
            kept += flipped
            for extra in [s for s in sockets if s not in kept]:
                await extra.connection.close()
            sockets = kept
            await asyncio.sleep(0.5)  # the servers drop the closed ones
            counted.append(len(sockets) - 1)
            sender, *subscribers = sockets
            await sender.push(topic, "presence", {"event": "track", "payload": {"on": 1}}, "j1")
            early = []  # the sender's own diff may overtake the reply to its track
            while (reply := await sender.receive(5))["event"] != "phx_reply":
                early.append(reply)
            assert reply["payload"]["status"] == "ok"
            for socket in sockets:  # everyone, on either worker, sees the sender join
                diff = early.pop(0) if socket is sender and early else await socket.receive(5)
                assert diff["event"] == "presence_diff", diff
                assert list(diff["payload"]["joins"]) == [keys_of[id(sender)]]
            arrivals: list[list[tuple[int, float]]] = [[] for _ in subscribers]

            async def read(socket: RawSocket, into: list[tuple[int, float]]) -> None:
                while len(into) < BROADCASTS:
                    message = await socket.receive(10)
                    into.append((message["payload"]["payload"]["n"], time.perf_counter()))

            readers = [
                asyncio.create_task(read(s, a)) for s, a in zip(subscribers, arrivals, strict=True)
            ]
            sent: list[float] = []
            for n in range(BROADCASTS):
                sent.append(time.perf_counter())
                body = {"type": "broadcast", "event": "tick", "payload": {"n": n}}
                await sender.push(topic, "broadcast", body, "j1")
                while any(len(a) <= n for a in arrivals):
                    assert not any(r.done() and r.exception() for r in readers)
                    await asyncio.sleep(0.001)
            await asyncio.gather(*readers)
            for got in arrivals:
                assert [n for n, _ in got] == list(range(BROADCASTS)), "lost or reordered"
                latencies.extend(at - sent[n] for n, at in got)
            for n in range(BROADCASTS):  # the first subscriber served: the server's path
                first.append(min(at for got in arrivals for m, at in got if m == n) - sent[n])
            late = RawSocket(await stack.enter_async_context(websockets.connect(url)), "1.0.0")
            await late.push(topic, "phx_join", {"config": {"presence": {"enabled": True}}}, "j1")
            await late.receive(5)
            state = await late.receive(5)
            assert state["event"] == "presence_state"
            assert list(state["payload"]) == [keys_of[id(sender)]]

    run(scenario)
    ms = sorted(x * 1000 for x in latencies)
    p50, p99 = ms[len(ms) // 2], ms[int(len(ms) * 0.99)]
    print(f"\nbroadcast to {counted[0]} subscribers over 2 workers: p50 {p50:.1f} ms, "
          f"p99 {p99:.1f} ms, max {ms[-1]:.1f} ms over {len(ms)} deliveries; first "
          f"subscriber served: median {statistics.median(first) * 1000:.1f} ms")  # fmt: skip
    assert len(latencies) == BROADCASTS * counted[0]


def test_presences_of_a_dead_process_expire_as_leaves(
    live: LiveServer, http: httpx.Client, api_db: DatabaseUnderTest
) -> None:
    """A process that died without untracking: its presences are not refreshed, expire,
    and the keep-alive of any live process announces them as leaves."""
    token = token_of(new_account(http, "rt_expire"))
    topic = f"ghosts-{uuid.uuid4().hex[:8]}"
    engine = live.app.state.realtime.engine

    async def scenario() -> None:
        async with raw_socket(live, token) as socket:
            assert (await join(socket, topic, {"presence": {"enabled": True}}))["payload"][
                "status"
            ] == "ok"
            await socket.receive()  # presence_state
            ghost = bus.bus_topic(topic, private=False)
            await in_thread(
                lambda: bus.track(engine, ghost, "ghost", "ref-ghost", None, "dead", {})  # type: ignore[func-returns-value]
            )
            assert list((await socket.receive())["payload"]["joins"]) == ["ghost"]
            with connect(api_db.admin_url) as conn:
                conn.execute(
                    "UPDATE planwise_realtime.presence SET expires_at = now() - interval '1 s' "
                    "WHERE worker = 'dead'"
                )
            await in_thread(lambda: bus.keep_alive(engine, "alive"))  # type: ignore[func-returns-value]
            diff = await socket.receive()
            assert diff["event"] == "presence_diff" and list(diff["payload"]["leaves"]) == ["ghost"]

    run(scenario)


def test_a_supabase_realtime_schema_is_left_alone(
    create_database: Callable[[str], DatabaseUnderTest],
) -> None:
    """On a Supabase project `realtime` is Supabase's: the migration creates nothing there
    and its downgrade drops nothing there; the change log works the same."""
    database = create_database("planwise_rt_supabase")
    with connect(database.admin_url) as conn:
        conn.execute("CREATE SCHEMA realtime")
        conn.execute("CREATE TABLE realtime.messages (topic text, extension text)")
    migrations.upgrade(database.admin_url)
    with connect(database.admin_url) as conn:
        mark = conn.execute("SELECT obj_description('realtime'::regnamespace)").fetchone()
        assert mark == (None,)
        policies = conn.execute(
            "SELECT count(*) FROM pg_policies WHERE schemaname = 'realtime'"
        ).fetchone()
        assert policies == (0,)
        assert conn.execute("SELECT to_regprocedure('realtime.topic()')").fetchone() == (None,)
        conn.execute("INSERT INTO place (id, name, lat, lng) VALUES ('rt-sb', 'x', 1, 2)")
        logged = conn.execute(
            "SELECT table_name, op, keys, owners FROM planwise_realtime.change_log"
        ).fetchall()
        assert logged == [("place", "INSERT", ["rt-sb"], None)]
    migrations.downgrade(database.admin_url, "a7b8c9d0e1f2")
    with connect(database.admin_url) as conn:
        assert conn.execute("SELECT to_regclass('realtime.messages')").fetchone() == (
            "realtime.messages",
        )
        assert conn.execute("SELECT to_regnamespace('planwise_realtime')").fetchone() == (None,)
