"""`bench/results/latest.json` and `latest.md`: every figure, its goal, and the machine.

Each `planwise bench …` command merges its section into latest.json (so `bench recommend`
alone does not lose the import figures), then the figure table is recomputed from all
sections and both files are rewritten. Runs are kept per data-set size, so the 1M and 10M
figures sit side by side and the scaling rows appear once both exist.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planwise.bench.machine import now
from planwise.config import REPO_ROOT

RESULTS_DIR = REPO_ROOT / "bench" / "results"
ONE_MILLION = 1_000_000
DOCUMENT_GOAL = 300
"""Our throughput over the document's query at 1M places (issue 13; it was 100)."""


@dataclass(frozen=True)
class Figure:
    scope: str
    figure: str
    value: str
    goal: str = "—"
    met: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"scope": self.scope, "figure": self.figure, "value": self.value,
                "goal": self.goal, "met": self.met}  # fmt: skip


def load(results_dir: Path) -> dict[str, Any]:
    path = results_dir / "latest.json"
    if path.exists():
        loaded: dict[str, Any] = json.loads(path.read_text())
        return loaded
    return {"runs": {}}


def _size_label(places: int) -> str:
    if places % ONE_MILLION == 0:
        return f"{places // ONE_MILLION}M places"
    if places % 1000 == 0:
        return f"{places // 1000}k places"
    return f"{places} places"


def _ms(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.2f} ms"


def _rate(value: float, unit: str = "/s") -> str:
    return f"{value:,.0f}{unit}" if value >= 100 else f"{value:,.2f}{unit}"


def _skipped(section: dict[str, Any]) -> str | None:
    skipped = section.get("skipped")
    return str(skipped) if skipped else None


def _recommend_figures(scope: str, places: int, section: dict[str, Any]) -> list[Figure]:
    figures = []
    for level in sorted(section["ours"], key=lambda key: int(key[1:])):
        clients = level[1:]
        for name, label in (("ours", "Planwise"), ("document", "document's query")):
            run = section[name][level]
            figures.append(Figure(
                scope, f"{label}: latency p50 / p95 / p99, {clients} client(s)",
                f"{_ms(run['p50_ms'])} / {_ms(run['p95_ms'])} / {_ms(run['p99_ms'])} "
                f"(n={run['transactions']:,})",
            ))  # fmt: skip
            figures.append(Figure(scope, f"{label}: queries/s, {clients} client(s)",
                                  _rate(run["tps"])))  # fmt: skip
        ratio = section["throughput_ratio"].get(level)
        goal_applies = places == ONE_MILLION
        figures.append(Figure(
            scope, f"throughput ours / document, {clients} client(s)",
            "n/a" if ratio is None else f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.2f}x",
            f"≥ {DOCUMENT_GOAL}x" if goal_applies else "—",
            (ratio is not None and ratio >= DOCUMENT_GOAL) if goal_applies else None,
        ))  # fmt: skip
    return figures


DENSITY_GOAL = 1.5
"""Dense / sparse latency, p50 and p99 (issue 13)."""


def _density_figures(scope: str, section: dict[str, Any]) -> list[Figure]:
    scope = f"{scope}, sparse vs dense"
    counts = {label: section[label]["candidates_within_5km"] for label in ("sparse", "dense")}
    figures = [Figure(
        scope, "preferred places within 5 km per request, median (min / max), sparse / dense",
        " / ".join(f"{c['median']:,} ({c['min']:,} / {c['max']:,})" for c in counts.values()),
    )]  # fmt: skip
    names = {"ours": "Planwise", "previous": "previous SQL (before a1c2e3f4a5b6)"}
    for level in [f"c{count}" for count in section["clients"]]:
        clients = level[1:]
        for name, label in names.items():
            sparse, dense = section["sparse"][name][level], section["dense"][name][level]
            figures.append(Figure(
                scope, f"{label}: p50 / p99 sparse → dense, {clients} client(s)",
                f"{_ms(sparse['p50_ms'])} / {_ms(sparse['p99_ms'])} → "
                f"{_ms(dense['p50_ms'])} / {_ms(dense['p99_ms'])}; "
                f"{_rate(sparse['tps'])} → {_rate(dense['tps'])}",
            ))  # fmt: skip
            ratio = section["dense_over_sparse"][name][level]
            ours = name == "ours"
            met = None
            if ours and None not in ratio.values():
                met = max(ratio.values()) <= DENSITY_GOAL
            figures.append(Figure(
                scope, f"{label}: dense / sparse latency p50, p99, {clients} client(s)",
                f"{ratio['p50_ms']:.2f}x, {ratio['p99_ms']:.2f}x",
                f"≤ {DENSITY_GOAL}x" if ours else "—", met,
            ))  # fmt: skip
        for label in ("sparse", "dense"):
            ours, previous = (section[label][name][level]["tps"] for name in names)
            figures.append(Figure(
                scope, f"{label}: throughput ours / previous SQL, {clients} client(s)",
                f"{ours / previous:.2f}x" if previous else "n/a",
            ))  # fmt: skip
    return figures


