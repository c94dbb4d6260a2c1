"""`/rest/v1`, PostgREST's interface: the query grammar, writes, RPC, roles and RLS, errors,
ranges and counts; in-process and through the official `postgrest` client over HTTP."""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from fastapi.testclient import TestClient
from postgrest import APIError, SyncPostgrestClient
from starlette.datastructures import Headers

from planwise.config import Settings
from planwise.db import migrations
from planwise.rest import routes
from planwise.rest.catalog import schema_caches
from planwise.rest.identity import VerifiedTokens
from tests.support.databases import TEST_SUPABASE_JWT_SECRET, DatabaseUnderTest, connect
from tests.support.live import serve

FAR_FUTURE = 4_102_444_800  # 2100-01-01


def sign(claims: dict[str, Any], secret: str = TEST_SUPABASE_JWT_SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


ANON_KEY = sign({"role": "anon", "iss": "supabase", "exp": FAR_FUTURE})
SERVICE_KEY = sign({"role": "service_role", "iss": "supabase", "exp": FAR_FUTURE})


@dataclass(frozen=True)
class JwtUser:
    id: int
    auth_id: uuid.UUID
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"apikey": ANON_KEY, "Authorization": f"Bearer {self.token}"}


ANON = {"apikey": ANON_KEY}
SERVICE = {"apikey": SERVICE_KEY}


@dataclass(frozen=True)
class World:
    """Places of one test run, told apart by a unique category and id prefix."""

    tag: str
    category: str
    place_ids: list[str]
    alice: JwtUser
    bob: JwtUser


def new_jwt_user(db: DatabaseUnderTest, name: str) -> JwtUser:
    auth_id = uuid.uuid4()
    with connect(db.admin_url) as conn:
        row = conn.execute(
            'INSERT INTO "user" (username, hashed_password, full_name, role, auth_user_id) '
            "VALUES (%s, '!supabase-auth', %s, 'user', %s) RETURNING id",
            (f"{name}_{auth_id.hex[:10]}", name.title(), auth_id),
        ).fetchone()
    assert row is not None
    claims = {"sub": str(auth_id), "role": "authenticated", "aud": "authenticated",
              "iss": "supabase", "exp": FAR_FUTURE, "email": f"{name}@example.com"}  # fmt: skip
    return JwtUser(int(row[0]), auth_id, sign(claims))


@pytest.fixture(scope="module")
def world(api_db: DatabaseUnderTest) -> Iterator[World]:
    tag = uuid.uuid4().hex[:8]
    category = f"restcat_{tag}"
    ids = [f"rest_{tag}_{n}" for n in range(6)]
    with connect(api_db.admin_url) as conn:
        for n, place_id in enumerate(ids):
            conn.execute(
                "INSERT INTO place (id, name, lat, lng, category, rating, user_ratings_total, "
                "description) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (place_id, f"Place {n} {tag}", 48.85 + n / 1000, 2.35 + n / 1000, category,
                 None if n == 5 else 3.0 + n / 2, 10 * n, "café" if n % 2 else None),
            )  # fmt: skip
    alice = new_jwt_user(api_db, "alice")
    bob = new_jwt_user(api_db, "bob")
    yield World(tag, category, ids, alice, bob)
    with connect(api_db.admin_url) as conn:
        conn.execute('DELETE FROM "user" WHERE id IN (%s, %s)', (alice.id, bob.id))
        conn.execute("DELETE FROM place WHERE category = %s", (category,))


@pytest.fixture(scope="module")
def rest(api_app: Any) -> Iterator[TestClient]:
    with TestClient(api_app, base_url="http://testserver/rest/v1") as test_client:
        yield test_client


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "details", "hint"}, body
    assert body["code"] == code, body
    return body


# -- reads: select, filters, order, ranges ----------------------------------------------


def test_select_columns_renames_and_casts(rest: TestClient, world: World) -> None:
    response = rest.get(
        "/place",
        params={"select": "id,title:name,rating::text,stars:user_ratings_total::int",
                "id": f"eq.{world.place_ids[2]}"},
        headers=ANON,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json() == [
        {"id": world.place_ids[2], "title": f"Place 2 {world.tag}", "rating": "4",
         "stars": 20}
    ]  # fmt: skip
    star = rest.get("/place", params={"id": f"eq.{world.place_ids[0]}"}, headers=ANON).json()
    assert set(star[0]) >= {"id", "name", "lat", "lng", "category", "opening_hours"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"rating": "eq.4"}, [2]),
        ({"rating": "neq.4"}, [0, 1, 3, 4]),
        ({"rating": "gt.4"}, [3, 4]),
        ({"rating": "gte.4"}, [2, 3, 4]),
        ({"rating": "lt.4"}, [0, 1]),
        ({"rating": "lte.4"}, [0, 1, 2]),
        ({"rating": "is.null"}, [5]),
        ({"rating": "not.is.null", "user_ratings_total": "lt.20"}, [0, 1]),
        ({"description": "is.null"}, [0, 2, 4]),
        ({"user_ratings_total": "in.(0,20,40)"}, [0, 2, 4]),
        ({"user_ratings_total": "not.in.(0,20,40)"}, [1, 3, 5]),
        ({"name": "like.Place 3*"}, [3]),
        ({"name": "ilike.*PLACE 4*"}, [4]),
        ({"name": "not.like.Place 1*"}, [0, 2, 3, 4, 5]),
        ({"description": "eq.café"}, [1, 3, 5]),
        ({"or": "(rating.gt.4.5,user_ratings_total.eq.0)"}, [0, 4]),
        ({"or": "(rating.is.null,and(rating.gte.3.5,rating.lte.4))"}, [1, 2, 5]),
        ({"not.or": "(rating.is.null,rating.lt.4)"}, [2, 3, 4]),
        ({"and": "(rating.gt.3,rating.not.gt.4)", "description": "not.is.null"}, [1]),
        ({"or": '(name.eq."Place 1 TAG",name.in.("Place 2 TAG","x,y"))'}, [1, 2]),
    ],
)
def test_filters(
    rest: TestClient, world: World, params: dict[str, str], expected: list[int]
) -> None:
    params = {key: value.replace("TAG", world.tag) for key, value in params.items()}
    response = rest.get(
        "/place",
        params={"select": "id", "category": f"eq.{world.category}", "order": "id", **params},
        headers=ANON,
    )
    assert response.status_code == 200, response.text
    assert [row["id"] for row in response.json()] == [world.place_ids[n] for n in expected]


def test_order_limit_offset_and_nulls(rest: TestClient, world: World) -> None:
    def ids(order: str, **extra: str) -> list[int]:
        response = rest.get(
            "/place",
            params={"select": "id", "category": f"eq.{world.category}", "order": order, **extra},
            headers=ANON,
        )
        assert response.status_code == 200, response.text
        return [world.place_ids.index(row["id"]) for row in response.json()]

    assert ids("rating.desc") == [5, 4, 3, 2, 1, 0]  # NULLS FIRST is DESC's default
    assert ids("rating.desc.nullslast") == [4, 3, 2, 1, 0, 5]
    assert ids("rating.asc.nullsfirst") == [5, 0, 1, 2, 3, 4]
    assert ids("description.asc,id.desc") == [5, 3, 1, 4, 2, 0]
    assert ids("id", limit="2", offset="3") == [3, 4]


