"""Places, reviews and preferences through HTTP, with two users kept apart by RLS."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from tests.support.accounts import Account, new_account, new_admin, put_place
from tests.support.databases import DatabaseUnderTest


@pytest.fixture
def admin(client: TestClient, api_db: DatabaseUnderTest) -> Account:
    return new_admin(client, api_db)


@pytest.fixture
def place_id(client: TestClient, admin: Account) -> str:
    identifier = f"ChIJ{uuid.uuid4().hex[:12]}"
    put_place(client, admin, identifier, types=["restaurant", "food"], rating=4.4)
    return identifier


# -- places ---------------------------------------------------------------------------


def test_admin_upserts_and_deletes_places(client: TestClient, admin: Account) -> None:
    identifier = f"ChIJ{uuid.uuid4().hex[:12]}"
    body = {"name": "Musée", "lat": 48.86, "lng": 2.33, "types": ["museum", "point_of_interest"]}
    created = client.put(f"/places/{identifier}", json=body, headers=admin.headers)
    assert created.status_code == 201
    assert created.json()["category"] == "museum"
    assert created.json()["types"] == ["museum", "point_of_interest"]
    replaced = client.put(
        f"/places/{identifier}", json=body | {"name": "Musée d'Orsay"}, headers=admin.headers
    )
    assert replaced.status_code == 200 and replaced.json()["name"] == "Musée d'Orsay"
    assert client.get(f"/places/{identifier}").json()["name"] == "Musée d'Orsay"
    assert client.delete(f"/places/{identifier}", headers=admin.headers).status_code == 204
    assert client.get(f"/places/{identifier}").status_code == 404
    assert client.delete(f"/places/{identifier}", headers=admin.headers).status_code == 404


def test_users_cannot_write_places(client: TestClient, place_id: str) -> None:
    user = new_account(client)
    body = {"name": "Mine", "lat": 0, "lng": 0}
    assert client.put(f"/places/{place_id}", json=body, headers=user.headers).status_code == 403
    assert client.delete(f"/places/{place_id}", headers=user.headers).status_code == 403
    assert client.put("/places/new-one", json=body).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "lat": 90.5, "lng": 0},
        {"name": "x", "lat": 0, "lng": -180.01},
        {"name": "x", "lat": 0, "lng": 0, "rating": 5.5},
        {"name": "", "lat": 0, "lng": 0},
        {"name": "x", "lat": 0, "lng": 0, "types": ["a,b"]},
    ],
)
def test_invalid_places_are_422(
    client: TestClient, admin: Account, body: dict[str, object]
) -> None:
    assert client.put("/places/bad", json=body, headers=admin.headers).status_code == 422


def test_listing_pages_through_every_match_once(client: TestClient, admin: Account) -> None:
    tag = uuid.uuid4().hex[:8]
    for n in range(7):
        put_place(
            client, admin, f"list-{tag}-{n}", name=f"Gallery {tag} {n}", types=["art_gallery"]
        )
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"q": tag, "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/places", params=params).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(f"list-{tag}-{n}" for n in range(7))
    by_category = client.get("/places", params={"q": tag, "category": "art_gallery"}).json()
    assert len(by_category["items"]) == 7
    assert client.get("/places", params={"q": tag, "category": "zoo"}).json()["items"] == []


def test_name_search_treats_wildcards_literally(client: TestClient, admin: Account) -> None:
    tag = uuid.uuid4().hex[:8]
    put_place(client, admin, f"pct-{tag}", name=f"100% {tag}")
    put_place(client, admin, f"nopct-{tag}", name=f"100 {tag}")
    found = client.get("/places", params={"q": f"100% {tag}"}).json()["items"]
    assert [item["id"] for item in found] == [f"pct-{tag}"]


@pytest.mark.parametrize("cursor", ["garbage", "e30", "eyJpZCI6IDF9"])
def test_bad_cursor_is_400(client: TestClient, cursor: str) -> None:
    response = client.get("/places", params={"cursor": cursor})
    assert response.status_code == 400 and response.json()["detail"] == "invalid cursor"


# -- reviews --------------------------------------------------------------------------


def test_review_lifecycle(client: TestClient, place_id: str) -> None:
    user = new_account(client)
    created = client.post(
        "/reviews", json={"place_id": place_id, "rating": 4, "comment": "Good"},
        headers=user.headers,
    )  # fmt: skip
    assert created.status_code == 201
    review = created.json()
    assert review["user_id"] == user.id and review["rating"] == 4
    again = client.post("/reviews", json={"place_id": place_id, "rating": 5}, headers=user.headers)
    assert again.status_code == 409
    patched = client.patch(f"/reviews/{review['id']}", json={"rating": 2.5}, headers=user.headers)
    assert patched.status_code == 200 and patched.json()["rating"] == 2.5
    assert patched.json()["comment"] == "Good"
    mine = client.get("/reviews", headers=user.headers).json()
    assert [item["id"] for item in mine["items"]] == [review["id"]]
    assert client.delete(f"/reviews/{review['id']}", headers=user.headers).status_code == 204
    assert client.get(f"/reviews/{review['id']}", headers=user.headers).status_code == 404


@pytest.mark.parametrize("rating", [0, 0.99, 5.01, -1])
def test_review_rating_bounds(client: TestClient, place_id: str, rating: float) -> None:
    user = new_account(client)
    response = client.post(
        "/reviews", json={"place_id": place_id, "rating": rating}, headers=user.headers
    )
    assert response.status_code == 422


def test_review_of_unknown_place_is_404(client: TestClient) -> None:
    user = new_account(client)
    response = client.post(
        "/reviews", json={"place_id": "no-such-place", "rating": 3}, headers=user.headers
    )
    assert response.status_code == 404


def test_reviews_of_others_are_invisible_and_untouchable(client: TestClient, place_id: str) -> None:
    alice, bob = new_account(client, "alice"), new_account(client, "bob")
    review = client.post(
        "/reviews", json={"place_id": place_id, "rating": 5}, headers=alice.headers
    ).json()
    url = f"/reviews/{review['id']}"
    assert client.get(url, headers=bob.headers).status_code == 404
    assert client.patch(url, json={"rating": 1}, headers=bob.headers).status_code == 404
    assert client.delete(url, headers=bob.headers).status_code == 404
    assert client.get("/reviews", headers=bob.headers).json()["items"] == []
    assert client.get(url, headers=alice.headers).json()["rating"] == 5
    # Bob may review the same place: uniqueness is per user.
    assert (
        client.post(
            "/reviews", json={"place_id": place_id, "rating": 1}, headers=bob.headers
        ).status_code
        == 201
    )


def test_reviews_paginate(client: TestClient, admin: Account) -> None:
    user = new_account(client)
    tag = uuid.uuid4().hex[:8]
    for n in range(5):
        put_place(client, admin, f"rev-{tag}-{n}")
        client.post("/reviews", json={"place_id": f"rev-{tag}-{n}", "rating": 3},
                    headers=user.headers)  # fmt: skip
    first = client.get("/reviews", params={"limit": 3}, headers=user.headers).json()
    second = client.get(
        "/reviews", params={"limit": 3, "cursor": first["next_cursor"]}, headers=user.headers
    ).json()
    assert len(first["items"]) == 3 and len(second["items"]) == 2
    assert second["next_cursor"] is None


# -- preferences ----------------------------------------------------------------------


def test_preference_upsert_list_delete(client: TestClient) -> None:
    user = new_account(client)
    created = client.put("/preferences/museum", json={"rating": 0.8}, headers=user.headers)
    assert created.status_code == 201 and created.json()["rating"] == 0.8
    replaced = client.put("/preferences/museum", json={"rating": 0.3}, headers=user.headers)
    assert replaced.status_code == 200 and replaced.json()["rating"] == 0.3
    client.put("/preferences/park", json={"rating": 1}, headers=user.headers)
    listed = client.get("/preferences", headers=user.headers).json()
    assert [(p["category"], p["rating"]) for p in listed] == [("museum", 0.3), ("park", 1.0)]
    assert client.delete("/preferences/museum", headers=user.headers).status_code == 204
    assert client.delete("/preferences/museum", headers=user.headers).status_code == 404


@pytest.mark.parametrize(
    ("category", "rating"), [("museum", 1.5), ("museum", -0.1), ("spaceport", 0.5)]
)
def test_invalid_preferences_are_422(client: TestClient, category: str, rating: float) -> None:
    user = new_account(client)
    response = client.put(f"/preferences/{category}", json={"rating": rating}, headers=user.headers)
    assert response.status_code == 422


def test_preferences_of_others_are_invisible(client: TestClient) -> None:
    alice, bob = new_account(client, "alice"), new_account(client, "bob")
    client.put("/preferences/museum", json={"rating": 0.9}, headers=alice.headers)
    assert client.get("/preferences", headers=bob.headers).json() == []
    assert client.delete("/preferences/museum", headers=bob.headers).status_code == 404
    client.put("/preferences/museum", json={"rating": 0.1}, headers=bob.headers)
    assert client.get("/preferences", headers=alice.headers).json()[0]["rating"] == 0.9


def test_places_near_are_nearest_first_within_the_radius(
    client: TestClient, admin: Account
) -> None:
    """At 60°N a degree of longitude is 55.7 km: 0.08° east is 4.5 km, inside 5 km."""
    tag = uuid.uuid4().hex[:8]
    centre = (60.0, 25.0)
    offsets = {"east": (0.0, 0.08), "north": (0.03, 0.0), "far": (0.0, 0.1), "here": (0.0, 0.0)}
    for name, (dlat, dlng) in offsets.items():
        put_place(client, admin, f"near-{tag}-{name}", name=f"{name} {tag}",
                  lat=centre[0] + dlat, lng=centre[1] + dlng)  # fmt: skip
    params: dict[str, str | int | float] = {"near": "60.0,25.0", "radius_km": 5, "q": tag}
    items = client.get("/places", params=params).json()["items"]
    assert [item["name"].split()[0] for item in items] == ["here", "north", "east"]
    assert items[2]["distance_km"] == pytest.approx(4.45, abs=0.02)
    first = client.get("/places", params=params | {"limit": 2}).json()
    second = client.get("/places", params=params | {"limit": 2, "cursor": first["next_cursor"]})
    assert [i["name"].split()[0] for i in second.json()["items"]] == ["east"]


def test_places_near_across_the_antimeridian(client: TestClient, admin: Account) -> None:
    tag = uuid.uuid4().hex[:8]
    put_place(client, admin, f"fiji-{tag}", name=f"Taveuni {tag}", lat=-16.8, lng=-179.99)
    params: dict[str, str | int] = {"near": "-16.8,179.99", "radius_km": 5, "q": tag}
    items = client.get("/places", params=params).json()["items"]
    assert [item["id"] for item in items] == [f"fiji-{tag}"]
    assert items[0]["distance_km"] == pytest.approx(2.13, abs=0.02)


@pytest.mark.parametrize("near", ["91,0", "0,181", "abc", "1,2,3"])
def test_bad_near_is_422(client: TestClient, near: str) -> None:
    assert client.get("/places", params={"near": near}).status_code == 422


# -- recommendations ------------------------------------------------------------------


def test_recommendations_follow_my_preferences_not_others(
    client: TestClient, admin: Account
) -> None:
    tag = uuid.uuid4().hex[:8]
    lat, lng = -33.9249, 18.4241  # Cape Town
    put_place(client, admin, f"reco-museum-{tag}", name=f"Museum {tag}", lat=lat + 0.01,
              lng=lng, types=["museum"], rating=4.8, user_ratings_total=900)  # fmt: skip
    put_place(client, admin, f"reco-park-{tag}", name=f"Park {tag}", lat=lat, lng=lng + 0.01,
              types=["park"], rating=4.0, user_ratings_total=50)  # fmt: skip
    alice, bob = new_account(client, "alice"), new_account(client, "bob")
    params = {"lat": lat, "lng": lng, "radius_km": 3}

    empty = client.get("/recommendations", params=params, headers=alice.headers).json()
    assert empty["items"] == [] and "PUT /api/v1/preferences" in empty["hint"]

    client.put("/preferences/museum", json={"rating": 1.0}, headers=alice.headers)
    client.put("/preferences/park", json={"rating": 1.0}, headers=bob.headers)
    mine = client.get("/recommendations", params=params, headers=alice.headers).json()
    ours = [item for item in mine["items"] if tag in item["id"]]
    assert [item["id"] for item in ours] == [f"reco-museum-{tag}"]
    item = ours[0]
    assert item["distance_km"] == pytest.approx(1.112, abs=0.01)
    parts = item["components"]
    assert parts["preference"] == 1.0 and parts["rating"] == pytest.approx(0.96)
    assert item["score"] == pytest.approx(
        parts["preference"] * 0.6 + parts["rating"] * 0.2 + parts["popularity"] * 0.1
        + parts["proximity"] * 0.1
    )  # fmt: skip

    client.post("/reviews", json={"place_id": f"reco-museum-{tag}", "rating": 5},
                headers=alice.headers)  # fmt: skip
    unreviewed = client.get(
        "/recommendations", params=params | {"exclude_reviewed": True}, headers=alice.headers
    ).json()
    assert all(tag not in item["id"] for item in unreviewed["items"])


@pytest.mark.parametrize(
    "params",
    [
        {"lat": 0, "lng": 0, "radius_km": 51},
        {"lat": 0, "lng": 0, "radius_km": 0},
        {"lat": 95, "lng": 0},
        {"lat": 0, "lng": 0, "limit": 101},
        {"lat": 0, "lng": 0, "category": "spaceport"},
        {"lng": 0},
    ],
)
def test_invalid_recommendation_requests_are_422(
    client: TestClient, params: dict[str, object]
) -> None:
    user = new_account(client)
    response = client.get("/recommendations", params=params, headers=user.headers)
    assert response.status_code == 422


def test_recommendations_need_a_login(client: TestClient) -> None:
    assert client.get("/recommendations", params={"lat": 0, "lng": 0}).status_code == 401
