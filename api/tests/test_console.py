"""The operations console (`/admin/`) in a real browser: Debian's Chromium driven by
Playwright against `planwise serve`, signed in through the form like a DBA would."""

from __future__ import annotations

import contextlib
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright
from sqlalchemy import create_engine, pool

from planwise.console.routes import PAGES
from planwise.db.engine import sqlalchemy_url
from planwise.ops.monitor import report as monitor
from planwise.ops.monitor import sampler
from tests.support.accounts import PASSWORD
from tests.support.cli import planwise
from tests.support.databases import DatabaseUnderTest, connect
from tests.support.served import planwise_serve, serve_environment

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
LOCK_KEY = 170017


@dataclass(frozen=True)
class Console:
    url: str
    db: DatabaseUnderTest
    log: Path
    admin: str
    user: str


def _register(base: str, prefix: str) -> tuple[int, str]:
    username = f"{prefix}_{uuid.uuid4().hex[:8]}"
    created = httpx.post(f"{base}/api/v1/auth/register", json={
        "username": username, "password": PASSWORD, "full_name": prefix.title()})  # fmt: skip
    assert created.status_code == 201, created.text
    return created.json()["id"], username


@pytest.fixture(scope="module")
def console(
    create_migrated_database: Callable[[str], DatabaseUnderTest],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Console]:
    db = create_migrated_database("planwise_console")
    home = tmp_path_factory.mktemp("console")
    env = serve_environment(db, home, BACKUP_DIR=str(home / "backups"))
    with connect(db.admin_url) as conn:  # two size samples a day apart: a growth chart
        conn.execute(
            "INSERT INTO db_size_sample (relation, bytes, sampled_at) VALUES "
            "('database', 9000000, now() - interval '1 day'), ('database', 9500000, now()), "
            "('place', 100000, now() - interval '1 day'), ('place', 180000, now())"
        )
    with connect(db.admin_url) as conn:
        _a_table_read_sequentially_with_half_its_rows_deleted(conn)
    with connect(db.app_url) as conn:  # as the API's role: pg_stat_statements shows its text
        for device in range(20):
            conn.execute("SELECT id, value FROM reading WHERE device = %s", (device,)).fetchall()
    made = planwise("backup", "create", MIGRATION_DATABASE_URL=db.admin_url,
                    BACKUP_DIR=env["BACKUP_DIR"])  # fmt: skip
    assert made.returncode == 0, made.stderr
    with planwise_serve(env, home / "serve.log") as (base, _pid):
        admin_id, admin = _register(base, "dba")
        _user_id, user = _register(base, "plain")
        with connect(db.admin_url) as conn:
            conn.execute("UPDATE \"user\" SET role = 'admin' WHERE id = %s", (admin_id,))
        yield Console(base, db, home / "serve.log", admin, user)


def _a_table_read_sequentially_with_half_its_rows_deleted(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    """`reading`: 20 000 rows, no index on `device`, row-level security like our tables;
    every other row deleted and vacuumed (its pages stay: half of them is free space),
    analyzed."""
    conn.execute(
        "CREATE TABLE reading (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        "device int NOT NULL, value float8, note text)"
    )
    conn.execute(
        "INSERT INTO reading (device, value, note) "
        "SELECT g % 5000, random(), 'reading ' || g FROM generate_series(1, 20000) g"
    )
    conn.execute("DELETE FROM reading WHERE id % 2 = 0")
    conn.execute("GRANT SELECT ON reading TO app_service")
    conn.execute("ALTER TABLE reading ENABLE ROW LEVEL SECURITY")  # as ours: pg_stats hides it
    conn.execute("CREATE POLICY reading_read ON reading FOR SELECT TO app_service USING (true)")
    conn.commit()
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE reading")
    conn.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")  # the ground truth, below


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def console_errors() -> list[str]:
    return []