def _recall_figures(scope: str, section: dict[str, Any]) -> list[Figure]:
    sample = f"{section['requests_with_truth']} requests"
    ours20, ours100 = section["ours_recall_at_20"], section["ours_recall_at_100"]
    by_band = ", ".join(
        f"{band}: {values['document20']:.2f}"
        for band, values in section["document_by_latitude"].items()
        if values["requests"]
    )
    return [
        Figure(scope, f"Planwise recall@20 vs geodesic truth ({sample})", f"{ours20:.4f}",
               "1.0", ours20 == 1.0),
        Figure(scope, f"Planwise recall@100 vs geodesic truth ({sample})", f"{ours100:.4f}",
               "1.0", ours100 == 1.0),
        Figure(scope, f"document's query recall@20 ({sample})",
               f"{section['document_recall_at_20']:.4f} "
               f"(min {section['document_recall_at_20_min']:.2f}; {by_band})"),
        Figure(scope, "document's query: share of true 5 km places it considers",
               f"{section['document_candidate_recall']:.4f}"),
        Figure(scope, "preferred places truly within 5 km per request (min / median / max)",
               "{min} / {median} / {max}".format(**section["truth_size"])),
    ]  # fmt: skip


def _api_figures(scope: str, section: dict[str, Any]) -> list[Figure]:
    figures = []
    workers = section.get("workers", 1)
    for level, values in sorted(section["levels"].items(), key=lambda item: int(item[0][1:])):
        connections = int(level[1:])
        api, raw, share = values["api"], values["pgbench"], values["api_share_of_sql_throughput"]
        figures.append(Figure(
            scope, f"API ({workers} worker(s)): req/s, p50 / p99, {connections} connection(s)",
            f"{_rate(api['requests_per_second'])}, {_ms(api['p50_ms'])} / {_ms(api['p99_ms'])}"
            + (f", {api['errors']} errors" if api["errors"] else ""),
            "p99 ≤ 15 ms" if connections == 8 else "—",
            api["p99_ms"] <= 15 and not api["errors"] if connections == 8 else None,
        ))  # fmt: skip
        figures.append(Figure(
            scope, f"same SQL in pgbench: queries/s, p50 / p99, {connections} client(s)",
            f"{_rate(raw['tps'])}, {_ms(raw['p50_ms'])} / {_ms(raw['p99_ms'])}",
        ))  # fmt: skip
        figures.append(Figure(
            scope, f"API share of raw SQL throughput, {connections} connection(s)",
            "n/a" if share is None else f"{share:.0%}",
            "≥ 60 %" if connections == 8 else "—",
            (share is not None and share >= 0.6) if connections == 8 else None,
        ))  # fmt: skip
        cpu = api["api_cpu_ms_per_request"]
        figures.append(Figure(
            scope, f"CPU per request: API / PostgreSQL, {connections} connection(s)",
            f"{cpu:.2f} ms / {api['db_cpu_ms_per_request']:.2f} ms",
            "API ≤ 0.7 ms" if connections == 8 else "—",
            cpu <= 0.7 if connections == 8 else None,
        ))  # fmt: skip
        if "api_peak_rss_mib" in api:  # measured since issue 13
            figures.append(Figure(
                scope, f"largest resident size of an API process, {connections} connection(s)",
                f"{api['api_peak_rss_mib']:,.0f} MiB",
                "≤ 150 MB" if connections == 32 else "—",
                api["api_peak_rss_mib"] * 1024**2 <= 150e6 if connections == 32 else None,
            ))  # fmt: skip
    return figures


