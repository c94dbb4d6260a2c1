"""Demo data: deterministic generation, idempotent loading, users made the API's way."""

from __future__ import annotations

import math
import os
import subprocess
from collections.abc import Callable

import pytest

from planwise.demo import data
from planwise.demo.cli import load_demo
from planwise.places.categories import CATEGORIES, category_for
from planwise.users.security import verify_password
from tests.support.cli import PLANWISE
from tests.support.databases import DatabaseUnderTest, connect

SET_USER = "SELECT set_config('app.user_id', %s, true)"
TABLES = ("place", '"user"', "preference", "review")


@pytest.fixture
def demo_db(
    create_migrated_database: Callable[[str], DatabaseUnderTest],
) -> DatabaseUnderTest:
    return create_migrated_database("planwise_demo")


def counts(db: DatabaseUnderTest) -> dict[str, int]:
    with connect(db.admin_url) as conn:
        result = {}
        for table in TABLES:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert row is not None
            result[table] = int(str(row[0]))
        return result


def user_id(db: DatabaseUnderTest, username: str) -> int:
    with connect(db.app_url) as conn:
        row = conn.execute("SELECT id FROM planwise_find_login(%s)", (username,)).fetchone()
        assert row is not None
        return int(str(row[0]))


# -- generation ----------------------------------------------------------------------------


def test_generation_is_deterministic_and_grows_by_prefix() -> None:
    assert data.places(60) == data.places(60)
    assert data.places(60)[:25] == data.places(25)
    for user in data.DEMO_USERS:
        assert data.preferences(user) == data.preferences(user)
        assert data.reviews(user, data.places(120)) == data.reviews(user, data.places(120))


def test_every_category_has_a_kind_whose_types_map_back_to_it() -> None:
    assert set(data.KINDS) == set(CATEGORIES)
    for category, kind in data.KINDS.items():
        assert category_for(kind.types) == category
        assert kind.names and kind.weight > 0


def test_places_are_realistic() -> None:
    records = data.places(2000)
    assert len({record["place_id"] for record in records}) == 2000
    assert all(record["place_id"].startswith("ChIJdemo") for record in records)
    assert len({category_for(record["types"]) for record in records}) == len(CATEGORIES)
    for index, record in enumerate(records):
        city = data.city_of(index)
        location = record["geometry"]["location"]
        km_north = (location["lat"] - city.lat) * data.KM_PER_DEGREE_LATITUDE
        km_east = (location["lng"] - city.lng) * data.KM_PER_DEGREE_LATITUDE
        km_east *= math.cos(math.radians(city.lat))
        assert math.hypot(km_north, km_east) < 8 * data.SPREAD_KM, (city.name, record)
    ratings = [record["rating"] for record in records if "rating" in record]
    assert len(ratings) > 0.9 * len(records)
    assert sum(3.5 <= rating <= 4.8 for rating in ratings) > 0.8 * len(ratings)
    totals = sorted(record["user_ratings_total"] for record in records if "rating" in record)
    assert totals[len(totals) // 2] < totals[-1] / 20, "a long tail of very popular places"


def test_users_have_four_to_six_preferences_and_reviews_in_their_city() -> None:
    records = data.places(600)
    by_id = {record["place_id"]: index for index, record in enumerate(records)}
    for user in data.DEMO_USERS:
        preferences = data.preferences(user)
        assert 4 <= len(preferences) <= 6
        assert all(0 <= rating <= 1 and category in CATEGORIES
                   for category, rating in preferences.items())  # fmt: skip
        reviews = data.reviews(user, records)
        assert 3 <= len(reviews) <= 6
        for review in reviews:
            assert 1 <= review.rating <= 5 and review.comment
            assert data.city_of(by_id[review.place_id]).name == user.city


# -- loading -------------------------------------------------------------------------------


def test_load_is_idempotent(demo_db: DatabaseUnderTest) -> None:
    first = load_demo(demo_db.admin_url, demo_db.app_url, 240)
    assert (first.places.inserted, first.places.rejected) == (240, [])
    assert len(first.created_users) == len(data.DEMO_USERS)
    assert first.preferences > 0 and first.reviews > 0
    after_first = counts(demo_db)
    assert after_first["place"] == 240 and after_first['"user"'] == len(data.DEMO_USERS)
    assert after_first["preference"] == first.preferences
    assert after_first["review"] == first.reviews

    second = load_demo(demo_db.admin_url, demo_db.app_url, 240)
    assert (second.places.inserted, second.places.updated, second.places.unchanged) == (
        0,
        0,
        240,
    )
    assert second.created_users == [] and len(second.existing_users) == len(data.DEMO_USERS)
    assert counts(demo_db) == after_first


def test_demo_users_log_in_and_see_only_their_own_rows(demo_db: DatabaseUnderTest) -> None:
    load_demo(demo_db.admin_url, demo_db.app_url, 120)
    amelie, oliver = data.DEMO_USERS[0], data.DEMO_USERS[1]
    amelie_id = user_id(demo_db, amelie.username)
    with connect(demo_db.app_url) as conn:
        login = conn.execute(
            "SELECT hashed_password, role, is_active FROM planwise_find_login(%s)",
            (amelie.username,),
        ).fetchone()
        assert login is not None
        assert verify_password(data.DEMO_PASSWORD, str(login[0]))
        assert (login[1], login[2]) == ("user", True)

        assert conn.execute("SELECT count(*) FROM preference").fetchone() == (0,)
        conn.execute(SET_USER, (str(amelie_id),))
        preferences = {
            str(category): float(str(rating))
            for category, rating in conn.execute("SELECT category, rating FROM preference")
        }
        assert preferences == data.preferences(amelie)
        owners = {row[0] for row in conn.execute("SELECT user_id FROM review").fetchall()}
        assert owners == {amelie_id}
        oliver_id = user_id(demo_db, oliver.username)
        assert conn.execute(
            "SELECT count(*) FROM preference WHERE user_id = %s", (oliver_id,)
        ).fetchone() == (0,)
        conn.rollback()


def test_cli_load_prints_the_logins(demo_db: DatabaseUnderTest) -> None:
    environment = {
        **os.environ,
        "COLUMNS": "200",
        "DATABASE_URL": demo_db.app_url,
        "MIGRATION_DATABASE_URL": demo_db.admin_url,
    }
    command = [PLANWISE, "demo", "load", "--places", "60"]
    runs = [
        subprocess.run(
            command, capture_output=True, text=True, env=environment,
            stdin=subprocess.DEVNULL, check=False, timeout=180,
        )
        for _ in range(2)
    ]  # fmt: skip
    for result in runs:
        assert result.returncode == 0, result.stderr
        assert f"{data.DEMO_USERS[0].username} / {data.DEMO_PASSWORD}" in result.stdout
        assert "Reykjavik" in result.stdout
    assert "60 new" in runs[0].stdout and "5 created" in runs[0].stdout
    assert "60 unchanged" in runs[1].stdout and "5 already there" in runs[1].stdout

    too_few = subprocess.run(
        [PLANWISE, "demo", "load", "--places", "3"], capture_output=True, text=True,
        env=environment, stdin=subprocess.DEVNULL, check=False, timeout=60,
    )  # fmt: skip
    assert too_few.returncode == 2