def test_range_headers_and_exact_count(rest: TestClient, world: World) -> None:
    base = {"select": "id", "category": f"eq.{world.category}", "order": "id"}
    page = rest.get("/place", params=base, headers={**ANON, "Range-Unit": "items",
                                                   "Range": "0-1"})  # fmt: skip
    assert page.status_code == 200 and len(page.json()) == 2
    assert page.headers["content-range"] == "0-1/*"
    counted = rest.get("/place", params=base, headers={**ANON, "Range": "2-3",
                                                      "Prefer": "count=exact"})  # fmt: skip
    assert counted.status_code == 206
    assert counted.headers["content-range"] == "2-3/6"
    assert [r["id"] for r in counted.json()] == world.place_ids[2:4]
    whole = rest.get("/place", params=base, headers={**ANON, "Prefer": "count=exact"})
    assert whole.status_code == 200 and whole.headers["content-range"] == "0-5/6"
    limited = rest.get("/place", params={**base, "limit": "10", "offset": "4"}, headers=ANON)
    assert limited.headers["content-range"] == "4-5/*"
    empty = rest.get(
        "/place", params={**base, "id": "eq.none"}, headers={**ANON, "Prefer": "count=exact"}
    )
    assert empty.status_code == 200 and empty.json() == []
    assert empty.headers["content-range"] == "*/0"
    beyond = rest.get("/place", params={**base, "offset": "9"},
                      headers={**ANON, "Prefer": "count=exact"})  # fmt: skip
    assert_error(beyond, 416, "PGRST103")
    assert beyond.headers["content-range"] == "*/6"
    backwards = rest.get("/place", params=base, headers={**ANON, "Range": "5-2"})
    assert_error(backwards, 416, "PGRST103")
    head = rest.head("/place", params=base, headers={**ANON, "Prefer": "count=exact"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-range"] == "0-5/6"


def test_single_object(rest: TestClient, world: World) -> None:
    one = rest.get(
        "/place",
        params={"select": "id,name", "id": f"eq.{world.place_ids[1]}"},
        headers={**ANON, "Accept": "application/vnd.pgrst.object+json"},
    )
    assert one.status_code == 200, one.text
    assert one.headers["content-type"] == "application/vnd.pgrst.object+json; charset=utf-8"
    assert one.json() == {"id": world.place_ids[1], "name": f"Place 1 {world.tag}"}
    for params in ({"id": "eq.nothing"}, {"category": f"eq.{world.category}"}):
        response = rest.get(
            "/place",
            params={"select": "id", **params},
            headers={**ANON, "Accept": "application/vnd.pgrst.object+json"},
        )
        body = assert_error(response, 406, "PGRST116")
        assert body["message"] == "Cannot coerce the result to a single JSON object"
        assert body["details"] in ("The result contains 0 rows", "The result contains 6 rows")


def test_stripped_nulls_and_unavailable_media(rest: TestClient, world: World) -> None:
    stripped = rest.get(
        "/place",
        params={"select": "id,rating", "id": f"eq.{world.place_ids[5]}"},
        headers={**ANON, "Accept": "application/vnd.pgrst.array+json;nulls=stripped"},
    )
    assert stripped.json() == [{"id": world.place_ids[5]}]
    csv = rest.get("/place", params={"select": "id"}, headers={**ANON, "Accept": "text/csv"})
    assert_error(csv, 406, "PGRST107")


# -- embedding ---------------------------------------------------------------------------


def test_embedding_both_directions_and_inner(rest: TestClient, world: World) -> None:
    alice = world.alice
    created = rest.post(
        "/review",
        json={"place_id": world.place_ids[0], "rating": 5, "comment": "lovely"},
        headers={**alice.headers, "Prefer": "return=representation"},
    )
    assert created.status_code == 201, created.text
    try:
        reviews = rest.get(
            "/review",
            params={"select": "id,rating,spot:place(name,category)",
                    "place_id": f"eq.{world.place_ids[0]}"},
            headers=alice.headers,
        )  # fmt: skip
        assert reviews.status_code == 200, reviews.text
        assert reviews.json() == [
            {"id": created.json()[0]["id"], "rating": 5,
             "spot": {"name": f"Place 0 {world.tag}", "category": world.category}}
        ]  # fmt: skip
        places = rest.get(
            "/place",
            params={"select": "id,review(rating,comment)", "category": f"eq.{world.category}",
                    "order": "id", "limit": "2"},
            headers=alice.headers,
        )  # fmt: skip
        assert places.json() == [
            {"id": world.place_ids[0], "review": [{"rating": 5, "comment": "lovely"}]},
            {"id": world.place_ids[1], "review": []},
        ]
        inner = rest.get(
            "/place",
            params={"select": "id,review!inner(rating)", "category": f"eq.{world.category}"},
            headers={**alice.headers, "Prefer": "count=exact"},
        )
        assert inner.json() == [{"id": world.place_ids[0], "review": [{"rating": 5}]}]
        assert inner.headers["content-range"] == "0-0/1"
        hinted = rest.get(
            "/review",
            params={"select": "place!fk_review_place_id_place(id)",
                    "place_id": f"eq.{world.place_ids[0]}"},
            headers=alice.headers,
        )  # fmt: skip
        assert hinted.json() == [{"place": {"id": world.place_ids[0]}}]
        by_column = rest.get(
            "/review", params={"select": "place!place_id(id)"}, headers=alice.headers
        )
        assert by_column.json() == hinted.json()
        assert_error(
            rest.get("/review", params={"select": "place!nope(id)"}, headers=alice.headers),
            400, "PGRST200",
        )  # fmt: skip
        filtered = rest.get(
            "/place",
            params={"select": "id,review(rating)", "id": f"eq.{world.place_ids[0]}",
                    "review.rating": "lt.3"},
            headers=alice.headers,
        )  # fmt: skip
        assert filtered.json() == [{"id": world.place_ids[0], "review": []}]
        # Bob sees the place, and through RLS none of Alice's reviews under it.
        bob_view = rest.get(
            "/place",
            params={"select": "id,review(rating)", "id": f"eq.{world.place_ids[0]}"},
            headers=world.bob.headers,
        )
        assert bob_view.json() == [{"id": world.place_ids[0], "review": []}]
        two_levels = rest.get(
            "/user",
            params={"select": "full_name,review(rating,place(name))"},
            headers=alice.headers,
        )
        assert two_levels.json() == [
            {
                "full_name": "Alice",
                "review": [{"rating": 5, "place": {"name": f"Place 0 {world.tag}"}}],
            }
        ]
    finally:
        rest.delete("/review", params={"place_id": f"eq.{world.place_ids[0]}"},
                    headers=alice.headers)  # fmt: skip


def test_embedded_order_and_limit(rest: TestClient, world: World) -> None:
    place = world.place_ids[1]
    for user, rating in ((world.alice, 2), (world.bob, 5)):
        made = rest.post("/review", json={"place_id": place, "rating": rating},
                         headers=user.headers)  # fmt: skip
        assert made.status_code == 201, made.text
    try:
        top = rest.get(
            "/place",
            params={"select": "id,review(rating)", "id": f"eq.{place}",
                    "review.order": "rating.desc", "review.limit": "1"},
            headers=SERVICE,
        )  # fmt: skip
        assert top.json() == [{"id": place, "review": [{"rating": 5}]}]
        lowest = rest.get(
            "/place",
            params={"select": "id,r:review(rating)", "id": f"eq.{place}", "r.order": "rating"},
            headers=SERVICE,
        )
        assert lowest.json() == [{"id": place, "r": [{"rating": 2}, {"rating": 5}]}]
    finally:
        rest.delete("/review", params={"place_id": f"eq.{place}"}, headers=SERVICE)


def test_array_range_and_text_search_operators_and_ambiguity(
    rest: TestClient, world: World, api_db: DatabaseUnderTest
) -> None:
    a, b = f"rest_a_{world.tag}", f"rest_b_{world.tag}"
    with connect(api_db.admin_url) as conn:
        conn.execute(f"CREATE TABLE {a} (id integer PRIMARY KEY, tags text[], span int4range, "
                     "body text)")  # fmt: skip
        conn.execute(
            f"CREATE TABLE {b} (id integer PRIMARY KEY, "
            f"first_id integer REFERENCES {a}, second_id integer REFERENCES {a})"
        )
        conn.execute(f"GRANT SELECT ON {a}, {b} TO anon")
        conn.execute(
            f"INSERT INTO {a} VALUES (1, '{{red,green}}', '[1,5)', 'the quick brown fox'), "
            "(2, '{blue}', '[5,9)', 'lazy dogs sleep'), (3, '{red}', '[10,20)', NULL)"
        )
    schema_caches.invalidate()

    def ids(**params: str) -> list[int]:
        response = rest.get(f"/{a}", params={"select": "id", "order": "id", **params},
                            headers=ANON)  # fmt: skip
        assert response.status_code == 200, response.text
        return [row["id"] for row in response.json()]

    try:
        assert ids(tags="cs.{red}") == [1, 3]
        assert ids(tags="cd.{red,green,blue}") == [1, 2, 3]
        assert ids(tags="ov.{blue,green}") == [1, 2]
        assert ids(span="sl.[9,10)") == [1, 2]
        assert ids(span="sr.[1,4)") == [2, 3]
        assert ids(span="nxr.[1,9)") == [1, 2]
        assert ids(span="nxl.[5,6)") == [2, 3]
        assert ids(span="adj.[9,10)") == [2, 3]
        assert ids(body="fts.fox") == [1]
        assert ids(body="fts(english).dogs") == [2]
        assert ids(body="plfts.quick fox") == [1]
        assert ids(body="phfts(english).brown fox") == [1]
        assert ids(body="wfts.lazy -cats") == [2]
        assert ids(body="match.^the") == [1]
        assert ids(body="imatch.LAZY") == [2]
        assert ids(body="isdistinct.lazy dogs sleep") == [1, 3]
        assert ids(body="not.isdistinct.lazy dogs sleep") == [2]
        body = assert_error(
            rest.get(f"/{a}", params={"select": f"id,{b}(id)"}, headers=ANON), 300, "PGRST201"
        )
        assert body["hint"].startswith(f"Try changing '{b}' to one of the following")
        hinted = rest.get(f"/{a}", params={"select": f"id,{b}!first_id(id)", "id": "eq.1"},
                          headers=ANON)  # fmt: skip
        assert hinted.json() == [{"id": 1, b: []}]
    finally:
        with connect(api_db.admin_url) as conn:
            conn.execute(f"DROP TABLE {b}, {a}")
        schema_caches.invalidate()


def test_unknown_relationship_is_pgrst200(rest: TestClient, world: World) -> None:
    body = assert_error(
        rest.get("/place", params={"select": "id,preference(*)"}, headers=ANON), 400, "PGRST200"
    )
    assert body["message"] == (
        "Could not find a relationship between 'place' and 'preference' in the schema cache"
    )


# -- writes ----------------------------------------------------------------------------------


def test_insert_fills_user_id_from_the_jwt_and_rls_keeps_users_apart(
    rest: TestClient, world: World
) -> None:
    alice, bob = world.alice, world.bob
    category = f"c_{world.tag}"
    created = rest.post(
        "/preference",
        json={"category": category, "rating": 0.8},
        headers={**alice.headers, "Prefer": "return=representation"},
    )
    assert created.status_code == 201, created.text
    row = created.json()[0]
    assert row["user_id"] == alice.id and row["rating"] == 0.8
    assert created.headers["content-range"] == "*/*"

    mine = rest.get("/preference", params={"select": "category,rating"}, headers=alice.headers)
    assert mine.json() == [{"category": category, "rating": 0.8}]
    assert rest.get("/preference", headers=bob.headers).json() == []

    # Bob can neither change nor delete it, whatever filter he uses.
    patched = rest.patch(
        "/preference",
        params={"id": f"eq.{row['id']}"},
        json={"rating": 0.1},
        headers={**bob.headers, "Prefer": "return=representation"},
    )
    assert patched.status_code == 200 and patched.json() == []
    deleted = rest.delete("/preference", params={"user_id": f"eq.{alice.id}"},
                          headers={**bob.headers, "Prefer": "return=representation"})  # fmt: skip
    assert deleted.status_code == 200 and deleted.json() == []
    # An upsert on Alice's key is Bob's own insert (the trigger fills Bob's id), never hers.
    upserted = rest.post(
        "/preference",
        params={"on_conflict": "user_id,category"},
        json={"category": category, "rating": 0.3},
        headers={**bob.headers, "Prefer": "return=representation,resolution=merge-duplicates"},
    )
    assert upserted.status_code == 201, upserted.text
    assert upserted.json()[0]["user_id"] == bob.id
    # An upsert on the primary key of Alice's row cannot take it over: RLS refuses.
    takeover = rest.post(
        "/preference",
        params={"on_conflict": "id"},
        json={"id": row["id"], "category": category, "rating": 0.0},
        headers={**bob.headers, "Prefer": "resolution=merge-duplicates"},
    )
    assert_error(takeover, 403, "42501")
    # Writing in Alice's name is refused by RLS's WITH CHECK (403: Bob is signed in).
    forged = rest.post(
        "/preference",
        json={"user_id": alice.id, "category": f"x_{world.tag}", "rating": 1},
        headers=bob.headers,
    )
    body = assert_error(forged, 403, "42501")
    assert "row-level security" in body["message"]
    assert (
        mine.json()
        == rest.get(
            "/preference", params={"select": "category,rating"}, headers=alice.headers
        ).json()
    )

    # Alice's own upsert updates her row: 200 (nothing inserted), PostgREST's status.
    again = rest.post(
        "/preference",
        params={"on_conflict": "user_id,category"},
        json=[{"category": category, "rating": 0.9}],
        headers={**alice.headers, "Prefer": "return=representation,resolution=merge-duplicates"},
    )
    assert again.status_code == 200, again.text
    assert again.json()[0]["id"] == row["id"] and again.json()[0]["rating"] == 0.9
    ignored = rest.post(
        "/preference",
        params={"on_conflict": "user_id,category"},
        json={"category": category, "rating": 0.1},
        headers={**alice.headers, "Prefer": "return=representation,resolution=ignore-duplicates"},
    )
    assert ignored.status_code == 201 and ignored.json() == []

    changed = rest.patch(
        "/preference",
        params={"category": f"eq.{category}"},
        json={"rating": 0.5},
        headers={**alice.headers, "Prefer": "return=minimal"},
    )
    assert changed.status_code == 204 and changed.headers["content-range"] == "0-0/*"
    gone = rest.delete("/preference", params={"category": f"eq.{category}"},
                       headers={**alice.headers, "Prefer": "count=exact"})  # fmt: skip
    assert gone.status_code == 204 and gone.headers["content-range"] == "*/1"
    assert rest.get("/preference", headers=alice.headers).json() == []
    rest.delete("/preference", params={"category": f"eq.{category}"}, headers=bob.headers)


def test_bulk_insert_headers_only_and_single_object_rollback(
    rest: TestClient, world: World
) -> None:
    alice = world.alice
    rows = [{"category": f"b{n}_{world.tag}", "rating": n / 10} for n in range(3)]
    bulk = rest.post(
        "/preference",
        params={"columns": '"category","rating"'},
        json=rows,
        headers={**alice.headers, "Prefer": "return=representation,count=exact"},
    )
    assert bulk.status_code == 201, bulk.text
    assert [r["category"] for r in bulk.json()] == [r["category"] for r in rows]
    assert bulk.headers["content-range"] == "*/3"
    located = rest.post(
        "/preference",
        json={"category": f"h_{world.tag}", "rating": 0.5},
        headers={**alice.headers, "Prefer": "return=headers-only"},
    )
    assert located.status_code == 201 and located.content == b""
    assert located.headers["location"].startswith("/preference?id=eq.")
    # A PATCH expected to touch one row touches three: 406 and nothing changes.
    refused = rest.patch(
        "/preference",
        params={"category": f"like.b*_{world.tag}"},
        json={"rating": 1},
        headers={**alice.headers, "Accept": "application/vnd.pgrst.object+json"},
    )
    assert_error(refused, 406, "PGRST116")
    after = rest.get("/preference", params={"select": "rating", "category": f"like.b*_{world.tag}",
                                            "order": "rating"}, headers=alice.headers)  # fmt: skip
    assert [r["rating"] for r in after.json()] == [0, 0.1, 0.2]
    refused_delete = rest.delete(
        "/preference",
        params={"category": f"like.b*_{world.tag}"},
        headers={**alice.headers, "Accept": "application/vnd.pgrst.object+json"},
    )
    assert_error(refused_delete, 406, "PGRST116")
    assert len(rest.get("/preference", params={"category": f"like.b*_{world.tag}"},
                        headers=alice.headers).json()) == 3  # fmt: skip
    mismatched = rest.post("/preference", json=[{"category": "a", "rating": 1}, {"category": "b"}],
                           headers=alice.headers)  # fmt: skip
    assert_error(mismatched, 400, "PGRST102")
    rest.delete("/preference", params={"category": f"like.*_{world.tag}"}, headers=alice.headers)


def test_delete_and_patch_without_filter_are_refused(rest: TestClient, world: World) -> None:
    body = assert_error(rest.delete("/preference", headers=world.alice.headers), 400, "21000")
    assert body["message"] == "DELETE requires a WHERE clause"
    patch = rest.patch("/preference", json={"rating": 0}, headers=world.alice.headers)
    assert assert_error(patch, 400, "21000")["message"] == "UPDATE requires a WHERE clause"
    # A filter on an embedded resource does not narrow the rows deleted: still refused.
    embedded_only = rest.delete("/review", params={"place.name": "eq.x"}, headers=SERVICE)
    assert_error(embedded_only, 400, "21000")


# -- roles: anon and service_role ----------------------------------------------------------


def test_anon_reads_places_and_nothing_else(rest: TestClient, world: World) -> None:
    assert (
        rest.get("/place", params={"select": "id", "limit": "1"}, headers=ANON).status_code == 200
    )
    for table in ("review", "preference", "user"):
        body = assert_error(rest.get(f"/{table}", headers=ANON), 401, "42501")
        assert body["message"] == f"permission denied for table {table}"
    write = rest.post("/place", json={"id": "x", "name": "x", "lat": 0, "lng": 0}, headers=ANON)
    assert_error(write, 401, "42501")
    rpc = rest.post("/rpc/recommend_places", json={"lat": 48.85, "lng": 2.35}, headers=ANON)
    body = assert_error(rpc, 401, "42501")
    assert body["message"] == "permission denied for function recommend_places"


def test_service_role_bypasses_rls(rest: TestClient, world: World) -> None:
    alice = world.alice
    made = rest.post("/preference", json={"category": f"s_{world.tag}", "rating": 0.2},
                     headers={**alice.headers, "Prefer": "return=representation"})  # fmt: skip
    assert made.status_code == 201, made.text
    seen = rest.get("/preference", params={"user_id": f"eq.{alice.id}"}, headers=SERVICE)
    assert [r["category"] for r in seen.json()] == [f"s_{world.tag}"]
    # service_role has no JWT user: the trigger leaves user_id NULL and NOT NULL refuses.
    orphan = rest.post("/preference", json={"category": "z", "rating": 0}, headers=SERVICE)
    assert_error(orphan, 400, "23502")
    removed = rest.delete("/preference", params={"user_id": f"eq.{alice.id}"}, headers=SERVICE)
    assert removed.status_code == 204


def test_authenticated_sees_only_their_user_row(rest: TestClient, world: World) -> None:
    users = rest.get("/user", params={"select": "id,full_name"}, headers=world.alice.headers)
    assert users.json() == [{"id": world.alice.id, "full_name": "Alice"}]
    renamed = rest.patch(
        "/user",
        params={"id": f"eq.{world.bob.id}", "select": "id,full_name"},
        json={"full_name": "x"},
        headers={**world.alice.headers, "Prefer": "return=representation"},
    )
    assert renamed.json() == []
    promoted = rest.patch("/user", params={"id": f"eq.{world.alice.id}"},
                          json={"role": "admin"}, headers=world.alice.headers)  # fmt: skip
    assert_error(promoted, 403, "42501")


def test_authenticated_cannot_read_password_hashes(rest: TestClient, world: World) -> None:
    """Not even their own (migration 2c3d4e5f6a7b): `*` is refused as PostgREST refuses it."""
    for select in ("*", "hashed_password", "id,hashed_password"):
        refused = rest.get("/user", params={"select": select}, headers=world.alice.headers)
        assert_error(refused, 403, "42501")
    filtered = rest.get("/user", params={"select": "id", "hashed_password": "like.*"},
                        headers=world.alice.headers)  # fmt: skip
    assert_error(filtered, 403, "42501")
    mine = rest.get("/user", params={"select": "id,username,role,auth_user_id"},
                    headers=world.alice.headers)  # fmt: skip
    assert [row["id"] for row in mine.json()] == [world.alice.id]


# -- RPC -------------------------------------------------------------------------------------


def test_rpc_recommend_places(rest: TestClient, world: World) -> None:
    alice = world.alice
    rest.post("/preference", json={"category": world.category, "rating": 0.9},
              headers=alice.headers)  # fmt: skip
    try:
        args = {"lat": 48.85, "lng": 2.35, "radius_km": 2, "only_category": world.category}
        posted = rest.post("/rpc/recommend_places", json=args, headers=alice.headers)
        assert posted.status_code == 200, posted.text
        ranked = posted.json()
        assert [r["id"] for r in ranked][:1] == [world.place_ids[4]]
        assert {r["id"] for r in ranked} == set(world.place_ids)
        assert all(r["preference"] == 0.9 for r in ranked)
        got = rest.get(
            "/rpc/recommend_places",
            params={**{k: str(v) for k, v in args.items()}, "select": "id,score",
                    "score": "gt.0.5", "order": "score.desc", "limit": "2"},
            headers={**alice.headers, "Prefer": "count=exact"},
        )  # fmt: skip
        assert got.status_code == 206, got.text
        assert [set(r) for r in got.json()] == [{"id", "score"}] * 2
        assert got.headers["content-range"] == "0-1/6"
        assert rest.post("/rpc/recommend_places", json=args, headers=world.bob.headers).json() == []
        wrong = rest.post("/rpc/recommend_places", json={**args, "radius_km": 80},
                          headers=alice.headers)  # fmt: skip
        assert assert_error(wrong, 400, "22023")["message"] == "radius_km must be within (0, 50]"
        missing = rest.post("/rpc/recommend_places", json={"lat": 1}, headers=alice.headers)
        body = assert_error(missing, 404, "PGRST202")
        assert (
            body["message"]
            == "Could not find the function public.recommend_places(lat) in the schema cache"
        )
        unknown = rest.post("/rpc/no_such_function", json={}, headers=alice.headers)
        assert_error(unknown, 404, "PGRST202")
        service = rest.post("/rpc/recommend_places", json=args, headers=SERVICE)
        assert assert_error(service, 403, "42501")["message"].startswith("no acting user")
    finally:
        rest.delete("/preference", params={"category": f"eq.{world.category}"},
                    headers=alice.headers)  # fmt: skip


def test_rpc_scalar_and_set_returning_functions(
    rest: TestClient, world: World, api_db: DatabaseUnderTest
) -> None:
    name = f"rest_fn_{world.tag}"
    with connect(api_db.admin_url) as conn:
        conn.execute(f"CREATE FUNCTION {name}_add(a integer, b integer DEFAULT 1) RETURNS integer "
                     "LANGUAGE sql IMMUTABLE AS 'SELECT a + b'")  # fmt: skip
        conn.execute(f"CREATE FUNCTION {name}_two(x integer) RETURNS integer "
                     "LANGUAGE sql IMMUTABLE AS 'SELECT x'")  # fmt: skip
        conn.execute(f"CREATE FUNCTION {name}_two(x text) RETURNS text "
                     "LANGUAGE sql IMMUTABLE AS 'SELECT x'")  # fmt: skip
        conn.execute(f"CREATE FUNCTION {name}_series(n integer) RETURNS SETOF integer "
                     "LANGUAGE sql IMMUTABLE AS 'SELECT generate_series(1, n)'")  # fmt: skip
        conn.execute(f"CREATE TABLE {name}_log (at timestamptz DEFAULT now())")
        conn.execute(f"GRANT INSERT ON {name}_log TO anon")
        conn.execute(f"CREATE FUNCTION {name}_touch() RETURNS void LANGUAGE sql "
                     f"VOLATILE AS 'INSERT INTO {name}_log DEFAULT VALUES'")  # fmt: skip
    schema_caches.invalidate()  # new functions without a migration: as NOTIFY reload would
    try:
        added = rest.post(f"/rpc/{name}_add", json={"a": 40, "b": 2}, headers=ANON)
        assert added.status_code == 200 and added.json() == 42
        default = rest.get(f"/rpc/{name}_add", params={"a": "41"}, headers=ANON)
        assert default.json() == 42
        series = rest.get(f"/rpc/{name}_series", params={"n": "3"}, headers=ANON)
        assert series.json() == [1, 2, 3]
        touched = rest.post(f"/rpc/{name}_touch", headers=ANON)
        assert touched.status_code == 204
        # GET runs read-only, as behind PostgREST: a function that writes cannot.
        read_only = rest.get(f"/rpc/{name}_touch", headers=ANON)
        assert_error(read_only, 405, "25006")
        with connect(api_db.admin_url) as conn:
            assert conn.execute(f"SELECT count(*) FROM {name}_log").fetchone() == (1,)
        bad = rest.get(f"/rpc/{name}_add", params={"a": "x"}, headers=ANON)
        assert_error(bad, 400, "22P02")
        ambiguous = rest.post(f"/rpc/{name}_two", json={"x": 1}, headers=ANON)
        assert_error(ambiguous, 300, "PGRST203")
    finally:
        with connect(api_db.admin_url) as conn:
            for suffix in ("add(integer, integer)", "series(integer)", "touch()",
                           "two(integer)", "two(text)"):  # fmt: skip
                conn.execute(f"DROP FUNCTION {name}_{suffix}")
            conn.execute(f"DROP TABLE {name}_log")
        schema_caches.invalidate()


# -- errors, JWTs and hostile input ---------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "PGRST302"),
        ({"apikey": "not-a-jwt"}, "PGRST301"),
        ({"apikey": sign({"role": "anon"}, "wrong-secret-" + "z" * 40)}, "PGRST301"),
        ({"apikey": sign({"role": "anon", "exp": 1})}, "PGRST303"),
        ({"apikey": sign({"role": "postgres", "exp": FAR_FUTURE})}, "PGRST303"),
        ({"apikey": sign({"role": "app_service", "exp": FAR_FUTURE})}, "PGRST303"),
        ({"apikey": ANON_KEY, "Authorization": "Bearer a.b"}, "PGRST301"),
    ],
)
def test_bad_or_missing_jwt_is_401(
    rest: TestClient, world: World, headers: dict[str, str], code: str
) -> None:
    response = rest.get("/place", params={"select": "id", "limit": "1"}, headers=headers)
    assert_error(response, 401, code)
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_jwt_without_role_is_anon(rest: TestClient, world: World) -> None:
    key = sign({"iss": "supabase", "exp": FAR_FUTURE})
    assert rest.get("/place", params={"limit": "1"}, headers={"apikey": key}).status_code == 200
    assert_error(rest.get("/review", headers={"apikey": key}), 401, "42501")


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/nothing_here", {}, 404, "PGRST205"),
        ('/place"; DROP TABLE place; --', {}, 404, "PGRST205"),
        ("/place", {"select": "id,nope"}, 400, "42703"),
        ("/place", {"select": 'id,"name; DROP TABLE place; --"'}, 400, "42703"),
        ("/place", {"select": 'id,"name""; DROP TABLE place; --"'}, 400, "PGRST100"),
        ("/place", {"select": "id::text; DROP TABLE place"}, 400, "PGRST100"),
        ("/place", {"select": "id::pg_sleep"}, 400, "42704"),
        ("/place", {"select": "id,("}, 400, "PGRST100"),
        ("/place", {"id": "nope.1"}, 400, "PGRST100"),
        ("/place", {"id": "eq"}, 400, "PGRST100"),
        ("/place", {"nope": "eq.1"}, 400, "42703"),
        ("/place", {"id;drop table place": "eq.1"}, 400, "PGRST100"),
        ("/place", {"order": "id.sideways"}, 400, "PGRST100"),
        ("/place", {"order": "nope"}, 400, "42703"),
        ("/place", {"or": "(id.eq.1"}, 400, "PGRST100"),
        ("/place", {"limit": "-1"}, 400, "PGRST100"),
        ("/place", {"user_ratings_total": "eq.many"}, 400, "22P02"),
        ("/place", {"rating": "is.maybe"}, 400, "PGRST100"),
        ("/place", {"opening_hours": "eq.{}"}, 404, "42883"),
        ("/place", {"select": "id", "review.rating": "eq.1"}, 400, "PGRST108"),
        ("/place", {"select": "id", "review.order": "rating"}, 400, "PGRST108"),
        ("/place", {"user_ratings_total": "like.1*"}, 404, "42883"),
        ("/place", {"name": "like.%"}, 200, ""),
        ("/place", {"id": "eq.' OR '1'='1"}, 200, ""),
        ("/place", {"select": "count()"}, 400, "PGRST127"),
    ],
)
def test_hostile_and_malformed_requests_are_4xx(
    rest: TestClient, world: World, path: str, params: dict[str, str], status: int, code: str
) -> None:
    response = rest.get(path, params={**params, "category": f"eq.{world.category}"},
                        headers=ANON)  # fmt: skip
    if code:
        assert_error(response, status, code)
    else:
        assert response.status_code == status
        if "id" in params:
            assert response.json() == []  # a value is only ever a value
    assert rest.get("/place", params={"category": f"eq.{world.category}"},
                    headers=ANON).status_code == 200  # fmt: skip