def _mib(size: int) -> str:
    return f"{size / 1024**2:,.0f} MiB"


def _backup_figures(scope: str, section: dict[str, Any]) -> list[Figure]:
    figures = [
        Figure(scope, "backup create (pg_dump custom format)",
               f"{section['create_seconds']:.1f} s, dump {_mib(section['dump_bytes'])} "
               f"of a {_mib(section['database_bytes'])} database"),
        Figure(scope, "backup restore (into an empty database)",
               f"{section['restore_seconds']:.1f} s"),
    ]  # fmt: skip
    pitr = section["pitr"]
    if _skipped(pitr):
        figures.append(Figure(scope, "PITR restore", str(pitr["skipped"])))
    else:
        figures.append(Figure(scope, "PITR full backup (pgBackRest)",
                              f"{pitr['pitr_backup_seconds']:.1f} s"))  # fmt: skip
        figures.append(Figure(scope, "PITR restore to a moment (stop, restore, replay, promote)",
                              f"{pitr['pitr_restore_seconds']:.1f} s"))  # fmt: skip
    return figures


def _cores(cpu: dict[str, float]) -> str:
    return ", ".join(f"{name} {cores:.2f}" for name, cores in sorted(cpu.items()))


def _cluster_figures(section: dict[str, Any]) -> list[Figure]:
    """`bench cluster`: one Patroni cluster, its figures side by side."""
    scope = f"cluster of {section['members']}, {_size_label(section['places'])}"
    reads, writes, failover = section["reads"], section["writes"], section["failover"]
    leader, replicas = reads["leader"], reads["replicas"]
    lag = [run["replay_lag"] for mode in ("async", "sync") for run in writes[mode]]
    lag_max = max((item.get("max_ms", 0) for item in lag), default=0)
    lag_bytes = max((item.get("max_bytes", 0) for item in lag), default=0)
    lag_median = statistics.median(item.get("median_ms", 0) for item in lag) if lag else 0
    return [
        Figure(scope, f"recommendations/s, {reads['clients']} clients: two replicas / the "
               "leader alone", f"{replicas['queries_per_second']:,.0f} / "
               f"{leader['queries_per_second']:,.0f} = {reads['ratio']}x"),
        Figure(scope, "CPU cores used per member (postmaster's process tree): leader "
               "alone; two replicas", f"{_cores(leader['cpu_cores_per_member'])}; "
               f"{_cores(replicas['cpu_cores_per_member'])}"),
        Figure(scope, f"inserts/s on the leader, {writes['clients']} clients: sync / async "
               "(median of rounds)", f"{writes['median_tps']['sync']:,.0f} / "
               f"{writes['median_tps']['async']:,.0f} = {writes['sync_over_async']}x"),
        Figure(scope, "standbys' replay lag during the inserts, median / max",
               f"{lag_median:.1f} / {lag_max:.1f} ms (max {lag_bytes:,} bytes)"),
        Figure(scope, f"failover: kill -9 of the leader to a new leader, median / max of "
               f"{len(failover['kills'])}", f"{failover['leader_seconds']['median']:.1f} / "
               f"{failover['leader_seconds']['max']:.1f} s", "≤ 30 s",
               failover["leader_seconds"]["max"] <= 30),
        Figure(scope, "failover: kill -9 to the first write through the read-write URL "
               "(RTO), median / max", f"{failover['writes_again_seconds']['median']} / "
               f"{failover['writes_again_seconds']['max']} s"),
    ]  # fmt: skip


