"""`planwise bench data|recommend|density|api|import|backup|cluster|all`: figures, not
pass/fail tests.

Every command works in the bench database (`--database`, default planwise_bench) on the
managed cluster, loading the data set first if the database does not hold exactly the
requested one, and merges its figures into `bench/results/latest.json` and `latest.md`.
`--smoke` shrinks everything (2,000 places, 1 s measurements) to check the pipeline.
`bench cluster` works on the Patroni cluster instead (see planwise.bench.cluster) and is
not part of `bench all`: it needs three members and kills its leader.
Exit codes: 0 measured (whether or not goals are met), 1 a measurement failed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from planwise.bench import api as api_bench
from planwise.bench import backups, data, density, importing, recommend, report, world
from planwise.bench import cluster as cluster_bench
from planwise.bench.machine import describe
from planwise.cli_support import managed_cluster_settings
from planwise.config import PLANWISE_HOME, get_settings
from planwise.db.engine import libpq_url
from planwise.ops.cluster.patroni import HACluster
from planwise.progress import steps

app = typer.Typer(no_args_is_help=True, help="Benchmarks: what users feel, side by side.")
console = Console(stderr=True)


@dataclass(frozen=True)
class Options:
    places: int = 1_000_000
    users: int = data.DEFAULT_USERS
    requests: int = data.DEFAULT_REQUESTS
    seconds: float = 20.0
    warmup: float = 3.0
    recall_samples: int = 200
    connections: tuple[int, ...] = (1, 8, 32)
    workers: int = 1
    api_code: Path | None = None
    records: int = 1_000_000
    import_rounds: int = importing.ROUNDS
    pitr: bool = True
    database: str = data.DEFAULT_DATABASE
    results_dir: Path = report.RESULTS_DIR
    work_dir: Path = PLANWISE_HOME / "bench"

    def smoke(self) -> Options:
        """Tiny sizes: checks the whole pipeline in well under a minute."""
        return replace(self, places=2_000, users=200, requests=200, seconds=1, warmup=0.25,
                       recall_samples=20, connections=(1,), records=2_000, import_rounds=1,
                       pitr=False)  # fmt: skip


Places = Annotated[int, typer.Option(min=1, help="places in the data set")]
Users = Annotated[int, typer.Option(min=1, help="users, 5 preferences each")]
Seconds = Annotated[float, typer.Option(min=1, help="length of each measurement")]
Warmup = Annotated[float, typer.Option(min=0, help="unrecorded run before each measurement")]
Smoke = Annotated[bool, typer.Option("--smoke", help="tiny sizes, to check the pipeline")]
Database = Annotated[str, typer.Option(help="the bench database (dropped and re-created)")]
ResultsDir = Annotated[Path, typer.Option(help="where latest.json and latest.md go")]
WorkDir = Annotated[Path, typer.Option(help="generated files (git-ignored)")]
RecallSamples = Annotated[int, typer.Option(min=1, help="requests checked against truth")]
Connections = Annotated[str, typer.Option(help="API connection counts, comma-separated")]
Workers = Annotated[int, typer.Option(min=1, max=64, help="uvicorn workers of the API")]
Records = Annotated[int, typer.Option(min=1, help="records in the import file")]
Rounds = Annotated[int, typer.Option(min=1, help="alternating rounds of the import paths")]
Pitr = Annotated[bool, typer.Option(help="also measure PITR (a cluster of its own)")]


def _options(smoke: bool, **given: Any) -> Options:
    options = Options()
    if smoke:
        options = options.smoke()
    changed = {key: value for key, value in given.items() if value is not None}
    if isinstance(changed.get("connections"), str):
        changed["connections"] = tuple(int(part) for part in changed["connections"].split(","))
    return replace(options, **changed)


def _say(message: str) -> None:
    console.print(f"[dim]·[/dim] {message}")


class Session:
    """One command's run: the database, the results file, and saving sections."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.db = data.bench_database(get_settings(), options.database)
        self.results = report.load(options.results_dir)

    def ensure_data(self, *, dense: bool = False) -> dict[str, Any]:
        """The data set (the dense one: `<database>_dense`, every tenth city) loaded."""
        options = self.options
        db = self.dense_db if dense else self.db
        stride = world.DENSE_CITY_STRIDE if dense else 1
        _say(f"data: {options.places:,} places, {options.users:,} users in {db.name}")
        loaded, now = data.ensure_loaded(db, places=options.places, users=options.users,
                                         requests=options.requests, console=console,
                                         city_stride=stride)  # fmt: skip
        if now:
            rate = loaded["places"]["rows_per_second"]
            _say(f"loaded {options.places:,} places at {rate:,}/s in {loaded['total_seconds']} s")
        else:
            _say("data already loaded (same size and seed): reusing it")
        self.save("data_dense" if dense else "data", loaded)
        return loaded

    @property
    def dense_db(self) -> data.BenchDatabase:
        return data.bench_database(get_settings(), f"{self.options.database}_{data.DENSE_SUFFIX}")

    def save(self, section: str, values: dict[str, Any], *, per_size: bool = True) -> None:
        self.results["machine"] = describe(libpq_url(self.db.admin_url))
        if per_size:
            run = self.results.setdefault("runs", {}).setdefault(str(self.options.places), {})
            run[section] = values
        else:
            self.results[section] = values
        report.write(self.options.results_dir, self.results)

    def show(self) -> None:
        self.show_figures(self.results, self.options.results_dir)

    @staticmethod
    def show_figures(results: dict[str, Any], results_dir: Path) -> None:
        table = Table("data set", "figure", "value", "goal", "met?", title="Planwise benchmarks")
        for figure in results.get("figures", []):
            met = figure["met"]
            mark = "—" if met is None else ("[green]yes[/green]" if met else "[red]no[/red]")
            table.add_row(figure["scope"], figure["figure"], figure["value"], figure["goal"], mark)
        Console().print(table)
        _say(f"written: {results_dir / 'latest.json'}, latest.md")