def test_huge_lists_and_deep_nesting_are_answered(
    rest: TestClient, world: World, api_app: Any
) -> None:
    # 70,000 values, beyond PostgreSQL's 65,535 parameters (and httpx's URL limit, so the
    # request goes to the handler directly): one array parameter carries them.
    many = ",".join(str(n) for n in range(70_000))
    pairs = [("select", "id"), ("category", f"eq.{world.category}"), ("order", "id"),
             ("user_ratings_total", f"in.({many})")]  # fmt: skip
    call = routes.Call("GET", "/place", pairs, Headers(ANON), b"")
    listed = routes._handle(api_app.state.engine, api_app.state.settings, call, "place", False)
    assert listed.status_code == 200, listed.body
    assert [r["id"] for r in json.loads(listed.body)] == world.place_ids
    deep_or = "or(" * 200 + "id.eq.1" + ")" * 200
    body = assert_error(
        rest.get("/place", params={"or": f"({deep_or})"}, headers=ANON), 400, "PGRST100"
    )
    assert "nested deeper than" in body["details"]
    deep_select = "id," + "place(" * 200 + "id" + ")" * 200
    assert_error(rest.get("/review", params={"select": deep_select}, headers=ANON), 400, "PGRST100")


def test_hostile_payloads(rest: TestClient, world: World) -> None:
    alice = world.alice
    unknown = rest.post("/preference", json={"category": "a", "rating": 1, "evil; --": 1},
                        headers=alice.headers)  # fmt: skip
    body = assert_error(unknown, 400, "PGRST204")
    assert (
        body["message"]
        == "Could not find the 'evil; --' column of 'preference' in the schema cache"
    )
    assert_error(rest.post("/preference", content=b"{not json", headers=alice.headers),
                 400, "PGRST102")  # fmt: skip
    assert_error(rest.post("/preference", json="a string", headers=alice.headers), 400, "PGRST102")
    nul = rest.post("/preference", json={"category": "a\u0000b", "rating": 1},
                    headers=alice.headers)  # fmt: skip
    assert 400 <= nul.status_code < 500
    duplicate_key = rest.post("/preference", json=[{"category": f"d_{world.tag}", "rating": 1}] * 2,
                              headers=alice.headers)  # fmt: skip
    assert_error(duplicate_key, 409, "23505")
    foreign = rest.post("/review", json={"place_id": "no-such-place", "rating": 3},
                        headers=alice.headers)  # fmt: skip
    assert_error(foreign, 409, "23503")
    conflict = rest.post(
        "/preference",
        params={"on_conflict": "nope"},
        json={"category": "a", "rating": 1},
        headers={**alice.headers, "Prefer": "resolution=merge-duplicates"},
    )
    assert_error(conflict, 400, "42703")
    assert rest.get("/preference", headers=alice.headers).json() == []