def figures(results: dict[str, Any]) -> list[Figure]:
    table: list[Figure] = []
    runs = results.get("runs", {})
    for size_key in sorted(runs, key=int):
        places = int(size_key)
        scope = _size_label(places)
        run = runs[size_key]
        if "data" in run:
            data = run["data"]
            table.append(Figure(
                scope, "load through the COPY path (places/s)",
                f"{_rate(data['places']['rows_per_second'])} ({data['places']['seconds']:.0f} s); "
                f"indexes {data['index_build_seconds']:.0f} s, VACUUM ANALYZE "
                f"{data['vacuum_analyze_seconds']:.0f} s",
            ))  # fmt: skip
        if "recommend" in run:
            table += _recommend_figures(scope, places, run["recommend"])
        if "recall" in run:
            table += _recall_figures(scope, run["recall"])
        if "density" in run:
            table += _density_figures(scope, run["density"])
        if "api" in run:
            skipped = _skipped(run["api"])
            table += (
                [Figure(scope, "API throughput", skipped)]
                if skipped
                else _api_figures(scope, run["api"])
            )
        if "backup" in run:
            skipped = _skipped(run["backup"])
            table += [Figure(scope, "backup and restore", skipped)] if skipped else (
                _backup_figures(scope, run["backup"])
            )  # fmt: skip
    small, large = runs.get(str(ONE_MILLION), {}), runs.get(str(10 * ONE_MILLION), {})
    if "recommend" in small and "recommend" in large:
        for percentile in ("p50_ms", "p95_ms", "p99_ms"):
            before = small["recommend"]["ours"]["c1"][percentile]
            after = large["recommend"]["ours"]["c1"][percentile]
            ratio = after / before if before else float("nan")
            table.append(Figure(
                "10M vs 1M", f"Planwise latency {percentile[:3]} at 10M / at 1M, 1 client",
                f"{ratio:.2f}x ({_ms(before)} → {_ms(after)})", "≤ 2x", ratio <= 2,
            ))  # fmt: skip
    if "recall" in small and "recall" in large:
        before, after = (run["recall"]["truth_size"]["median"] for run in (small, large))
        growth = f"{after / before:.1f}x ({before:,} → {after:,})" if before else "n/a"
        table.append(Figure(
            "10M vs 1M", "preferred places within 5 km of a request (median): "
            "what the work grows with", growth,
        ))  # fmt: skip
    if "import" in results:
        section = results["import"]
        if _skipped(section):
            table.append(Figure("import", "places import", str(section["skipped"])))
        else:
            fresh, again = section["fresh"], section["reimport_unchanged"]
            rebuilt = section.get("fresh_rebuild_indexes")  # absent before issue 13's fix
            scope = f"import {section['records']:,} records"
            table.append(Figure(
                scope, "`planwise places import` of a new JSON Lines file (places/s)",
                f"{_rate(fresh['places_per_second'])} ({fresh['seconds']:.1f} s)",
                "≥ 50,000/s", fresh["places_per_second"] >= 50_000,
            ))  # fmt: skip
            if rebuilt is not None:
                table.append(Figure(
                    scope, "the same with `--rebuild-indexes` (alternating), "
                    f"{rebuilt['index_build_seconds']:.1f} s of it building",
                    f"{_rate(rebuilt['places_per_second'])} ({rebuilt['seconds']:.1f} s)",
                ))  # fmt: skip
            ratio = again["places_per_second"] / fresh["places_per_second"]
            table.append(Figure(
                scope, "same file again, nothing changes (places/s), ratio to the first import",
                f"{_rate(again['places_per_second'])} ({again['seconds']:.1f} s), {ratio:.2f}x",
                "≥ 2x", ratio >= 2,
            ))  # fmt: skip
    if "cluster" in results:
        table += _cluster_figures(results["cluster"])
    return table


def _met(value: bool | None) -> str:
    return "—" if value is None else ("yes" if value else "**no**")


def _sections(results: dict[str, Any]) -> str:
    """What the file holds: each size's sections, then the size-less ones."""
    parts = [
        f"{_size_label(int(size))}: {', '.join(run)}"
        for size, run in sorted(results.get("runs", {}).items(), key=lambda item: int(item[0]))
    ]
    parts += [name for name in ("import", "backup", "cluster") if name in results]
    return "; ".join(parts) or "none"