def _recommend(session: Session) -> None:
    options = session.options
    latency = recommend.latency(session.db, seconds=options.seconds, warmup=options.warmup,
                                requests=options.requests, progress=_say)  # fmt: skip
    session.save("recommend", latency)
    _say(f"recall: {options.recall_samples} requests against geodesic ground truth")
    session.save("recall", recommend.recall(session.db, samples=options.recall_samples,
                                            progress=_say))  # fmt: skip


def _density(session: Session) -> None:
    """Sparse and dense data sets of the same size, side by side (`planwise.bench.density`)."""
    options = session.options
    session.ensure_data(dense=True)
    results = density.run(session.db, session.dense_db, seconds=options.seconds,
                          warmup=options.warmup, requests=options.requests,
                          progress=_say)  # fmt: skip
    session.save("density", results)


def _api(session: Session) -> None:
    options = session.options
    results = api_bench.run(
        session.db, seconds=options.seconds, warmup=options.warmup, requests=options.requests,
        connections=options.connections, workers=options.workers,
        work_dir=options.work_dir, code=options.api_code, progress=_say,
    )  # fmt: skip
    session.save("api", results)


def _import(session: Session) -> None:
    options = session.options
    results = importing.run(session.db, records=options.records, work_dir=options.work_dir,
                            rounds=options.import_rounds, progress=_say)  # fmt: skip
    session.save("import", results, per_size=False)


def _backup(session: Session) -> None:
    options = session.options
    results = backups.run(session.db, pitr=options.pitr, work_dir=options.work_dir, progress=_say)
    session.save("backup", results)


STAGES = (("recommend", _recommend), ("density", _density), ("api", _api),
          ("import", _import), ("backup", _backup))  # fmt: skip
"""`bench all` after the data, in order."""