def test_each_request_runs_as_its_role_with_its_claims(
    rest: TestClient, world: World, api_db: DatabaseUnderTest
) -> None:
    name = f"rest_whoami_{world.tag}"
    with connect(api_db.admin_url) as conn:
        conn.execute(
            f"CREATE FUNCTION {name}() RETURNS json LANGUAGE sql STABLE AS $$ SELECT "
            "json_build_object('user', current_user, 'sub', auth.uid(), "
            "'method', current_setting('request.method'), "
            "'path', current_setting('request.path'), "
            "'read_only', current_setting('transaction_read_only'), "
            "'client', current_setting('request.headers')::json ->> 'x-client-info') $$"
        )
        conn.execute(f"GRANT EXECUTE ON FUNCTION {name}() TO anon, authenticated, service_role")
    schema_caches.invalidate()
    try:
        as_alice = rest.get(
            f"/rpc/{name}", headers={**world.alice.headers, "X-Client-Info": "tests/1"}
        ).json()
        assert as_alice == {"user": "authenticated", "sub": str(world.alice.auth_id),
                            "method": "GET", "path": f"/rpc/{name}", "read_only": "on",
                            "client": "tests/1"}  # fmt: skip
        as_anon = rest.post(f"/rpc/{name}", headers=ANON).json()
        assert as_anon["user"] == "anon" and as_anon["sub"] is None
        assert as_anon["read_only"] == "off"
        assert rest.post(f"/rpc/{name}", headers=SERVICE).json()["user"] == "service_role"
    finally:
        with connect(api_db.admin_url) as conn:
            conn.execute(f"DROP FUNCTION {name}()")
        schema_caches.invalidate()


