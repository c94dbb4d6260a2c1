"""Recommendation latency and throughput, ours against the document's, and their recall.

Speed: pgbench runs both scripts (`planwise.bench.sql`) back to back in one run, at 1
and 2 clients, each after a short warm-up, on the same random requests (same seed).

Correctness: for the first requests of the same table, as the request's user:
- truth = `geodesic_ground_truth` (the service's full scan: every preferred-category place
  whose great-circle distance is ≤ 5 km), ranked by the document's own weights with that
  exact distance, ties by distance then id: the true top-k for every k;
- recall@k = |returned top-k ∩ true top-k| / |true top-k| (k = 20, what the API serves;
  k = 100, the most it serves). Ours runs `recommend()`, the API's own code path;
- the document's query runs as written with LIMIT large enough to return every place it
  considers within 5 km: its first 20 rows are its top-20 (recall@20), and the whole set
  against the truth set is its candidate recall (what its flat distance loses).
Requests with no preferred place within 5 km have no recall and are only counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import create_engine, pool, text
from sqlmodel import Session

from planwise.bench import pgbench, sql
from planwise.bench.data import BenchDatabase, request_rows
from planwise.bench.machine import load_average
from planwise.bench.reference import document_reference_recommendations, geodesic_ground_truth
from planwise.db.engine import sqlalchemy_url
from planwise.db.session import set_acting_user
from planwise.recommendations.service import recommend

RADIUS_KM = 5.0
DOCUMENT_LIMIT_FOR_RECALL = 10_000_000
"""More than any 5 km circle holds: the document's query then returns its whole set."""

RANKED_TRUTH_SQL = """
SELECT pl.id
FROM place pl
JOIN preference up ON up.category = pl.category AND up.user_id = planwise_acting_user_id()
CROSS JOIN LATERAL (
    SELECT ST_DistanceSphere(
               ST_SetSRID(ST_MakePoint(pl.lng, pl.lat), 4326),
               ST_SetSRID(ST_MakePoint(:lng, :lat), 4326)
           ) / 1000.0 AS distance_km
) d
WHERE pl.id = ANY(:ids)
ORDER BY up.rating * 0.6
         + coalesce(pl.rating, 0) / 5 * 0.2
         + least(1.0, log(coalesce(pl.user_ratings_total, 0) + 1) / 10)::double precision * 0.1
         + (1 - least(1.0, d.distance_km / :radius_km))::double precision * 0.1 DESC,
         d.distance_km, pl.id
"""
"""The truth set in score order: the document's weights, written as `recommend_places`
computes them (same expressions, so the same floating-point values), exact distance."""