@app.command("data")
def data_command(
    places: Places = 1_000_000, users: Users = data.DEFAULT_USERS, smoke: Smoke = False,
    fresh: Annotated[bool, typer.Option("--fresh", help="reload even if present")] = False,
    dense: Annotated[bool, typer.Option("--dense", help="the density bench's dense set")] = False,
    database: Database = data.DEFAULT_DATABASE, results_dir: ResultsDir = report.RESULTS_DIR,
) -> None:  # fmt: skip
    """Generate and load the data set (COPY path), build indexes, VACUUM ANALYZE.
    `--dense`: the same size around every tenth city, into `<database>_dense`."""
    session = Session(_options(smoke, places=None if smoke else places,
                               users=None if smoke else users, database=database,
                               results_dir=results_dir))  # fmt: skip
    if fresh:
        options = session.options
        session.save(
            "data_dense" if dense else "data",
            data.load(session.dense_db if dense else session.db, places=options.places,
                      users=options.users, requests=options.requests, console=console,
                      city_stride=world.DENSE_CITY_STRIDE if dense else 1),
        )  # fmt: skip
    else:
        session.ensure_data(dense=dense)
    session.show()


@app.command("recommend")
def recommend_command(
    places: Places = 1_000_000, seconds: Seconds = 20.0, warmup: Warmup = 3.0,
    recall_samples: RecallSamples = 200, smoke: Smoke = False,
    database: Database = data.DEFAULT_DATABASE, results_dir: ResultsDir = report.RESULTS_DIR,
) -> None:  # fmt: skip
    """Latency and queries/s of ours and the document's query (1 and 2 clients); recall."""
    session = Session(_options(smoke, places=None if smoke else places,
                               seconds=None if smoke else seconds,
                               warmup=None if smoke else warmup,
                               recall_samples=None if smoke else recall_samples,
                               database=database, results_dir=results_dir))  # fmt: skip
    session.ensure_data()
    _recommend(session)
    session.show()


@app.command("density")
def density_command(
    places: Places = 1_000_000, seconds: Seconds = 20.0, warmup: Warmup = 3.0,
    smoke: Smoke = False, database: Database = data.DEFAULT_DATABASE,
    results_dir: ResultsDir = report.RESULTS_DIR,
) -> None:  # fmt: skip
    """Dense vs sparse data of one size (ten times the places per city in `<database>_dense`):
    p50/p99 of ours and of the previous SQL at 1 and 2 clients."""
    session = Session(_options(smoke, places=None if smoke else places,
                               seconds=None if smoke else seconds,
                               warmup=None if smoke else warmup,
                               database=database, results_dir=results_dir))  # fmt: skip
    session.ensure_data()
    _density(session)
    session.show()


@app.command("api")
def api_command(
    places: Places = 1_000_000, seconds: Seconds = 20.0, warmup: Warmup = 3.0,
    connections: Connections = "1,8,32", workers: Workers = 1, smoke: Smoke = False,
    database: Database = data.DEFAULT_DATABASE, results_dir: ResultsDir = report.RESULTS_DIR,
    work_dir: WorkDir = PLANWISE_HOME / "bench",
    api_code: Annotated[Path | None, typer.Option(
        exists=True, file_okay=False,
        help="serve the api/ directory of another checkout (a git worktree of main: before)",
    )] = None,
) -> None:  # fmt: skip
    """/api/v1/recommendations under wrk at 1, 8, 32 connections, next to pgbench."""
    session = Session(_options(smoke, places=None if smoke else places,
                               seconds=None if smoke else seconds,
                               warmup=None if smoke else warmup,
                               connections=None if smoke else connections, workers=workers,
                               database=database, results_dir=results_dir,
                               work_dir=work_dir, api_code=api_code))  # fmt: skip
    session.ensure_data()
    _api(session)
    session.show()