def test_other_schemas_put_and_nul_bytes_are_clear_4xx(rest: TestClient, world: World) -> None:
    profile = rest.get("/place", headers={**ANON, "Accept-Profile": "storage"})
    body = assert_error(profile, 406, "PGRST106")
    assert body["hint"] == "Only the following schemas are exposed: public"
    put = rest.put("/place", params={"id": "eq.x"}, json={"id": "x"}, headers=SERVICE)
    assert_error(put, 400, "PGRST127")
    nul = rest.get("/place", params={"name": "eq.a\u0000b"}, headers=ANON)
    assert_error(nul, 400, "22021")


def test_rpc_with_count_calls_the_function_once(
    rest: TestClient, world: World, api_db: DatabaseUnderTest
) -> None:
    name = f"rest_counter_{world.tag}"
    with connect(api_db.admin_url) as conn:
        conn.execute(f"CREATE SEQUENCE {name}_calls")
        conn.execute(f"GRANT USAGE ON SEQUENCE {name}_calls TO anon")
        conn.execute(
            f"CREATE FUNCTION {name}() RETURNS TABLE (n integer, calls bigint) LANGUAGE sql "
            f"VOLATILE AS $$ SELECT g, nextval('{name}_calls') FROM generate_series(1, 3) g $$"
        )
    schema_caches.invalidate()
    try:
        called = rest.post(
            f"/rpc/{name}",
            params={"select": "n", "n": "gt.1", "order": "n.desc"},
            headers={**ANON, "Prefer": "count=exact"},
        )
        assert called.status_code == 200, called.text
        assert called.json() == [{"n": 3}, {"n": 2}]
        assert called.headers["content-range"] == "0-1/2"
        with connect(api_db.admin_url) as conn:
            assert conn.execute(f"SELECT last_value FROM {name}_calls").fetchone() == (3,)
    finally:
        with connect(api_db.admin_url) as conn:
            conn.execute(f"DROP FUNCTION {name}()")
            conn.execute(f"DROP SEQUENCE {name}_calls")
        schema_caches.invalidate()