def markdown(results: dict[str, Any]) -> str:
    machine = results.get("machine", {})
    dirty = ", work tree modified" if machine.get("work_tree_dirty") else ""
    lines = [
        "# Planwise benchmarks",
        "",
        f"Updated {results.get('updated_at', '?')} by `planwise bench` (commit "
        f"{machine.get('commit', '?')}{dirty}).",
        "",
        f"Machine: {machine.get('cores', '?')} cores ({machine.get('cpu', '?')}), "
        f"{machine.get('memory_gib', '?')} GiB memory, "
        f"PostgreSQL {machine.get('postgresql', '?')}, "
        f"Python {machine.get('python', '?')}. Load average (1/5/15 min) when the last "
        f"command started: {machine.get('load_average_at_start', '?')}; each section's own "
        "is in latest.json (other work on the machine slows every figure).",
        "",
        "Sections in this file: " + _sections(results) + ".",
        "",
        "| data set | figure | value | goal | met? |",
        "|---|---|---|---|---|",
    ]  # fmt: skip
    for figure in results.get("figures", []):
        cells = [figure["scope"], figure["figure"], figure["value"], figure["goal"],
                 _met(figure["met"])]  # fmt: skip
        lines.append("| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |")
    lines += ["", "Definitions:", ""]
    lines += [f"- {note}" for note in NOTES]
    return "\n".join(lines) + "\n"


NOTES = (
    "Latency and queries/s: pgbench (`--protocol=prepared`, `--log`) running each request "
    "as the API does, as `app_service`: ours in one statement in autocommit "
    "(`planwise_recommend_for`: user check, acting user, `recommend_places()`), the "
    "document's query as BEGIN; set_config('app.user_id'); the query; COMMIT. Percentiles "
    "are nearest-rank over every logged transaction; n is their count. Both queries answer "
    "the same random (user, location) requests (same seed).",
    "The document's query is its SQL as written (CTE, flat-degree distance, ORDER BY, "
    "LIMIT 20, 5 km). Ours is `recommend_places()`, radius 5 km, limit 20.",
    "Recall: truth is `geodesic_ground_truth` (full scan, great-circle distance ≤ 5 km, "
    "the user's preferred categories), ranked by the document's weights with the exact "
    "distance. recall@k = |returned top-k ∩ true top-k| / |true top-k|. The document's "
    "'share of true places it considers' runs its query with a LIMIT larger than any "
    "circle holds and compares its whole result with the truth set.",
    "API: `planwise serve` in a subprocess, wrk (1 thread) with rotating bearer tokens and "
    "locations from the same requests; then pgbench with the same transaction at the same "
    "concurrency. CPU per request is read from /proc for the API's processes and for the "
    "bench database's PostgreSQL backends.",
    "Density: the same recommendation on the 1M set and on one of the same size around "
    "every tenth city (`<database>_dense`: ten times the places per city), interleaved "
    "in one run; 'previous SQL' is the recommendation as it was before migration "
    "a1c2e3f4a5b6 (the same top-k on the btree_gist (category, band, point) GiST), "
    "installed into the bench schema from the migrations' text with its index built for "
    "the run.",
    "Cluster (`bench cluster`): three Patroni members on this one machine; pgbench runs "
    "the recommendation script on the leader alone, then with the same clients split over "
    "the two replicas at once; inserts of 100-byte rows on the leader alternate async and "
    "sync mode; replay lag is sampled from the leader's pg_stat_replication every 0.25 s; "
    "failover times are from kill -9 of the leader's postmaster to Patroni naming another "
    "leader, and to the first insert through the read-write URL acknowledged by the new "
    "leader (the old leader's orphaned backends may acknowledge a few more at first).",
    "Data: places clustered around 381 real cities (54.8°S to 70.7°N) by population, in "
    "crawl order (pages of 20 nearby places), 34 categories, ratings ~ N(4.2, 0.45), review "
    "counts log-normal; 100,000 users with 5 preferences; see `planwise/bench/world.py`.",
)


def write(results_dir: Path, results: dict[str, Any]) -> tuple[Path, Path]:
    results["updated_at"] = now()
    results["figures"] = [figure.as_dict() for figure in figures(results)]
    results_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = results_dir / "latest.json", results_dir / "latest.md"
    for path, text in ((json_path, json.dumps(results, indent=1, ensure_ascii=False) + "\n"),
                       (md_path, markdown(results))):  # fmt: skip
        temporary = path.with_name(f"{path.name}.tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    return json_path, md_path
