"""Density: the same recommendation on two data sets of one size, one ten times denser.

The sparse set is the bench's own (`planwise_bench`); the dense one (`<database>_dense`)
has as many places around every tenth city (`world.DENSE_CITY_STRIDE`): ten times the
places per city, so ten times the candidates near a request, with the table, the indexes
and the requests' shape unchanged. pgbench runs, on each, at 1 and 2 clients:

- ours: the API's one statement (`sql.OURS_SCRIPT`, `planwise_recommend_for`);
- previous: the same statement with the recommendation SQL as it was before migration
  a1c2e3f4a5b6 (the same early-stopping top-k, read from the btree_gist GiST
  `ix_place_category_band_location`), installed into the `bench` schema from the
  migrations' own text, with that index built for the run and dropped afterwards, so
  every run shows the lever side by side on the same data.

The figure is dense / sparse latency (p50, p99) at each client count; the goal is ≤ 1.5x.
What the work grows with is counted too: preferred places within 5 km per request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from planwise.bench import sql
from planwise.bench.data import BenchDatabase, connect_admin
from planwise.bench.recommend import measure
from planwise.db.migrations import revision_module

SCRIPTS = {
    "ours": sql.OURS_SCRIPT,
    "previous": sql.OURS_SCRIPT.replace("planwise_recommend_for(", "bench.recommend_for_previous("),
}
PREVIOUS_PLACES = "20240104_9f0a1b2c3d4e_recommendation_checks_gate_the_statement.py"
PREVIOUS_INDEX_REVISION = "20240101_5a6b7c8d9e0f_recommendations_stop_early.py"
PREVIOUS_INDEX = "ix_place_category_band_location"
PREVIOUS_REQUEST = "20231228_f3a4b5c6d7e8_recommendations_honour_token_revocation.py"
CANDIDATE_SAMPLE = 100
"""Requests whose preferred places within 5 km are counted (index-served, cheap)."""

CANDIDATES_SQL = """
SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY found), min(found), max(found)
FROM (
    SELECT (SELECT count(*)
            FROM preference p
            CROSS JOIN planwise_search_boxes(q.lat, q.lng, 5) b
            JOIN place pl ON pl.category = p.category AND point(pl.lng, pl.lat) <@ b.box
            WHERE p.user_id = q.user_id
              AND planwise_sphere_distance_m(pl.lat, pl.lng, q.lat, q.lng) <= 5000) AS found
    FROM bench.request q WHERE q.n <= %s
) counted
"""


def previous_sql() -> str:
    """`bench.recommend_places_previous` and `bench.recommend_for_previous`: the request
    as it ran before a1c2e3f4a5b6, from revisions 9f0a1b2c3d4e and f3a4b5c6d7e8."""
    places = str(revision_module(PREVIOUS_PLACES).recommend_places_sql())
    request = str(revision_module(PREVIOUS_REQUEST).RECOMMEND_FOR)
    places = places.replace("recommend_places.", "recommend_places_previous.").replace(
        "CREATE OR REPLACE FUNCTION recommend_places(",
        "CREATE OR REPLACE FUNCTION bench.recommend_places_previous(",
        1,
    )
    request = request.replace(
        "CREATE FUNCTION planwise_recommend_for(",
        "CREATE OR REPLACE FUNCTION bench.recommend_for_previous(", 1,
    ).replace("FROM recommend_places(", "FROM bench.recommend_places_previous(")  # fmt: skip
    return places + ";\n" + request


def _install_previous(db: BenchDatabase, progress: Callable[[str], None]) -> None:
    """The previous SQL and the index it reads (the migrations' own text: no user input)."""
    index = str(revision_module(PREVIOUS_INDEX_REVISION).CREATE_INDEX)
    with connect_admin(db, autocommit=True) as conn:
        conn.execute(previous_sql())
        progress(f"density: building the previous SQL's index in {db.name}")
        conn.execute(index.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1))
        conn.execute("ANALYZE place")


def _drop_previous_index(db: BenchDatabase) -> None:
    with connect_admin(db, autocommit=True) as conn:
        conn.execute(f"DROP INDEX IF EXISTS {PREVIOUS_INDEX}")


def _candidates(db: BenchDatabase) -> dict[str, int]:
    with connect_admin(db, autocommit=True) as conn:
        row = conn.execute(CANDIDATES_SQL, (CANDIDATE_SAMPLE,)).fetchone()
    assert row is not None
    median, low, high = row
    return {"requests": CANDIDATE_SAMPLE, "median": int(median or 0), "min": int(low or 0),
            "max": int(high or 0)}  # fmt: skip


def run(
    sparse: BenchDatabase,
    dense: BenchDatabase,
    *,
    seconds: float,
    warmup: float,
    requests: int,
    clients: tuple[int, ...] = (1, 2),
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Both data sets, interleaved (each client count: sparse then dense, ours then
    previous) so a change in the machine's load hits both alike; dense / sparse ratios."""
    databases = {"sparse": sparse, "dense": dense}
    results: dict[str, Any] = {}
    try:
        for label, db in databases.items():
            _install_previous(db, progress)
            results[label] = {"database": db.name, "candidates_within_5km": _candidates(db),
                              **{name: {} for name in SCRIPTS}}  # fmt: skip
        variables = {**sql.VARIABLES, "requests": str(requests)}
        for count in clients:
            for label, db in databases.items():
                for name, script in SCRIPTS.items():
                    progress(f"density: {label}, {name}, {count} client(s), {seconds:g} s")
                    results[label][name][f"c{count}"] = measure(
                        db, script, clients=count, seconds=seconds, warmup=warmup,
                        variables=variables,
                    )  # fmt: skip
    finally:
        for db in databases.values():
            _drop_previous_index(db)
    ratios: dict[str, Any] = {}
    for name in SCRIPTS:
        for count in clients:
            level = f"c{count}"
            low, high = results["sparse"][name][level], results["dense"][name][level]
            ratios.setdefault(name, {})[level] = {
                key: round(high[key] / low[key], 2) if low[key] else None
                for key in ("p50_ms", "p99_ms")
            }
    return {**results, "dense_over_sparse": ratios, "requests": requests, "clients": list(clients)}