def test_representation_embeds_after_a_write(rest: TestClient, world: World) -> None:
    created = rest.post(
        "/review",
        params={"select": "rating,place(name)"},
        json={"place_id": world.place_ids[3], "rating": 4},
        headers={**world.alice.headers, "Prefer": "return=representation",
                 "Accept": "application/vnd.pgrst.object+json"},
    )  # fmt: skip
    try:
        assert created.status_code == 201, created.text
        assert created.json() == {"rating": 4, "place": {"name": f"Place 3 {world.tag}"}}
    finally:
        rest.delete("/review", params={"place_id": f"eq.{world.place_ids[3]}"},
                    headers=world.alice.headers)  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "params", "headers", "status", "code"),
    [
        ("GET", "/place", {"select": "opening_hours->>periods"}, {}, 400, "PGRST127"),
        ("GET", "/place", {"opening_hours->>periods": "eq.x"}, {}, 400, "PGRST100"),
        ("GET", "/place", {"select": "count()"}, {}, 400, "PGRST127"),
        ("GET", "/place", {"select": "rating.sum()"}, {}, 400, "PGRST127"),
        ("GET", "/review", {"select": "...place(name)"}, {}, 400, "PGRST127"),
        ("GET", "/place", {"id": "eq(any).{a,b}"}, {}, 400, "PGRST127"),
        ("GET", "/review", {"order": "place(name).desc"}, {}, 400, "PGRST127"),
        ("GET", "/user", {"select": "place(*)"}, {}, 400, "PGRST200"),
        ("GET", "/place", {"select": "*,review(*)", "review": "not.is.null"}, {}, 400, "42703"),
        ("PUT", "/place", {"id": "eq.x"}, {}, 400, "PGRST127"),
        ("POST", "/preference", {}, {"Prefer": "missing=default"}, 400, "PGRST127"),
        ("PATCH", "/preference", {"id": "eq.0"}, {"Prefer": "tx=rollback"}, 400, "PGRST127"),
        ("DELETE", "/preference", {"id": "eq.0"}, {"Prefer": "max-affected=1"}, 400, "PGRST127"),
        ("GET", "/place", {}, {"Prefer": "handling=strict"}, 400, "PGRST127"),
        ("GET", "/place", {}, {"Prefer": "timezone=UTC"}, 400, "PGRST127"),
        ("DELETE", "/preference", {"id": "eq.0", "limit": "1"}, {}, 400, "PGRST127"),
        (
            "GET",
            "/rpc/recommend_places",
            {"lat": "1", "lng": "2", "select": "id,place(name)"},
            {},
            400,
            "PGRST127",
        ),
        ("GET", "/place", {}, {"Accept": "application/geo+json"}, 406, "PGRST107"),
        ("GET", "/place", {}, {"Accept": "application/openapi+json"}, 406, "PGRST107"),
    ],
)
def test_what_is_not_implemented_says_so(
    rest: TestClient,
    world: World,
    method: str,
    path: str,
    params: dict[str, str],
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    response = rest.request(
        method, path, params=params, headers={**SERVICE, **headers},
        json={"category": "x", "rating": 1} if method in ("POST", "PATCH", "PUT") else None,
    )  # fmt: skip
    assert_error(response, status, code)


def test_root_is_not_openapi(rest: TestClient) -> None:
    assert rest.get("/", headers=ANON).status_code == 404


def test_verified_tokens_are_cached_but_expiry_still_applies() -> None:
    cache = VerifiedTokens(size=2)
    cache.put("s", "a", {"role": "anon", "exp": time.time() - 60})
    with pytest.raises(Exception, match="JWT expired"):
        cache.get("s", "a")
    cache.put("s", "b", {"role": "anon", "exp": FAR_FUTURE})
    cache.put("s", "c", {"role": "anon"})
    assert cache.get("s", "a") is None  # the oldest went when the third came
    assert cache.get("other secret", "b") is None
    assert cache.get("s", "b") == {"role": "anon", "exp": FAR_FUTURE}


def test_schema_cache_follows_the_migration_revision(
    rest: TestClient, world: World, api_db: DatabaseUnderTest
) -> None:
    params = {"select": "id", "limit": "1"}
    assert rest.get("/place", params=params, headers=ANON).status_code == 200
    loads = schema_caches.loads
    assert rest.get("/place", params=params, headers=ANON).status_code == 200
    assert schema_caches.loads == loads  # read once, then cached
    with connect(api_db.admin_url) as conn:
        conn.execute("ALTER TABLE place ADD COLUMN rest_probe integer")
        conn.execute("UPDATE alembic_version SET version_num = 'rest_probe'")
    try:
        probe = rest.get("/place", params={"select": "rest_probe", "limit": "1"}, headers=ANON)
        assert probe.status_code == 200, probe.text
        assert schema_caches.loads == loads + 1
    finally:
        with connect(api_db.admin_url) as conn:
            conn.execute("ALTER TABLE place DROP COLUMN rest_probe")
            conn.execute("UPDATE alembic_version SET version_num = %s",
                         (migrations.head_revision(),))  # fmt: skip
    gone = rest.get("/place", params={"select": "rest_probe", "limit": "1"}, headers=ANON)
    assert_error(gone, 400, "42703")


# -- the migration ---------------------------------------------------------------------------


def test_app_service_may_switch_only_to_the_api_roles(api_db: DatabaseUnderTest) -> None:
    with connect(api_db.app_url) as conn:
        for role in ("anon", "authenticated", "service_role"):
            conn.execute(f"SET ROLE {role}")
            conn.execute("RESET ROLE")
        for role in ("postgres", "planwise_auth", "supabase_admin"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SET ROLE {role}")
            conn.rollback()
        # NOINHERIT: membership in service_role adds none of its privileges to app_service.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE \"user\" SET role = 'admin' WHERE false")
    assert migrations.head_revision()  # the chain has a head; this revision is part of it


# -- the official client over HTTP ---------------------------------------------------------


@pytest.fixture(scope="module")
def live_url(api_settings: Settings) -> Iterator[str]:
    with serve(api_settings) as server:
        yield f"{server.url}/rest/v1"


def client_for(url: str, token: str | None) -> SyncPostgrestClient:
    headers = {"apikey": ANON_KEY}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return SyncPostgrestClient(url, headers=headers)


def test_postgrest_py_reads_writes_and_rpc(live_url: str, world: World) -> None:
    alice = client_for(live_url, world.alice.token)
    bob = client_for(live_url, world.bob.token)
    anon = client_for(live_url, None)
    try:
        places = (
            anon.from_("place").select("id,name", count="exact")
            .eq("category", world.category).gte("rating", 4).order("rating", desc=True)
            .limit(2).execute()
        )  # fmt: skip
        assert [p["id"] for p in places.data] == [world.place_ids[4], world.place_ids[3]]
        assert places.count == 3
        inserted = (
            alice.from_("preference")
            .insert([{"category": world.category, "rating": 0.7}])
            .execute()
        )
        assert inserted.data[0]["user_id"] == world.alice.id
        upserted = (
            alice.from_("preference")
            .upsert({"category": world.category, "rating": 0.6}, on_conflict="user_id,category")
            .execute()
        )
        assert (
            upserted.data[0]["rating"] == 0.6 and upserted.data[0]["id"] == inserted.data[0]["id"]
        )
        assert bob.from_("preference").select("*").execute().data == []
        assert (
            bob.from_("preference")
            .update({"rating": 0})
            .eq("category", world.category)
            .execute()
            .data
            == []
        )
        one = (
            alice.from_("preference")
            .select("rating")
            .eq("category", world.category)
            .single()
            .execute()
        )
        assert one.data == {"rating": 0.6}
        ranked = alice.rpc(
            "recommend_places",
            {"lat": 48.85, "lng": 2.35, "radius_km": 2, "only_category": world.category},
        ).execute()
        assert len(ranked.data) == 6
        with pytest.raises(APIError) as refused:
            anon.rpc("recommend_places", {"lat": 48.85, "lng": 2.35}).execute()
        assert refused.value.code == "42501"
        with pytest.raises(APIError) as unfiltered:
            alice.from_("preference").delete().execute()
        assert unfiltered.value.code == "21000"
        deleted = alice.from_("preference").delete().eq("category", world.category).execute()
        assert len(deleted.data) == 1
        with pytest.raises(APIError) as missing:
            anon.from_("place").select("id").eq("id", "nothing").single().execute()
        assert missing.value.code == "PGRST116"
        embedded = (
            alice.from_("place")
            .select("name,review(rating)")
            .eq("id", world.place_ids[1])
            .execute()
        )
        assert embedded.data == [{"name": f"Place 1 {world.tag}", "review": []}]
    finally:
        alice.from_("preference").delete().eq("category", world.category).execute()


# -- latency ---------------------------------------------------------------------------------


def median_ms(run: Any, n: int = 200, warmup: int = 20) -> float:
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def test_select_latency_beside_the_same_sql(
    rest: TestClient, live_url: str, world: World, api_db: DatabaseUnderTest
) -> None:
    """Median of 200 GETs (in-process, and over HTTP to uvicorn) beside the same SQL sent
    straight through psycopg as anon in a transaction."""
    params = {"select": "id,name", "category": "eq.museum", "limit": "20"}
    with connect(api_db.admin_url) as conn:
        for n in range(40):
            conn.execute(
                "INSERT INTO place (id, name, lat, lng, category) "
                "VALUES (%s, %s, 48.86, 2.34, 'museum')",
                (f"rest_latency_{world.tag}_{n}", f"Museum {n}"),
            )
    try:
        http_ms, test_client_ms, sql_ms = measure(rest, live_url, api_db, params)
    finally:
        with connect(api_db.admin_url) as conn:
            conn.execute("DELETE FROM place WHERE id LIKE %s", (f"rest_latency_{world.tag}_%",))
    print(
        f"\n/rest/v1 select median: {http_ms:.2f} ms over HTTP (uvicorn), "
        f"{test_client_ms:.2f} ms in-process (TestClient); same SQL via psycopg {sql_ms:.2f} ms"
    )
    assert http_ms < 50 and sql_ms < http_ms


def measure(
    rest: TestClient, live_url: str, api_db: DatabaseUnderTest, params: dict[str, str]
) -> tuple[float, float, float]:
    def in_process() -> None:
        response = rest.get("/place", params=params, headers=ANON)
        assert response.status_code == 200 and len(response.json()) == 20

    with httpx.Client(base_url=live_url, headers=ANON) as http:

        def over_http() -> None:
            assert http.get("/place", params=params).status_code == 200

        http_ms = median_ms(over_http)
    test_client_ms = median_ms(in_process)
    with connect(api_db.app_url) as conn:

        def direct() -> None:
            with conn.transaction():
                conn.execute("SELECT set_config('role', 'anon', true)")
                conn.execute(
                    "SELECT coalesce(json_agg(t), '[]')::text FROM (SELECT id, name FROM place "
                    "WHERE category = %s LIMIT 20) t",
                    ("museum",),
                ).fetchone()

        sql_ms = median_ms(direct)
    return http_ms, test_client_ms, sql_ms