@app.command("import")
def import_command(
    records: Records = 1_000_000, rounds: Rounds = importing.ROUNDS, smoke: Smoke = False,
    database: Database = data.DEFAULT_DATABASE, results_dir: ResultsDir = report.RESULTS_DIR,
    work_dir: WorkDir = PLANWISE_HOME / "bench",
) -> None:  # fmt: skip
    """`planwise places import` of a generated Google Places file, into a scratch database."""
    session = Session(_options(smoke, records=None if smoke else records, database=database,
                               import_rounds=None if smoke else rounds,
                               results_dir=results_dir, work_dir=work_dir))  # fmt: skip
    data.create_database(session.db, fresh=False)
    _import(session)
    session.show()


@app.command("backup")
def backup_command(
    places: Places = 1_000_000, pitr: Pitr = True, smoke: Smoke = False,
    database: Database = data.DEFAULT_DATABASE, results_dir: ResultsDir = report.RESULTS_DIR,
    work_dir: WorkDir = PLANWISE_HOME / "bench",
) -> None:  # fmt: skip
    """`backup create`, `backup restore` and `pitr restore` times at the data set's size."""
    session = Session(_options(smoke, places=None if smoke else places,
                               pitr=None if smoke else pitr, database=database,
                               results_dir=results_dir, work_dir=work_dir))  # fmt: skip
    session.ensure_data()
    _backup(session)
    session.show()


@app.command("all")
def all_command(
    places: Places = 1_000_000, seconds: Seconds = 20.0, warmup: Warmup = 3.0,
    recall_samples: RecallSamples = 200, connections: Connections = "1,8,32",
    workers: Workers = 1, records: Records = 1_000_000, pitr: Pitr = True,
    smoke: Smoke = False, database: Database = data.DEFAULT_DATABASE,
    results_dir: ResultsDir = report.RESULTS_DIR, work_dir: WorkDir = PLANWISE_HOME / "bench",
) -> None:  # fmt: skip
    """Everything above, in order, into one results file."""
    full = not smoke
    session = Session(_options(
        smoke, places=places if full else None, seconds=seconds if full else None,
        warmup=warmup if full else None, recall_samples=recall_samples if full else None,
        connections=connections if full else None, workers=workers,
        records=records if full else None, pitr=pitr if full else None, database=database,
        results_dir=results_dir, work_dir=work_dir,
    ))  # fmt: skip
    with steps(console) as step:
        with step("bench data"):
            session.ensure_data()
        for name, stage in STAGES:
            with step(f"bench {name}"):
                stage(session)
    session.show()


@app.command("cluster")
def cluster_command(
    places: Places = 100_000, users: Users = 10_000,
    requests: Annotated[int, typer.Option(min=1, help="request pairs")] = 2_000,
    seconds: Seconds = 10.0,
    clients: Annotated[int, typer.Option(min=2, help="pgbench clients")] = 4,
    rounds: Annotated[int, typer.Option(min=1, help="async/sync write rounds")] = 2,
    kills: Annotated[int, typer.Option(min=1, help="kill -9 of the leader, times")] = 5,
    smoke: Smoke = False, results_dir: ResultsDir = report.RESULTS_DIR,
) -> None:  # fmt: skip
    """The Patroni cluster (`planwise cluster up --nodes 3` first): recommendations on two
    replicas vs the leader alone, inserts in sync vs async mode with the replay lag, and
    the failover time over `--kills` kill -9 of the leader's postmaster."""
    if smoke:
        places, users, requests, seconds, rounds, kills = 2_000, 200, 200, 2.0, 1, 1
    ha = HACluster(managed_cluster_settings("`planwise bench cluster` runs on its own cluster"))
    values = cluster_bench.run(
        ha, places=places, users=users, requests=requests, seconds=seconds, clients=clients,
        write_rounds=rounds, kills=kills, progress=_say,
    )  # fmt: skip
    results = report.load(results_dir)
    leader = ha.leader()
    if leader is not None:
        node = ha.node_cluster(int(leader["name"][4:])).settings
        results["machine"] = describe(libpq_url(node.admin_url))
    results["cluster"] = values
    report.write(results_dir, results)
    Session.show_figures(results, results_dir)
