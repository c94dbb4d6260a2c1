"""The early-stopping top-k (migration 5a6b7c8d9e0f) is exact: on dense data, with ties
and with ratings no validation would let in, `recommend_places()` returns exactly what
scoring every preferred place in the circle returns, in the same order."""

from __future__ import annotations

import math
import random

import pytest
from sqlalchemy import text
from sqlmodel import Session

from planwise.db.session import set_acting_user
from tests.support.factories import make_preference, make_review, make_user
from tests.test_recommendations import GeneratedPlace, destination, insert_places

PREFERENCES = {"museum": 0.9, "park": 0.85, "cafe": 0.4, "bar": 0.9}
CLUSTERS = {
    "tokyo": (35.6812, 139.7671),
    "taveuni_on_180": (-16.8400, 180.0),  # the circle straddles the antimeridian
    "near_south_pole": (-89.9800, 45.0),  # the circle contains the pole
    "hammerfest": (70.6634, 23.6821),
    "reykjavik": (64.1466, -21.9426),  # few of the top categories, many of the others
}
RARE_TOP_CATEGORIES = {"reykjavik": (1, 8, 8, 1, 8)}
"""Weights of (*PREFERENCES, "restaurant") per cluster; elsewhere all alike. There step 1
finds the top categories whole, often fewer than k of them (no bound: the whole circle),
and the plentiful others are read by bands."""
PLACES_PER_CLUSTER = 1400
ODD_RATINGS = (None, -3.0, 7.0, 1e10, math.inf, -math.inf, math.nan, 5.0, 0.0)

FULL_SCORING_SQL = text(
    """
    SELECT id, score FROM (
        SELECT pl.id, d.km,
               p.rating * 0.6 + coalesce(pl.rating, 0) / 5 * 0.2
               + least(1.0, log(coalesce(pl.user_ratings_total, 0) + 1) / 10)::double precision
                 * 0.1
               + (1 - least(1.0, d.km / :radius))::double precision * 0.1 AS score
        FROM place pl
        JOIN preference p ON p.category = pl.category
                         AND p.user_id = current_setting('app.user_id')::integer
        CROSS JOIN LATERAL (
            SELECT planwise_sphere_distance_m(pl.lat, pl.lng, :lat, :lng) / 1000.0 AS km
        ) d
        WHERE d.km * 1000.0 <= :radius * 1000.0
          AND (CAST(:only AS text) IS NULL OR pl.category = :only)
          AND NOT (:exclude AND EXISTS (
              SELECT FROM review r WHERE r.place_id = pl.id AND r.user_id = p.user_id))
    ) scored
    ORDER BY score DESC, km, id
    LIMIT :k
    """
)
"""Every preferred place within the radius scored, no index, no bound: the answer."""

RECOMMEND_SQL = text(
    "SELECT id, score FROM recommend_places(:lat, :lng, :radius, :k, :exclude, :only)"
)


def dense_world(seed: int = 13) -> list[GeneratedPlace]:
    """Clusters of 1,400 places within 6 km, a third on a few repeated (rating, total)
    pairs and spots (ties in score and distance), some with ratings outside 1..5."""
    rng = random.Random(seed)
    places = []
    for name, (lat, lng) in CLUSTERS.items():
        for n in range(PLACES_PER_CLUSTER):
            if n % 3 == 0:
                plat, plng = destination(lat, lng, 45.0 * (n % 8), 0.5 * (n % 5))
                rating, total = 4.0 + 0.5 * (n % 2), 100
            else:
                plat, plng = destination(lat, lng, rng.uniform(0, 360), 6 * math.sqrt(rng.random()))
                rating = round(min(5.0, max(1.0, rng.gauss(4.2, 0.45))), 1)
                total = int(rng.lognormvariate(5, 2))
            if n % 97 == 0:
                rating = ODD_RATINGS[(n // 97) % len(ODD_RATINGS)]
            if n % 89 == 0:
                total = rng.choice((None, 0, 2_147_483_646))
            weights = RARE_TOP_CATEGORIES.get(name)
            category = rng.choices((*PREFERENCES, "restaurant"), weights=weights)[0]
            places.append(GeneratedPlace(f"k-{name}-{n:05d}", plat, plng, category, rating, total))
    return places


def test_top_k_equals_scoring_every_place(db_session: Session) -> None:
    """Limits from 1 to 100 (so the nearest-first step both runs out and stops), radii
    from 0.5 to 50 km, one category, excluded reviews; on every cluster, whose many
    places of the top category make the second step read only a few bands."""
    places = dense_world()
    insert_places(db_session, places)
    user = make_user(db_session)
    for category, preference in PREFERENCES.items():
        make_preference(db_session, user, category, preference)
    for place in places[::7]:
        db_session.execute(
            text("INSERT INTO review (user_id, place_id, rating) VALUES (:u, :p, 4)"),
            {"u": user.id, "p": place.id},
        )
    assert user.id is not None
    set_acting_user(db_session, user.id)
    db_session.execute(text("ANALYZE place"))
    cases = [(k, radius, False, None) for k in (1, 5, 20, 100) for radius in (0.5, 2.0, 5.0)]
    cases += [(20, 50.0, False, None), (20, 5.0, True, None), (10, 5.0, False, "cafe"),
              (20, 5.0, True, "park")]  # fmt: skip
    compared = 0
    for name, (lat, lng) in CLUSTERS.items():
        for k, radius, exclude, only in cases:
            params = {"lat": lat, "lng": lng, "radius": radius, "k": k, "exclude": exclude,
                      "only": only}  # fmt: skip
            truth = [tuple(row) for row in db_session.execute(FULL_SCORING_SQL, params)]
            ours = [tuple(row) for row in db_session.execute(RECOMMEND_SQL, params)]
            assert [r[0] for r in ours] == [r[0] for r in truth], (name, params)
            assert [r[1] for r in ours] == pytest.approx([r[1] for r in truth], nan_ok=True)
            compared += len(truth)
    assert compared > 1500


def test_reviewed_top_places_give_way_to_the_next(db_session: Session) -> None:
    """The nearest-first step skips reviewed places too, so its bound holds with them."""
    user = make_user(db_session)
    make_preference(db_session, user, "museum", 0.9)
    lat, lng = CLUSTERS["tokyo"]
    rows = [GeneratedPlace(f"r-{n:03d}", *destination(lat, lng, n, 0.01 * n), "museum", 5.0, 10_000)
            for n in range(120)]  # fmt: skip
    insert_places(db_session, rows)
    assert user.id is not None
    set_acting_user(db_session, user.id)
    from planwise.places.models import Place

    for row in rows[:30]:
        place = db_session.get(Place, row.id)
        assert place is not None
        make_review(db_session, user, place)
    params = {"lat": lat, "lng": lng, "radius": 5.0, "k": 20, "exclude": True, "only": None}
    ours = [row[0] for row in db_session.execute(RECOMMEND_SQL, params)]
    assert ours == [f"r-{n:03d}" for n in range(30, 50)]
