"""Index suggestions for tables read mostly sequentially, tried with hypothetical indexes.

PgHero's approach, simplified: for the tables scanned sequentially most (more sequential
than index scans, over 1000 rows), take the statements of pg_stat_statements that name
them, and for each column of the table that appears compared in a WHERE clause (and
leads no index yet), create a hypothetical single-column B-tree index with hypopg and
EXPLAIN the statement again. An index is suggested when it at least halves a statement's
estimated cost. Nothing is built and nothing runs: hypopg's indexes live in this session's
memory only, the EXPLAINs are of generic plans (`$n` unknown, as pg_stat_statements keeps
the text), all in a savepoint rolled back afterwards, and `hypopg_reset()` drops the
hypothetical indexes before the connection goes back to the pool.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.errors import InsufficientPrivilege, LockNotAvailable, QueryCanceled
from sqlalchemy import Connection

from planwise.ops.monitor import explain as plans
from planwise.ops.monitor.report import redact

TABLE_LIMIT = 5
STATEMENT_LIMIT = 5
MIN_SAVING = 0.5
BUDGET_SECONDS = 3.0
EXPLAIN_TIMEOUT_MS = 1000

SEQUENTIAL_SQL = """
    SELECT relid, schemaname, relname, seq_scan, coalesce(idx_scan, 0) AS idx_scan,
           n_live_tup
    FROM pg_stat_user_tables
    WHERE seq_scan > coalesce(idx_scan, 0) AND n_live_tup > 1000
    ORDER BY seq_tup_read DESC LIMIT %s
"""
COLUMNS_SQL = """
    SELECT a.attname, EXISTS (
        SELECT 1 FROM pg_index x WHERE x.indrelid = a.attrelid AND x.indkey[0] = a.attnum
    ) AS leads_an_index
    FROM pg_attribute a WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY a.attnum
"""
STATEMENTS_SQL = """
    SELECT queryid::text, query, calls FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND query IS NOT NULL AND query <> '<insufficient privilege>'
      AND query ~* %s
    ORDER BY calls DESC LIMIT %s
"""
COMPARED = r"(?:=|<>|!=|<=|>=|<|>|\bin\b|\blike\b|\bilike\b|\bbetween\b|\bis\b|\bany\b)"


@dataclass
class Suggestion:
    schema: str
    table: str
    column: str
    create: str
    statements: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Advice:
    hypopg: bool
    tables: list[dict[str, Any]] = field(default_factory=list)
    suggestions: list[Suggestion] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _hypopg_schema(cursor: psycopg.Cursor[Any]) -> str | None:
    cursor.execute(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'hypopg'"
    )
    row = cursor.fetchone()
    return None if row is None else str(row[0])


def _compared_columns(query: str, columns: list[str]) -> list[str]:
    """The columns that appear compared after the statement's first WHERE."""
    where = re.search(r"\bwhere\b", query, re.IGNORECASE)
    if where is None:
        return []
    tail = query[where.end() :]
    found = []
    for column in columns:
        name = re.escape(column)
        pattern = rf'(?<![\w$])(?:\w+\.)?(?:"{name}"|{name})(?![\w"])\s*{COMPARED}'
        if re.search(pattern, tail, re.IGNORECASE):
            found.append(column)
    return found


def _names_table(table: str) -> str:
    """A POSIX regex for a statement that names the table (plain or quoted, maybe
    schema-qualified); refined by the column match afterwards."""
    return rf'(^|[^[:alnum:]_"])"?{re.escape(table)}"?($|[^[:alnum:]_"])'


def advise(connection: Connection) -> Advice:
    """Suggestions for the top sequentially-scanned tables; `notes` says what was not
    tried and why (no hypopg, no readable statement, a statement that cannot be
    prepared, the time budget spent)."""
    raw = connection.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    transaction = connection.begin_nested()
    try:
        with raw.cursor() as cursor:
            return _advise(cursor)
    except (InsufficientPrivilege, QueryCanceled, LockNotAvailable) as error:
        detail = str(error).strip().splitlines()[0]
        return Advice(hypopg=False, notes=[f"not read by this role in time: {detail}"])
    finally:
        transaction.rollback()
        with raw.cursor() as cursor:
            schema = _hypopg_schema(cursor)
            if schema is not None:
                cursor.execute(_Hypopg(schema).reset)