def measure(
    db: BenchDatabase, script: str, *, clients: int, seconds: float, warmup: float,
    variables: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    """One pgbench figure after an unrecorded warm-up, with the load average around it."""
    if warmup > 0:
        pgbench.run(db.app_url, script, clients=clients, seconds=warmup, variables=variables,
                    log=False)  # fmt: skip
    before = load_average()
    result = pgbench.run(db.app_url, script, clients=clients, seconds=seconds, variables=variables)
    return {**result, "load_average": [before, load_average()]}


def latency(
    db: BenchDatabase,
    *,
    seconds: float,
    warmup: float,
    requests: int,
    clients: tuple[int, ...] = (1, 2),
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """p50/p95/p99 and queries/s of both queries at each client count, side by side."""
    variables = {**sql.VARIABLES, "requests": str(requests)}
    runs: dict[str, dict[str, Any]] = {name: {} for name in sql.SCRIPTS}
    for count in clients:
        for name, script in sql.SCRIPTS.items():
            progress(f"pgbench {name} query, {count} client(s), {seconds:g} s")
            runs[name][f"c{count}"] = measure(db, script, clients=count, seconds=seconds,
                                              warmup=warmup, variables=variables)  # fmt: skip
    speedup: dict[str, float | None] = {}
    for count in clients:
        ours, document = (runs[name][f"c{count}"]["tps"] for name in ("ours", "document"))
        speedup[f"c{count}"] = round(ours / document, 1) if document else None
    return {**runs, "throughput_ratio": speedup, "requests": requests}


def _recall(found: list[str], truth: list[str]) -> float:
    return len(set(found) & set(truth)) / len(truth)


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4) if values else float("nan")


def _check(session: Session, lat: float, lng: float) -> dict[str, Any] | None:
    """One request's recall figures, as the acting user; None when no place qualifies."""
    truth_set = geodesic_ground_truth(session, lat=lat, lng=lng, radius_km=RADIUS_KM)
    if not truth_set:
        return None
    ranked = session.execute(
        text(RANKED_TRUTH_SQL),
        {"lat": lat, "lng": lng, "radius_km": RADIUS_KM, "ids": sorted(truth_set)},
    )
    truth = [str(place_id) for place_id in ranked.scalars()]
    assert set(truth) == truth_set, "ranking lost places"
    ours20 = [item.id for item in recommend(session, lat=lat, lng=lng, limit=20).items]
    ours100 = [item.id for item in recommend(session, lat=lat, lng=lng, limit=100).items]
    document = [
        row.id
        for row in document_reference_recommendations(
            session, lat=lat, lng=lng, limit=DOCUMENT_LIMIT_FOR_RECALL
        )
    ]
    return {
        "truth": len(truth),
        "ours20": _recall(ours20, truth[:20]),
        "ours100": _recall(ours100, truth[:100]),
        "ours20_same_order": ours20 == truth[:20],
        "document20": _recall(document[:20], truth[:20]),
        "document_candidates": _recall(document, truth),
        "document_outside": len(set(document) - truth_set),
    }


def recall(
    db: BenchDatabase, *, samples: int, progress: Callable[[str], None] = print
) -> dict[str, Any]:
    """Recall of both queries against exact geodesic ground truth (module docstring)."""
    engine = create_engine(sqlalchemy_url(db.app_url), poolclass=pool.NullPool)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    empty = 0
    try:
        with Session(engine) as session:
            for number, request in enumerate(request_rows(db, samples), 1):
                if number % 25 == 0:
                    progress(f"recall: {number}/{samples} requests")
                with session.begin():
                    set_acting_user(session, request.user_id)
                    row = _check(session, request.lat, request.lng)
                if row is None:
                    empty += 1
                else:
                    rows.append({"n": request.n, "lat": request.lat, **row})
    finally:
        engine.dispose()

    def band(low: float, high: float) -> dict[str, Any]:
        chosen = [row for row in rows if low <= abs(row["lat"]) < high]
        return {
            "requests": len(chosen),
            "document20": _mean([row["document20"] for row in chosen]),
            "document_candidates": _mean([row["document_candidates"] for row in chosen]),
        }

    truth_sizes = sorted(row["truth"] for row in rows)
    return {
        "requests": len(rows) + empty,
        "requests_with_truth": len(rows),
        "requests_without_places": empty,
        "truth_size": {
            "min": truth_sizes[0] if truth_sizes else 0,
            "median": truth_sizes[len(truth_sizes) // 2] if truth_sizes else 0,
            "max": truth_sizes[-1] if truth_sizes else 0,
        },
        "ours_recall_at_20": _mean([row["ours20"] for row in rows]),
        "ours_recall_at_20_min": min((row["ours20"] for row in rows), default=float("nan")),
        "ours_recall_at_100": _mean([row["ours100"] for row in rows]),
        "ours_same_top20_order": sum(row["ours20_same_order"] for row in rows),
        "document_recall_at_20": _mean([row["document20"] for row in rows]),
        "document_recall_at_20_min": min((row["document20"] for row in rows), default=float("nan")),
        "document_candidate_recall": _mean([row["document_candidates"] for row in rows]),
        "document_places_outside_5km": sum(row["document_outside"] for row in rows),
        "document_by_latitude": {
            "|lat| < 30": band(0, 30),
            "30 ≤ |lat| < 50": band(30, 50),
            "|lat| ≥ 50": band(50, 91),
        },
        "seconds": round(time.perf_counter() - started, 1),
        "definition": (
            "truth: geodesic_ground_truth (full scan, great-circle distance ≤ 5 km, "
            "preferred categories) ranked by the document's weights with the exact "
            "distance; recall@k = |returned top-k ∩ true top-k| / |true top-k|; "
            "document candidate recall = share of the truth set its flat-degree 5 km "
            "filter keeps (its query as written, LIMIT large enough)"
        ),
    }
