"""The console's pages under `/admin/` (HTML, server-rendered; not in the OpenAPI schema).

Every page reads the monitoring report in the request's own transaction as the API's role
(app_service), like `GET /api/v1/admin/db`: other roles' sessions and statements show as
figures without their text, and only the API's own sessions can be cancelled or
terminated. Every POST carries the session's CSRF token; cancel and terminate are confirmed
on a page of their own and logged (logger `planwise.console`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import psycopg
from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from planwise.console import charts
from planwise.console import session as console_session
from planwise.deps import SessionDep, SettingsDep
from planwise.observability import Metrics
from planwise.ops.backup import dumps as dump_files
from planwise.ops.monitor import bloat, suggest
from planwise.ops.monitor import explain as plans
from planwise.ops.monitor import report as monitor
from planwise.users import throttle
from planwise.users.models import User
from planwise.users.service import AccountDisabled, act_as, authenticate

logger = logging.getLogger("planwise.console")

HERE = Path(__file__).parent
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-store"}
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
TEMPLATES.env.filters["bytes"] = charts.human_bytes
TEMPLATES.env.globals["bar"] = charts.bar
PAGES = (
    ("overview", "/admin/", "Overview"),
    ("indexes", "/admin/indexes", "Indexes"),
    ("maintenance", "/admin/maintenance", "Maintenance"),
    ("live", "/admin/live", "Live"),
    ("queries", "/admin/queries", "Queries"),
    ("space", "/admin/space", "Space"),
    ("connections", "/admin/connections", "Connections"),
    ("backups", "/admin/backups", "Backups"),
)
EXPLAIN_TIMEOUT_MS = 2000
HISTORY_HEIGHT = 110

router = APIRouter(prefix="/admin", include_in_schema=False)

CHART_STEPS = 200
"""At most about this many points per series of a chart over time."""


def binned(recent: str, aggregates: str, group: str | None = None) -> str:
    """SQL over the rows of `recent` (a query with `sampled_at`) binned into CHART_STEPS
    steps of the time they span: one row per (`group`,) step with `aggregates`, so a chart
    stays small whatever the sampling interval, and a short history keeps every sample.
    All arguments are this module's constants."""
    lead = f"{group}, " if group else ""
    return (
        f"WITH recent AS ({recent}), step AS (SELECT make_interval(secs => greatest("  # noqa: S608
        f"extract(epoch FROM now() - min(sampled_at)) / {CHART_STEPS}, 0.001)) AS width "
        f"FROM recent) SELECT {lead}date_bin(width, sampled_at, TIMESTAMPTZ '2000-01-01') "
        f"AS at, {aggregates} FROM recent, step GROUP BY {lead}at ORDER BY {lead}at"
    )