def _advise(cursor: psycopg.Cursor[Any]) -> Advice:
    plans.generic_settings(cursor, EXPLAIN_TIMEOUT_MS)
    schema = _hypopg_schema(cursor)
    advice = Advice(hypopg=schema is not None)
    cursor.execute(SEQUENTIAL_SQL, (TABLE_LIMIT,))
    names = ("relid", "schema", "table", "seq_scan", "idx_scan", "rows")
    advice.tables = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    if schema is None:
        advice.notes.append("hypopg is not installed in this database: no suggestions")
        return advice
    cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
    if cursor.fetchone() is None:
        advice.notes.append("pg_stat_statements is not installed: no statements to try")
        return advice
    hypopg = _Hypopg(schema)
    deadline = time.monotonic() + BUDGET_SECONDS
    found: dict[tuple[str, str, str], Suggestion] = {}
    for table in advice.tables:
        cursor.execute(COLUMNS_SQL, (table["relid"],))
        unindexed = [name for name, leads in cursor.fetchall() if not leads]
        cursor.execute(STATEMENTS_SQL, (_names_table(table["table"]),
                                        STATEMENT_LIMIT))  # fmt: skip
        for queryid, query, calls in cursor.fetchall():
            candidates = _compared_columns(query, unindexed) if plans.explainable(query) else []
            if not candidates:
                continue
            if time.monotonic() > deadline:
                advice.notes.append(f"stopped after {BUDGET_SECONDS:g} s: not all tried")
                return _sorted(advice, found)
            cursor.execute("SAVEPOINT planwise_suggest")
            try:
                before, best = _try(cursor, hypopg, table, query, candidates)
            except psycopg.Error as error:
                cursor.execute("ROLLBACK TO SAVEPOINT planwise_suggest")
                cursor.execute(hypopg.reset)
                advice.notes.append(f"statement {queryid} not tried: "
                                    f"{str(error).strip().splitlines()[0]}")  # fmt: skip
                continue
            cursor.execute("RELEASE SAVEPOINT planwise_suggest")
            if best is None:
                continue
            key = (table["schema"], table["table"], best[1])
            if key not in found:
                statement = (
                    sql.SQL("CREATE INDEX CONCURRENTLY ON {}.{} ({})")
                    .format(sql.Identifier(key[0]), sql.Identifier(key[1]), sql.Identifier(key[2]))
                    .as_string(cursor.connection)
                )
                found[key] = Suggestion(*key, create=statement)
            found[key].statements.append({
                "queryid": queryid, "query": redact(query), "calls": calls,
                "cost_before": before, "cost_after": best[0],
            })  # fmt: skip
    return _sorted(advice, found)


@dataclass(frozen=True)
class _Hypopg:
    """hypopg's functions, in the schema it is installed in (`extensions` on Supabase)."""

    schema: str

    def call(self, function: str) -> sql.Composed:
        return sql.SQL("SELECT * FROM {}.{}").format(sql.Identifier(self.schema), sql.SQL(function))

    @property
    def reset(self) -> sql.Composed:
        return self.call("hypopg_reset()")


def _try(
    cursor: psycopg.Cursor[Any], hypopg: _Hypopg, table: dict[str, Any], query: str,
    candidates: list[str],
) -> tuple[float, tuple[float, str] | None]:  # fmt: skip
    """The statement's cost now, and the cheapest (cost, column) of the hypothetical
    indexes that at least halve it (None if none does)."""
    before = _cost(cursor, query)
    best: tuple[float, str] | None = None
    for column in candidates:
        target = sql.SQL("CREATE INDEX ON {}.{} ({})").format(
            sql.Identifier(table["schema"]), sql.Identifier(table["table"]),
            sql.Identifier(column),
        ).as_string(cursor.connection)  # fmt: skip
        cursor.execute(hypopg.call("hypopg_create_index(%s)"), (target,))
        created = cursor.fetchone()
        assert created is not None
        after = _cost(cursor, query)
        cursor.execute(hypopg.call("hypopg_drop_index(%s)"), (created[0],))
        if after <= before * (1 - MIN_SAVING) and (best is None or after < best[0]):
            best = (after, column)
    return before, best


def _cost(cursor: psycopg.Cursor[Any], query: str) -> float:
    return float(plans.generic_plan(cursor, query)["Total Cost"])


def _sorted(advice: Advice, found: dict[tuple[str, str, str], Suggestion]) -> Advice:
    advice.suggestions = sorted(
        found.values(), key=lambda item: -sum(entry["calls"] for entry in item.statements)
    )
    return advice
