"""EXPLAIN of a statement as pg_stat_statements holds it: `$n` placeholders, no values."""

from __future__ import annotations

from typing import Any

import psycopg

EXPLAINABLE = ("select", "with", "insert", "update", "delete", "values", "table")
PREPARED = "planwise_explain"


def explainable(query: str) -> bool:
    """Only these can be PREPAREd (and so explained without running them)."""
    words = query.split(None, 1)
    return bool(words) and words[0].lower() in EXPLAINABLE


def generic_settings(cursor: psycopg.Cursor[Any], timeout_ms: int) -> None:
    """For the rest of the transaction: generic plans, and statements (and their waits
    for a lock: an ALTER TABLE would hold up the planner) bounded in time."""
    cursor.execute(
        "SELECT set_config('statement_timeout', %s, true), "
        "set_config('lock_timeout', '250ms', true), "
        "set_config('plan_cache_mode', 'force_generic_plan', true)",
        (f"{timeout_ms}ms",),
    )


def generic_plan(
    cursor: psycopg.Cursor[Any], query: str, *, analyze: bool = False
) -> dict[str, Any]:
    """The plan's top node (EXPLAIN FORMAT JSON, nothing runs) of `query` prepared with
    its `$n` as NULL under a generic plan (`generic_settings` first; the caller rolls
    back afterwards). With `analyze` the statement runs (EXPLAIN ANALYZE, BUFFERS): the
    nodes carry their actual times and rows, the top one also "Execution Time" (ms).

    Prepared afresh on each call, so a plan is never one cached before the planner saw
    something new (a hypothetical index); a PREPARE survives a rollback, so one a failed
    call left behind is dropped first. The text is sent without parameters, so that
    psycopg leaves its `$n` and `%` alone.
    """
    cursor.execute("SELECT 1 FROM pg_prepared_statements WHERE name = %s", (PREPARED,))
    if cursor.fetchone():  # left by a call that failed: DEALLOCATE is not transactional
        cursor.execute(f"DEALLOCATE {PREPARED}")
    cursor.execute(f"PREPARE {PREPARED} AS {query}")
    cursor.execute(
        "SELECT coalesce(array_length(parameter_types, 1), 0) "
        "FROM pg_prepared_statements WHERE name = %s",
        (PREPARED,),
    )
    row = cursor.fetchone()
    count = int(row[0]) if row else 0
    arguments = f"({', '.join(['NULL'] * count)})" if count else ""
    options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
    cursor.execute(f"EXPLAIN ({options}) EXECUTE {PREPARED}{arguments}")
    result = cursor.fetchone()
    cursor.execute(f"DEALLOCATE {PREPARED}")
    assert result is not None
    plan: dict[str, Any] = result[0][0]["Plan"]
    if analyze:
        plan["Execution Time"] = result[0][0]["Execution Time"]
    return plan
