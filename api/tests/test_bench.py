"""`planwise bench all --smoke`: the whole benchmark pipeline at a tiny size.

Benchmarks print figures rather than pass or fail on speed; this checks that every
section really ran (pgbench, wrk against a served API, import, backup and restore), that
the figures are consistent, and that correctness holds: our recall against geodesic
ground truth is exactly 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from planwise.bench import world
from planwise.bench.pgbench import Latencies
from planwise.db.cluster import Cluster
from tests.support.cli import planwise, steps_shown

SMOKE_DATABASE = "planwise_bench_smoke"


@pytest.fixture
def smoke_results(cluster: Cluster, tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "results"
    for suffix in ("", "_dense", "_import", "_restore"):
        name = f"{SMOKE_DATABASE}{suffix}"
        cluster.drop_database(name)


@pytest.mark.slow
def test_smoke_pipeline_measures_every_section(smoke_results: Path, tmp_path: Path) -> None:
    result = planwise(
        "bench", "all", "--smoke", "--database", SMOKE_DATABASE,
        "--results-dir", str(smoke_results), "--work-dir", str(tmp_path / "work"),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    stages = ["data", "recommend", "density", "api", "import", "backup"]
    assert steps_shown(result.stderr) == [f"bench {stage}" for stage in stages]  # its progress
    results = json.loads((smoke_results / "latest.json").read_text())
    run = results["runs"]["2000"]

    assert run["data"]["places"]["places"] == 2000 and run["data"]["users"]["preferences"] == 1000
    for name in ("ours", "document"):
        for level in ("c1", "c2"):
            measured = run["recommend"][name][level]
            assert measured["tps"] > 0 and measured["transactions"] > 0
            assert measured["p50_ms"] <= measured["p95_ms"] <= measured["p99_ms"]
    recall = run["recall"]
    assert recall["requests_with_truth"] > 0
    assert recall["ours_recall_at_20"] == 1.0 and recall["ours_recall_at_100"] == 1.0
    assert 0 <= recall["document_recall_at_20"] <= 1

    density = run["density"]
    assert run["data_dense"]["city_stride"] == world.DENSE_CITY_STRIDE
    for label in ("sparse", "dense"):
        assert density[label]["candidates_within_5km"]["requests"] > 0
        for name in ("ours", "previous"):
            for level in ("c1", "c2"):
                measured = density[label][name][level]
                assert measured["tps"] > 0 and measured["p50_ms"] <= measured["p99_ms"]
    assert density["dense_over_sparse"]["ours"]["c1"]["p50_ms"] > 0

    level = run["api"]["levels"]["c1"]
    assert level["api"]["requests"] > 0 and level["api"]["errors"] == 0
    assert level["pgbench"]["tps"] > 0 and level["api_share_of_sql_throughput"] > 0

    assert results["import"]["records"] == 2000
    assert results["import"]["reimport_unchanged"]["unchanged"] == 2000
    assert run["backup"]["rows"]["place"] == 2000 and run["backup"]["restore_seconds"] > 0

    table = (smoke_results / "latest.md").read_text()
    assert "recall@20" in table and "PostgreSQL 15" in table
    assert "dense / sparse latency p50, p99, 1 client(s)" in table
    assert results["machine"]["cores"] >= 1


def test_generated_places_are_deterministic_and_import_shaped() -> None:
    first = list(world.places(30))
    assert first == list(world.places(30))
    assert list(world.places(30, start=10)) == first[10:]
    for record in first:
        location = record["geometry"]["location"]
        assert -60 <= location["lat"] <= 71 and -180 <= location["lng"] <= 180
        assert record["place_id"].startswith("ChIJ") and record["types"]
    users = list(world.users(50))
    assert all(len(user.preferences) == world.PREFERENCES_PER_USER for user in users)
    assert len({category for user in users for category in user.preferences}) > 10


def test_the_dense_world_has_ten_times_the_places_per_city() -> None:
    """Same generator, every tenth city: a tenth of the cities, as many places."""

    def cities(stride: int) -> set[str]:
        return {
            record["formatted_address"].split(", ", 1)[1]
            for record in world.places(2000, city_stride=stride)
        }

    sparse, dense = cities(1), cities(world.DENSE_CITY_STRIDE)
    assert dense < set(city.city.name + ", " + city.city.country for city in world.CITY_MODELS)
    assert len(dense) <= len(world.CITY_MODELS) // world.DENSE_CITY_STRIDE + 1 < len(sparse)
    assert list(world.places(30)) == list(world.places(30, city_stride=1))


def test_percentiles_are_nearest_rank() -> None:
    latencies = Latencies([float(n) for n in range(1, 101)])
    assert latencies.percentile(50) == 50 and latencies.percentile(99) == 99
    assert Latencies([7.0]).percentile(99) == 7.0