@pytest.fixture
def page(browser: Browser, console_errors: list[str]) -> Iterator[Page]:
    """A fresh browser context (no cookies); fails the test on any console error, which
    includes every violation of the pages' Content-Security-Policy."""
    context = browser.new_context()
    context.set_default_timeout(5000)
    opened = context.new_page()
    errors = console_errors

    def remember(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    opened.on("console", remember)
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert errors == [], errors


def sign_in(page: Page, console: Console, username: str) -> None:
    page.goto(f"{console.url}/admin/")
    assert page.url.endswith("/admin/login")  # not signed in: sent to the form
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_an_admin_signs_in_and_reads_every_page(page: Page, console: Console) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    sign_in(page, console, console.admin)
    assert page.url == f"{console.url}/admin/"
    assert page.locator("h1").inner_text() == "Overview"
    rules = page.locator("li.rule")
    assert rules.count() == 12
    duplicates = page.locator('li.rule[data-rule="duplicate indexes"]')
    assert "< 1 MiB each" in duplicates.inner_text()
    assert page.locator("li.rule.ok").count() + page.locator("li.rule.problem").count() == 12
    backup = page.locator('li.rule[data-rule="verified backup"]')
    assert "problem" in (backup.get_attribute("class") or "")  # one dump, not verified
    assert re.search(r"\d+(\.\d)? MB", page.locator("#database-size").inner_text())
    assert "%" in page.locator("#cache-hit-ratio").inner_text()
    pitr = page.locator("#restore-window").inner_text()  # DATABASE_URL is set: not managed
    assert pitr.startswith("PITR not configured here: DATABASE_URL points at a server"), pitr
    page.screenshot(path=str(ARTIFACTS / "console-overview.png"), full_page=True)

    page.click("text=Indexes")
    table = page.locator("#duplicate table")
    row = table.locator("tr", has_text="idx_user_username")
    assert "uq_user_username" in row.inner_text()
    assert "statistics were last reset" in page.locator("#unused").inner_text()
    suggestion = page.locator('tr.suggestion[data-table="reading"]')
    assert suggestion.count() == 1, page.locator("#suggestions").inner_text()
    assert suggestion.get_attribute("data-column") == "device"
    create = suggestion.locator("code.create").inner_text()
    assert create == 'CREATE INDEX CONCURRENTLY ON "public"."reading" ("device")'
    assert "SELECT id, value FROM reading WHERE device = $1" in suggestion.inner_text()
    page.screenshot(path=str(ARTIFACTS / "console-indexes.png"), full_page=True)

    page.click("text=Maintenance")
    expect(page.locator("text=Transaction ID wraparound")).to_have_count(1)  # page loaded
    assert page.locator("td", has_text="user_id_seq").count() == 1

    page.click("nav >> text=Queries")
    explain = page.locator("a", has_text="explain")
    assert explain.count() > 0
    page.goto(f"{console.url}/admin/queries?order=calls")
    begin = page.locator("tr", has=page.locator("code", has_text=re.compile("^BEGIN$")))
    assert begin.count() == 1 and begin.locator("a").count() == 0  # not explainable
    link = page.locator("tr", has_text="planwise_begin_request($1)").locator("a")
    link.first.click()
    assert page.locator("ul.plan .node").first.inner_text() == "Function Scan", page.content()
    assert page.locator("ul.plan .actual").count() == 0  # nothing ran
    page.click("#analyze")  # EXPLAIN ANALYZE only on this explicit request
    expect(page.locator("#analyzed")).to_contain_text("execution ")
    assert page.locator("ul.plan .actual").first.inner_text().startswith("actual ")
    assert "EXPLAIN ANALYZE of statement " in console.log.read_text()
    for _ in range(3):  # three samples, pages (requests) between them: two intervals
        _sample_statements(console)
        page.goto(f"{console.url}/admin/queries?order=calls")
    begins = page.locator("tr.statement", has_text="planwise_begin_request($1)")
    queryid = begins.first.get_attribute("data-queryid")
    history = page.locator(f'tr.history[data-queryid="{queryid}"] svg.chart')
    assert history.count() == 2  # calls, mean time
    assert history.nth(0).locator("circle.point").count() == 2
    assert history.nth(1).locator("circle.point").count() == 2
    page.screenshot(path=str(ARTIFACTS / "console-queries.png"), full_page=True)
    page.click("#reset")
    expect(page.locator("h1")).to_have_text("Reset statement statistics?")
    page.click("#confirm")
    expect(page.locator("#reset-done")).to_have_count(1)
    assert "statement statistics reset by administrator " + console.admin in console.log.read_text()

    page.click("nav >> text=Space")
    charts = page.locator("svg.chart")
    assert charts.count() == 2
    assert charts.nth(0).locator("circle.point").count() == 2
    assert charts.nth(1).locator("circle.point").count() >= 2
    shown = page.locator('#table-bloat tr[data-table="reading"] .ratio').inner_text()
    estimate = float(shown.split("%")[0])
    with connect(console.db.admin_url) as conn:
        measured = conn.execute("SELECT free_percent + dead_tuple_percent "
                                "FROM pgstattuple('reading')").fetchone()  # fmt: skip
    assert measured is not None and abs(estimate - float(measured[0])) < 10, (estimate, measured)
    index_estimate = page.locator('#index-bloat tr[data-index="reading_pkey"] .wasted')
    assert index_estimate.inner_text() != "not estimated"
    page.screenshot(path=str(ARTIFACTS / "console-space.png"), full_page=True)

    for _ in range(2):  # two sampler runs: sessions by state at two moments
        _sample_statements(console, everything=True)
    page.click("nav >> text=Connections")
    expect(page.locator("h1")).to_have_text("Connections and API")
    states = page.locator("#states svg.chart")
    assert states.locator("circle.point").count() >= 2
    assert states.locator("polyline").count() >= 1
    primary = page.locator('#pools tr[data-engine^="primary"]')
    assert primary.locator("td").nth(1).inner_text() == "20"  # DATABASE_POOL_SIZE
    latency = page.locator("#latency svg.chart rect.bar")
    assert latency.count() == 13  # the histogram's 12 buckets and above them
    heights = [float(latency.nth(n).get_attribute("height") or 0) for n in range(13)]
    assert any(heights), heights  # this worker answered requests: some bar has height
    assert page.locator("#sampler td", has_text="by hand").count() == 2
    page.screenshot(path=str(ARTIFACTS / "console-connections.png"), full_page=True)

    page.click("nav >> text=Backups")
    dump = page.locator("#dumps tr[data-name^=backup_]")
    assert dump.count() == 1
    assert dump.locator(".verification").inner_text() == "not verified"
    assert "off" in page.locator("#wal").inner_text()
    assert "no samples yet" in page.locator("#archive-lag").inner_text()  # archiving off
    assert page.locator("#archive-lag-now").inner_text().startswith("archiving is off")
    assert page.locator("#pitr-note").inner_text() == pitr


def _sample_statements(console: Console, *, everything: bool = False) -> None:
    """A statement sample, or with `everything` a whole sampler run."""
    engine = create_engine(sqlalchemy_url(console.db.admin_url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        if everything:
            sampler.sample(connection, size_retention_days=90, sample_retention_days=14)
        else:
            monitor.sample_statements(connection)
        connection.commit()
    engine.dispose()


def test_a_non_admin_gets_no_page(page: Page, console: Console, console_errors: list[str]) -> None:
    sign_in(page, console, console.user)
    assert "administrators only" in page.locator("p.error").inner_text()
    assert console_errors == [
        "Failed to load resource: the server responded with a status of 403 (Forbidden)"
    ]
    console_errors.clear()
    page.goto(f"{console.url}/admin/indexes")
    assert page.url.endswith("/admin/login")  # no session was started
    wrong = httpx.post(f"{console.url}/admin/login", data={"username": console.admin,
                       "password": "wrong"})  # fmt: skip
    assert wrong.status_code == 403  # no CSRF token: refused before the password is read


def test_the_session_cookie_and_csrf(console: Console) -> None:
    with httpx.Client(base_url=console.url) as client:
        form = client.get("/admin/login")
        assert "style-src 'self'" in form.headers["content-security-policy"]
        assert "script-src" not in form.headers["content-security-policy"]
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        signed = client.post("/admin/login", data={
            "username": console.admin, "password": PASSWORD, "csrf": token[1]})  # fmt: skip
        assert signed.status_code == 303, signed.text
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/admin" in cookie
        assert client.get("/admin/").status_code == 200
        assert client.post("/admin/logout").status_code == 403
        assert client.post("/admin/logout", data={"csrf": "forged"}).status_code == 403
        assert client.post("/admin/live/1/cancel").status_code == 403
        assert client.post("/admin/queries/1/explain").status_code == 403  # no ANALYZE
        assert client.get("/admin/").status_code == 200  # still signed in
        with httpx.Client(base_url=console.url) as stranger:  # a token cookie of another kind
            stranger.cookies.set("planwise_console", "not-a-token", path="/admin")
            assert stranger.get("/admin/").status_code == 303


def test_a_demotion_ends_console_access_at_once(console: Console) -> None:
    user_id, username = _register(console.url, "demoted")
    with connect(console.db.admin_url) as conn:
        conn.execute("UPDATE \"user\" SET role = 'admin' WHERE id = %s", (user_id,))
    with _signed_in(console, username) as client:
        assert client.get("/admin/maintenance").status_code == 200
        with connect(console.db.admin_url) as conn:
            conn.execute("UPDATE \"user\" SET role = 'user' WHERE id = %s", (user_id,))
        assert client.get("/admin/maintenance").status_code == 403  # same cookie, no page


def test_console_sign_in_is_throttled_like_the_api(console: Console) -> None:
    nobody = f"nobody_{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=console.url) as client:
        form = client.get("/admin/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        answers = [
            client.post("/admin/login", data={
                "username": nobody, "password": "wrong", "csrf": token[1]}).status_code
            for _ in range(7)
        ]  # fmt: skip
    assert answers[:5] == [401] * 5 and 429 in answers[5:], answers


def test_the_live_page_shows_who_blocks_and_cancels_it(page: Page, console: Console) -> None:
    """Two sessions of the API's role: one holds a lock in an open transaction, the other
    waits for it. The Live page names the blocker's query; cancelling the waiter works."""
    outcome: list[str] = []

    def wait_for_lock(conn: psycopg.Connection[tuple[object, ...]]) -> None:
        try:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            outcome.append("got the lock")
        except psycopg.errors.QueryCanceled:
            outcome.append("cancelled")

    with connect(console.db.app_url) as holder, connect(console.db.app_url) as waiter:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        waiting = threading.Thread(target=wait_for_lock, args=(waiter,))
        waiting.start()
        waiter_pid = waiter.info.backend_pid
        time.sleep(0.3)
        sign_in(page, console, console.admin)
        page.click("nav >> text=Live")
        waits = page.locator("#lock-waits")
        assert str(waiter_pid) in waits.inner_text()
        blocker = waits.locator("li.blocker")
        assert blocker.get_attribute("data-pid") == str(holder.info.backend_pid)
        assert "idle in transaction" in blocker.inner_text()
        blocking_query = blocker.locator(".blocking-query").inner_text()
        assert blocking_query == "SELECT pg_advisory_xact_lock($1)", blocking_query
        page.locator(f'#activity tr[data-pid="{waiter_pid}"] a', has_text="cancel").click()
        assert page.locator("h1").inner_text() == f"Cancel session {waiter_pid}?"
        page.click("#confirm")
        assert page.locator("#signalled").inner_text() == f"cancel of session {waiter_pid}: sent."
        waiting.join(10)
        holder.rollback()
    assert outcome == ["cancelled"]
    log = console.log.read_text()
    assert f"console: cancel of pid {waiter_pid}" in log and console.admin in log


@contextlib.contextmanager
def _signed_in(console: Console, username: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=console.url) as client:
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/admin/login").text)
        assert token is not None
        signed = client.post("/admin/login", data={
            "username": username, "password": PASSWORD, "csrf": token[1]})  # fmt: skip
        assert signed.status_code == 303, signed.text
        yield client


REVOKED = {
    "SELECT ON pg_stat_statements FROM PUBLIC": "GRANT SELECT ON pg_stat_statements TO PUBLIC",
    "SELECT ON pg_catalog.pg_stat_archiver FROM PUBLIC":
        "GRANT SELECT ON pg_catalog.pg_stat_archiver TO PUBLIC",
    "SELECT ON pg_catalog.pg_stats FROM PUBLIC": "GRANT SELECT ON pg_catalog.pg_stats TO PUBLIC",
    "EXECUTE ON FUNCTION planwise_column_stats() FROM app_service":
        "GRANT EXECUTE ON FUNCTION planwise_column_stats() TO app_service",
    "SELECT ON db_size_sample FROM app_service": "GRANT SELECT ON db_size_sample TO app_service",
}  # fmt: skip
"""What a hosted server (Supabase) may not let the API's role read: it has no pg_monitor
there either, and some statistics views and our own tables may be closed to it."""


def test_what_the_api_role_may_not_read_is_said_and_the_rest_shown(console: Console) -> None:
    with connect(console.db.admin_url) as conn:
        for revoke in REVOKED:
            conn.execute(f"REVOKE {revoke}")
    try:
        with _signed_in(console, console.admin) as client:
            pages = {path: client.get(path) for _key, path, _label in PAGES}
            login = httpx.post(f"{console.url}/api/v1/auth/token",
                               data={"username": console.admin, "password": PASSWORD})  # fmt: skip
            api = httpx.get(f"{console.url}/api/v1/admin/db", headers={
                "Authorization": f"Bearer {login.json()['access_token']}"})  # fmt: skip
    finally:
        with connect(console.db.admin_url) as conn:
            for grant in REVOKED.values():
                conn.execute(grant)
    assert {path: answer.status_code for path, answer in pages.items()} == dict.fromkeys(pages, 200)
    overview, space = pages["/admin/"].text, pages["/admin/space"].text
    assert "<b>archiver</b> (not readable by this role (permission denied for view pg_stat_" \
        "archiver))" in overview and 'id="database-size"' in overview  # fmt: skip
    assert "<b>table bloat</b> (not readable by this role" in space
    assert "<b>size samples</b> (not readable by this role" in space
    assert "<b>growth</b>" in space and 'id="table-bloat"' in space  # the sizes still there
    assert "<b>pg_stat_statements</b> (not readable by this role" in pages["/admin/queries"].text
    assert "permission denied for view pg_stat_statements" in pages["/admin/indexes"].text
    assert api.status_code == 200, api.text
    unavailable = api.json()["unavailable"]
    assert {"archiver", "slowest_statements", "growth"} <= set(unavailable), unavailable
    assert api.json()["tables"]  # what the role may read is there