def install(app: FastAPI) -> None:
    """The console's pages and its stylesheet (`/admin/static/console.css`)."""
    app.mount("/admin/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.include_router(router)


@dataclass(frozen=True)
class Admin:
    user: User
    csrf: str


def page(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    response: HTMLResponse = TEMPLATES.TemplateResponse(
        request, name, {"pages": PAGES, **context}, status_code=status_code,
        headers=PAGE_HEADERS,
    )  # fmt: skip
    return response


def refusal(request: Request, status_code: int, message: str) -> HTMLResponse:
    return page(request, "refused.html", {"message": message}, status_code)


def signed_in_admin(request: Request, session: SessionDep, settings: SettingsDep) -> Admin:
    """The signed-in administrator, read from the database now (a demotion counts at
    once); no session: to the sign-in page; not (or no longer) an admin: 403."""
    state = console_session.current(request, settings)
    if state is None:
        raise HTTPException(303, "sign in at /admin/login", headers={"Location": "/admin/login"})
    user = act_as(session, state.user_id)
    if user is None or not user.is_active or user.role != "admin":
        raise HTTPException(403, "administrators only")
    return Admin(user, state.csrf)


AdminDep = Annotated[Admin, Depends(signed_in_admin)]
CsrfField = Annotated[str | None, Form(alias="csrf")]


def check_csrf(admin: Admin, offered: str | None) -> None:
    if not console_session.same(offered, admin.csrf):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and retry")


# -- signing in and out -------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request) -> HTMLResponse:
    token = console_session.login_token(request)
    response = page(request, "login.html", {"csrf": token, "error": None})
    console_session.remember_login_token(request, response, token)
    return response


@router.post("/login", response_model=None)
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
    csrf: CsrfField = None,
) -> Response:
    expected = request.cookies.get(console_session.LOGIN_COOKIE)
    if not console_session.same(csrf, expected):
        return refusal(request, 403, "The sign-in form expired or was not ours: reload it.")
    host = request.client.host if request.client else None
    guard = throttle.LoginGuard(request.app.state.engine, settings)
    try:  # the same counters as /api/v1/auth/token: one budget for one set of credentials
        with guard.attempt("api", username, host) as attempt:
            record = authenticate(session, username, password)
            if record is not None:
                attempt.succeeded()
    except throttle.Throttled as error:
        response = refusal(request, 429, "Too many failed sign-ins: wait "
                           f"{error.retry_after} s and retry.")  # fmt: skip
        response.headers["Retry-After"] = str(error.retry_after)
        return response
    except throttle.HashingBusy as error:
        response = refusal(request, 503, "The server is busy checking passwords: retry.")
        response.headers["Retry-After"] = str(error.retry_after)
        return response
    except AccountDisabled:
        return refusal(request, 403, "This account is deactivated.")
    if record is None:
        response = page(request, "login.html", {"csrf": expected,
                        "error": "Wrong username or password."}, 401)  # fmt: skip
        return response
    if record.role != "admin":
        logger.warning("console: sign-in refused to non-admin user %s", record.id)
        return refusal(request, 403, "The console is for Planwise administrators only.")
    logger.info("console: administrator %s (%s) signed in", username, record.id)
    redirect = RedirectResponse("/admin/", status_code=303)
    console_session.start(request, redirect, settings, record.id)
    return redirect


@router.post("/logout")
def logout(admin: AdminDep, csrf: CsrfField = None) -> RedirectResponse:
    check_csrf(admin, csrf)
    redirect = RedirectResponse("/admin/login", status_code=303)
    console_session.end(redirect)
    return redirect


# -- the pages -----------------------------------------------------------------------------


def _report(request: Request, session: SessionDep) -> dict[str, Any]:
    settings = request.app.state.settings
    return monitor.collect(session.connection(), backup_dir=settings.backup_directory)


@router.get("/")
def overview(request: Request, session: SessionDep, admin: AdminDep) -> HTMLResponse:
    report = _report(request, session)
    monitor.add_patroni(report, request.app.state.settings)
    rules = monitor.health(report, monitor.Thresholds())
    cache = {entry["kind"]: entry["ratio"] for entry in report["cache"]}
    connections = sum(entry["count"] for entry in report["connections"])
    return page(request, "overview.html", {
        "admin": admin, "current": "overview", "report": report, "rules": rules,
        "cache": cache, "connection_count": connections,
        "pitr": monitor.pitr_state(request.app.state.settings, report["archiver"]),
    })  # fmt: skip


@router.get("/indexes")
def indexes(request: Request, session: SessionDep, admin: AdminDep) -> HTMLResponse:
    report = _report(request, session)
    advice = suggest.advise(session.connection())
    return page(request, "indexes.html", {
        "admin": admin, "current": "indexes", "report": report, "advice": advice,
    })  # fmt: skip


@router.get("/maintenance")
def maintenance(request: Request, session: SessionDep, admin: AdminDep) -> HTMLResponse:
    report = _report(request, session)
    limits = monitor.Thresholds()
    return page(request, "maintenance.html", {
        "admin": admin, "current": "maintenance", "report": report, "limits": limits,
    })  # fmt: skip


ACTIVITY_SQL = """
    SELECT pid, usename AS role, coalesce(nullif(application_name, ''), '-') AS application,
           coalesce(state, 'hidden') AS state, wait_event_type, wait_event,
           round(extract(epoch FROM now() - query_start)::numeric, 1)::float AS seconds,
           round(extract(epoch FROM now() - xact_start)::numeric, 1)::float AS xact_seconds,
           left(query, 4000) AS query
    FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid()
      AND backend_type IS DISTINCT FROM 'autovacuum launcher'
      AND state IS DISTINCT FROM 'idle'
    ORDER BY seconds DESC NULLS LAST
"""


def _activity(connection: Connection) -> list[dict[str, Any]]:
    rows = [dict(row) for row in connection.execute(text(ACTIVITY_SQL)).mappings()]
    for row in rows:
        row["query"] = monitor.redact(row["query"])
    return rows


@router.get("/live")
def live(
    request: Request,
    session: SessionDep,
    admin: AdminDep,
    signalled: int | None = None,
    action: str | None = None,
    sent: bool | None = None,
) -> HTMLResponse:
    report = _report(request, session)
    done = None
    if signalled is not None and action in SIGNALS:
        done = {"pid": signalled, "action": action, "sent": bool(sent)}
    notes: dict[str, str] = {}
    activity = _bounded(session, "running queries", _activity, Rows(), notes)
    return page(request, "live.html", {
        "admin": admin, "current": "live", "report": report, "activity": activity,
        "done": done, "notes": notes,
    })  # fmt: skip


SIGNALS = {"cancel": "pg_cancel_backend", "terminate": "pg_terminate_backend"}


def _session_of(connection: Connection, pid: int) -> dict[str, Any]:
    row = connection.execute(
        text("SELECT pid, usename AS role, coalesce(state, 'hidden') AS state, "
             "left(query, 4000) AS query FROM pg_stat_activity "
             "WHERE pid = :pid AND datname = current_database()"),
        {"pid": pid},
    ).mappings().first()  # fmt: skip
    if row is None:
        raise HTTPException(404, f"no session {pid} in this database")
    found = dict(row)
    found["query"] = monitor.redact(found["query"])
    return found


@router.get("/live/{pid}/{action}")
def confirm_signal(
    request: Request, session: SessionDep, admin: AdminDep, pid: int, action: str
) -> HTMLResponse:
    if action not in SIGNALS:
        raise HTTPException(404, "no such action")
    target = _session_of(session.connection(), pid)
    return page(request, "confirm.html", {
        "admin": admin, "current": "live", "target": target, "action": action,
    })  # fmt: skip


@router.post("/live/{pid}/{action}")
def signal(
    request: Request, session: SessionDep, admin: AdminDep, pid: int, action: str,
    csrf: CsrfField = None,
) -> Response:  # fmt: skip
    """Cancel (pg_cancel_backend) or terminate (pg_terminate_backend) a session, logged."""
    check_csrf(admin, csrf)
    if action not in SIGNALS:
        raise HTTPException(404, "no such action")
    connection = session.connection()
    target = _session_of(connection, pid)
    try:
        with session.begin_nested():
            sent = bool(connection.execute(
                text(f"SELECT {SIGNALS[action]}(:pid)"), {"pid": pid}
            ).scalar_one())  # fmt: skip
    except DBAPIError as error:
        if not isinstance(error.orig, psycopg.errors.InsufficientPrivilege):
            raise
        logger.warning("console: %s by %s refused for pid %s (role %s)",
                       action, admin.user.username, pid, target["role"])  # fmt: skip
        return refusal(request, 403, f"Not allowed to {action} session {pid}: the API's role "
                       "may signal only its own sessions.")  # fmt: skip
    logger.warning("console: %s of pid %s (role %s, %s) by administrator %s: %s; query: %s",
                   action, pid, target["role"], target["state"], admin.user.username,
                   "sent" if sent else "not sent", target["query"])  # fmt: skip
    return RedirectResponse(
        f"/admin/live?signalled={pid}&action={action}&sent={str(sent).lower()}", 303
    )


STATEMENTS_SQL = """
    SELECT queryid::text AS queryid, left(query, 4000) AS query, calls,
           round(total_exec_time::numeric, 1)::float AS total_ms,
           round(mean_exec_time::numeric, 3)::float AS mean_ms, rows
    FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND query IS NOT NULL AND query <> '<insufficient privilege>'
    ORDER BY {order} DESC LIMIT 15
"""
ORDERS = {"total": "total_exec_time", "mean": "mean_exec_time", "calls": "calls"}


def _has_statements(connection: Connection) -> bool:
    return bool(connection.execute(text(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')"
    )).scalar_one())  # fmt: skip


@router.get("/queries")
def queries(
    request: Request, session: SessionDep, admin: AdminDep, order: str = "total",
    reset: bool = False,
) -> HTMLResponse:  # fmt: skip
    order = order if order in ORDERS else "total"
    notes: dict[str, str] = {}
    statements: list[dict[str, Any]] | None = None
    if _has_statements(session.connection()):
        statements = _bounded(session, "pg_stat_statements", lambda connection: [
            dict(row) for row in connection.execute(
                text(STATEMENTS_SQL.format(order=ORDERS[order]))
            ).mappings()
        ], Rows(), notes)  # fmt: skip
        history = _statement_history(session, [row["queryid"] for row in statements], notes)
        for row in statements:
            row["explainable"] = plans.explainable(row["query"])
            row["query"] = monitor.redact(row["query"])
            calls, means = history.get(row["queryid"], ([], []))
            row["calls_chart"] = charts.line_chart(
                "calls", {"calls": calls}, unit="calls", height=HISTORY_HEIGHT
            )
            row["mean_chart"] = charts.line_chart(
                "mean ms", {"mean ms": means}, unit="ms", height=HISTORY_HEIGHT
            )
    return page(request, "queries.html", {
        "admin": admin, "current": "queries", "statements": statements, "order": order,
        "orders": list(ORDERS), "reset": reset, "notes": notes,
    })  # fmt: skip


HISTORY_SQL = binned(
    "SELECT queryid::text AS queryid, sampled_at, calls, total_exec_ms FROM statement_sample "
    "WHERE queryid = ANY(CAST(:queryids AS bigint[])) AND sampled_at > now() - interval '14 days'",
    "sum(calls)::bigint, sum(total_exec_ms)",
    "queryid",
)
"""The listed statements' samples (the sampler's) of the last 14 days, summed per step."""


def _statement_history(
    session: Session, queryids: list[str], notes: dict[str, str]
) -> dict[str, tuple[list[tuple[datetime, float]], list[tuple[datetime, float]]]]:
    """Per queryid: calls per step (a sample interval, or several of a long history), and
    their mean time (ms) in it."""
    history: dict[str, tuple[list[tuple[datetime, float]], list[tuple[datetime, float]]]] = {}
    for queryid, moment, calls, total_ms in _samples(
        session, "statement history", notes, HISTORY_SQL, queryids=queryids
    ):
        calls_of, means_of = history.setdefault(queryid, ([], []))
        calls_of.append((moment, float(calls)))
        means_of.append((moment, round(total_ms / calls, 3)))
    return history


@router.get("/queries/reset")
def confirm_reset(request: Request, admin: AdminDep) -> HTMLResponse:
    return page(request, "reset.html", {"admin": admin, "current": "queries"})


@router.post("/queries/reset")
def reset_statistics(
    request: Request, session: SessionDep, admin: AdminDep, csrf: CsrfField = None
) -> Response:
    """pg_stat_statements_reset() of this database's statements, and the sampler's base
    emptied in the same transaction so that its next sample starts again; logged."""
    check_csrf(admin, csrf)
    connection = session.connection()
    if not _has_statements(connection):
        raise HTTPException(404, "pg_stat_statements is not installed in this database")
    try:
        with session.begin_nested():
            connection.execute(text(
                "SELECT pg_stat_statements_reset(0, "
                "(SELECT oid FROM pg_database WHERE datname = current_database()), 0)"
            ))  # fmt: skip
            connection.execute(text("DELETE FROM statement_counters"))
    except DBAPIError as error:
        if not isinstance(error.orig, psycopg.errors.InsufficientPrivilege):
            raise
        logger.warning("console: statistics reset by %s refused", admin.user.username)
        return refusal(request, 403, "Not allowed to reset statistics: the API's role may not "
                       "execute pg_stat_statements_reset().")  # fmt: skip
    logger.warning("console: statement statistics reset by administrator %s",
                   admin.user.username)  # fmt: skip
    return RedirectResponse("/admin/queries?reset=true", 303)


@router.get("/queries/{queryid}/explain")
def explain(request: Request, session: SessionDep, admin: AdminDep, queryid: int) -> HTMLResponse:
    """EXPLAIN (no ANALYZE: nothing runs) of a statement pg_stat_statements lists, with
    its `$n` parameters as NULL under a generic plan, in a savepoint rolled back after."""
    return _explain_page(request, session, admin, queryid, analyze=False)


@router.post("/queries/{queryid}/explain")
def explain_analyze(
    request: Request, session: SessionDep, admin: AdminDep, queryid: int,
    csrf: CsrfField = None,
) -> HTMLResponse:  # fmt: skip
    """EXPLAIN ANALYZE on an administrator's explicit request (a form with the CSRF token):
    the statement runs, its parameters NULL, in a savepoint rolled back afterwards (its
    writes undone), bounded by the EXPLAIN timeout; logged."""
    check_csrf(admin, csrf)
    logger.warning("console: EXPLAIN ANALYZE of statement %s by administrator %s",
                   queryid, admin.user.username)  # fmt: skip
    return _explain_page(request, session, admin, queryid, analyze=True)


def _explain_page(
    request: Request, session: SessionDep, admin: Admin, queryid: int, *, analyze: bool
) -> HTMLResponse:
    connection = session.connection()
    found = None
    if _has_statements(connection):
        found = _bounded(session, "pg_stat_statements", lambda connection: connection.execute(
            text("SELECT query FROM pg_stat_statements WHERE queryid = :queryid AND dbid = "
                 "(SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1"),
            {"queryid": queryid},
        ).scalar_one_or_none(), None, {})  # fmt: skip
    if not found or found == "<insufficient privilege>":
        raise HTTPException(404, "no such statement visible to the API's role")
    plan, error = None, None
    if not plans.explainable(found):
        error = "only SELECT, INSERT, UPDATE, DELETE and WITH statements can be explained"
    else:
        plan, error = _plan(connection, found, analyze=analyze)
    return page(request, "explain.html", {
        "admin": admin, "current": "queries", "query": monitor.redact(found), "plan": plan,
        "error": error, "analyzed": analyze, "queryid": queryid,
        "timeout_seconds": EXPLAIN_TIMEOUT_MS / 1000,
    })  # fmt: skip


def _plan(
    connection: Connection, query: str, *, analyze: bool
) -> tuple[dict[str, Any] | None, str | None]:
    transaction = connection.begin_nested()
    raw = connection.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    try:
        with raw.cursor() as cursor:
            plans.generic_settings(cursor, EXPLAIN_TIMEOUT_MS)
            plan = plans.generic_plan(cursor, query, analyze=analyze)
    except psycopg.Error as error:
        transaction.rollback()
        return None, f"cannot be explained: {str(error).strip().splitlines()[0]}"
    transaction.rollback()
    return plan, None


SAMPLES_SQL = binned(
    "SELECT relation, sampled_at, bytes FROM db_size_sample "  # noqa: S608  (constants)
    "WHERE (relation = 'database' OR relation IN ("
    f"    SELECT relation FROM ({monitor.SAMPLED_SIZES_SQL}) sizes"
    "    WHERE relation <> 'database' ORDER BY newest_bytes DESC LIMIT 5))"
    "  AND sampled_at > now() - interval '90 days'",
    "max(bytes)",
    "relation",
)
"""The database and its five largest tables (by their newest sample) over the last 90
days."""


T = TypeVar("T")
Rows = list[dict[str, Any]]


def _bounded(
    session: Session, what: str, read: Callable[[Connection], T], empty: T,
    notes: dict[str, str],
) -> T:  # fmt: skip
    """`read` in a savepoint under a lock and a statement timeout (a VACUUM FULL of a
    sample table must not hang the page), which stay for the rest of the request. On a
    timeout, or a view the API's role may not read (a hosted server such as Supabase),
    `empty`, and `notes[what]` says why: the page shows what it could read."""
    connection = session.connection()
    connection.exec_driver_sql("SAVEPOINT planwise_console")
    try:
        connection.execute(text("SELECT set_config('lock_timeout', '250ms', true), "
                                "set_config('statement_timeout', '2s', true)"))  # fmt: skip
        value = read(connection)
    except DBAPIError as error:
        why = monitor.unreadable(error)
        if why is None:
            raise
        connection.exec_driver_sql("ROLLBACK TO SAVEPOINT planwise_console")
        notes[what] = why
        return empty
    connection.exec_driver_sql("RELEASE SAVEPOINT planwise_console")
    return value


def _samples(
    session: Session, what: str, notes: dict[str, str], query: str, **params: Any
) -> list[Any]:
    return _bounded(
        session, what, lambda connection: list(connection.execute(text(query), params).all()),
        [], notes,
    )  # fmt: skip


@router.get("/space")
def space(request: Request, session: SessionDep, admin: AdminDep) -> HTMLResponse:
    report = _report(request, session)
    notes: dict[str, str] = {}
    samples = _samples(session, "size samples", notes, SAMPLES_SQL)
    series: dict[str, list[tuple[datetime, float]]] = {}
    for relation, moment, size in samples:
        series.setdefault(relation, []).append((moment, float(size)))
    database = {"database": series.pop("database", [])}
    return page(request, "space.html", {
        "admin": admin, "current": "space", "report": report,
        "database_chart": charts.line_chart("database size", database),
        "tables_chart": charts.line_chart("largest tables", series),
        "table_bloat": _bounded(session, "table bloat", bloat.tables, Rows(), notes),
        "index_bloat": _bounded(session, "index bloat", bloat.indexes, Rows(), notes),
        "notes": notes,
    })  # fmt: skip


@router.get("/backups")
def backups(request: Request, session: SessionDep, admin: AdminDep) -> HTMLResponse:
    """The dumps in BACKUP_DIR with their verification state, and WAL archiving."""
    report = _report(request, session)
    directory = request.app.state.settings.backup_directory
    dumps, note = [], None
    try:
        found = dump_files.list_backups(directory) if directory else []
        dumps = [{
            "name": dump.name, "kind": dump.kind, "taken_at": dump.taken_at,
            "bytes": dump.manifest.get("size_bytes"),
            "revision": dump.manifest.get("alembic_revision"),
            "verified": dump.manifest.get("verified"),
            "verified_at": dump.manifest.get("verified_at"),
        } for dump in reversed(found)]  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as error:
        note = f"unreadable backup manifest: {error}"
    notes: dict[str, str] = {}
    archive: dict[str, list[tuple[datetime, float]]] = {"seconds since last archived": [],
                                                         "segments waiting": []}  # fmt: skip
    for moment, age, waiting in _samples(session, "archive history", notes, ARCHIVE_SQL):
        if age is not None:
            archive["seconds since last archived"].append((moment, float(age)))
        if waiting is not None:
            archive["segments waiting"].append((moment, float(waiting)))
    archiver = report["archiver"]
    archived = archiver["last_archived_time"]
    return page(request, "backups.html", {
        "admin": admin, "current": "backups", "report": report, "dumps": dumps,
        "directory": directory, "note": note, "notes": notes,
        "archive_chart": charts.line_chart("WAL archive lag", archive, unit="count"),
        "pitr": monitor.pitr_state(request.app.state.settings, archiver),
        "archive_age_seconds": None if archived is None else round(
            (datetime.now(UTC) - datetime.fromisoformat(archived)).total_seconds()
        ),
    })  # fmt: skip


ARCHIVE_SQL = binned(
    "SELECT sampled_at, archive_age_seconds, archive_segments_waiting FROM monitor_sample_run "
    "WHERE sampled_at > now() - interval '14 days' AND archived_count IS NOT NULL",
    "max(archive_age_seconds), max(archive_segments_waiting)",
)
"""The sampler's pg_stat_archiver figures while archiving was on, the worst of each step."""

CONNECTION_STATES_SQL = binned(
    "SELECT state, sampled_at, count FROM connection_sample "
    "WHERE sampled_at > now() - interval '14 days'",
    "max(count)",
    "state",
)
"""Sessions per state over the last 14 days, the peak of each step."""

RUNS_SQL = """
    SELECT sampled_at, slot, duration_ms, rows_written, rows_pruned FROM monitor_sample_run
    ORDER BY sampled_at DESC LIMIT 5
"""


def _latency(metrics: Metrics) -> tuple[list[tuple[str, float]], list[dict[str, Any]]]:
    """This process's request latency histogram (all routes together, requests per
    bucket), and per route its count and mean, from the metrics /metrics exposes."""
    cumulative: dict[float, float] = {}
    routes: dict[tuple[str, str], dict[str, Any]] = {}
    for family in metrics.latency.collect():
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                cumulative[bound] = cumulative.get(bound, 0.0) + sample.value
                continue
            key = (sample.labels["method"], sample.labels["route"])
            entry = routes.setdefault(key, {"method": key[0], "route": key[1]})
            entry[sample.name.rsplit("_", 1)[-1]] = sample.value
    bars, below = [], 0.0
    for bound in sorted(cumulative):
        name = "more" if bound == float("inf") else (
            f"{bound * 1000:g}ms" if bound < 1 else f"{bound:g}s")  # fmt: skip
        bars.append((name, cumulative[bound] - below))
        below = cumulative[bound]
    table = sorted((entry for entry in routes.values() if entry.get("count")),
                   key=lambda entry: -entry["count"])[:15]  # fmt: skip
    for entry in table:
        entry["mean_ms"] = round(entry["sum"] / entry["count"] * 1000, 2)
    return bars, table


@router.get("/connections")
def connections(request: Request, session: SessionDep, admin: AdminDep) -> HTMLResponse:
    """Sessions by state now and over time (the sampler's), and this API process's own
    pools and request latency (each worker has its own: the figures are this one's)."""
    report = _report(request, session)
    notes: dict[str, str] = {}
    states: dict[str, list[tuple[datetime, float]]] = {}
    for state, moment, count in _samples(session, "connection history", notes,
                                         CONNECTION_STATES_SQL):  # fmt: skip
        states.setdefault(state, []).append((moment, float(count)))
    state = request.app.state
    engines = {"primary (DATABASE_URL)": state.engine}
    if state.read_routing.replica is not None:
        engines["read (DATABASE_READ_URL)"] = state.read_routing.replica
    pools = {name: monitor.app_pool_figures(engine) for name, engine in engines.items()}
    bars, routes = _latency(state.metrics)
    settings = state.settings
    return page(request, "connections.html", {
        "admin": admin, "current": "connections", "report": report,
        "states_chart": charts.line_chart("sessions by state", states, unit="sessions"),
        "pools": pools, "max_overflow": settings.database_max_overflow,
        "pool_timeouts": next(sample.value for sample in state.metrics.pool_timeouts.collect()[0]
                              .samples if sample.name.endswith("_total")),
        "latency_chart": charts.bar_chart("request latency", bars), "routes": routes,
        "pid": os.getpid(), "interval": settings.sample_interval_seconds,
        "runs": _samples(session, "sampler runs", notes, RUNS_SQL), "notes": notes,
    })  # fmt: skip
