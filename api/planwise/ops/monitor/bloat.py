"""Bloat estimates per table and per B-tree index, from the planner's statistics.

The method is the one check_postgres and PgHero use (Jehan-Guillaume de Rorthais's
pgsql-bloat-estimation): from `pg_stats` (average width and null fraction per column) and
`pg_class` (rows, pages, fillfactor) it computes how many pages the rows would need when
packed, and calls the rest wasted. Nothing is scanned and no lock is taken, so it costs a
few milliseconds at any table size and reads what any role may read: `pg_stats` shows the
columns the role may SELECT. pgstattuple_approx would be exact for the heap but reads
every page not all-visible (seconds on a large table, against the console's 1 s per
part) and needs pg_stat_scan_tables, which the API's role has not (nor on Supabase).

An estimate: off by a few percent either way (alignment per column is averaged, B-tree
deduplication makes an index look smaller than "packed"), and only as fresh as the last
ANALYZE. A relation without statistics for every column is listed as not estimated.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

TABLES_SQL = """
    WITH columns AS (
        SELECT c.oid, n.nspname AS schema, c.relname AS table, c.reltuples, c.relpages,
               coalesce(t.relpages, 0) AS toast_pages, coalesce(t.reltuples, 0) AS toast_rows,
               coalesce((SELECT option_value::int FROM pg_options_to_table(c.reloptions)
                         WHERE option_name = 'fillfactor'), 100) AS fillfactor,
               count(a.attnum) AS attributes, count(s.attname) AS with_stats,
               bool_or(a.atttypid = 'pg_catalog.name'::regtype) AS has_name,
               max(coalesce(s.null_frac, 0)) > 0 AS has_nulls,
               sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 0)) AS data_width
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        LEFT JOIN {stats} s ON s.schemaname = n.nspname AND s.tablename = c.relname
             AND s.attname = a.attname AND NOT s.inherited
        LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
        WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname !~ '^pg_toast'
        GROUP BY c.oid, n.nspname, c.relname, t.relpages, t.reltuples
    ), sized AS (
        SELECT *, current_setting('block_size')::int AS block,
               -- line pointer + tuple header (with a null bitmap when some are null) and
               -- data, each padded to MAXALIGN (8)
               4 + 8 * ceil((23 + CASE WHEN has_nulls THEN (attributes + 7) / 8 ELSE 0 END)
                            / 8.0) + 8 * ceil(data_width / 8.0) AS tuple_bytes
        FROM columns
    )
    SELECT schema, "table", (relpages + toast_pages)::bigint * block AS bytes,
           CASE WHEN with_stats = attributes AND NOT has_name AND reltuples >= 0 THEN
               greatest(0, relpages + toast_pages - ceil(toast_rows / 4) - ceil(reltuples
                   / floor((block - 24) * fillfactor / 100.0 / tuple_bytes)))::bigint * block
           END AS wasted_bytes
    FROM sized WHERE relpages > 0
"""
"""Per table: its pages (heap and TOAST) against those its rows need packed at its
fillfactor (TOAST: four chunks a page); NULL when not every column has statistics (never
analyzed, or columns the role may not read) or a `name` column (its statistics are
wrong)."""

INDEXES_SQL = """
    WITH columns AS (
        SELECT i.oid, n.nspname AS schema, c.relname AS table, i.relname AS index,
               i.reltuples, i.relpages,
               coalesce((SELECT option_value::int FROM pg_options_to_table(i.reloptions)
                         WHERE option_name = 'fillfactor'), 90) AS fillfactor,
               count(a.attnum) AS attributes, count(s.attname) AS with_stats,
               bool_or(a.atttypid = 'pg_catalog.name'::regtype) AS has_name,
               max(coalesce(s.null_frac, 0)) > 0 AS has_nulls,
               sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 0)) AS data_width
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_am m ON m.oid = i.relam AND m.amname = 'btree'
        JOIN pg_class c ON c.oid = x.indrelid
        JOIN pg_namespace n ON n.oid = i.relnamespace
        JOIN pg_attribute a ON a.attrelid = i.oid AND a.attnum > 0
        -- a column's statistics are its table's; an expression's are the index's own
        LEFT JOIN {stats} s ON s.schemaname = n.nspname AND s.attname = a.attname
             AND NOT s.inherited AND s.tablename = CASE
                 WHEN x.indkey[a.attnum - 1] = 0 THEN i.relname ELSE c.relname END
        WHERE x.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname !~ '^pg_toast'
        GROUP BY i.oid, n.nspname, c.relname
    ), sized AS (
        SELECT *, current_setting('block_size')::int AS block,
               -- line pointer + IndexTupleData (with a null bitmap) and data, padded to 8
               4 + 8 * ceil((8 + CASE WHEN has_nulls THEN 4 ELSE 0 END) / 8.0)
                 + 8 * ceil(data_width / 8.0) AS tuple_bytes
        FROM columns
    )
    SELECT schema, "table", index, relpages::bigint * block AS bytes,
           CASE WHEN with_stats = attributes AND NOT has_name AND reltuples >= 0 THEN
               greatest(0, relpages - 1 - ceil(reltuples
                   / floor((block - 24 - 16) * fillfactor / 100.0 / tuple_bytes)))::bigint
               * block
           END AS wasted_bytes
    FROM sized WHERE relpages > 0
"""
"""Per B-tree index: its pages against one metapage plus the leaf pages its entries need
at its fillfactor (90 by default; 16 bytes of B-tree special space a page)."""


STATS_SOURCE_SQL = """
    SELECT CASE WHEN to_regprocedure('planwise_column_stats()') IS NOT NULL
                 AND has_function_privilege('planwise_column_stats()', 'EXECUTE')
           THEN 'planwise_column_stats()' ELSE 'pg_stats' END
"""
"""`pg_stats` shows nothing of a table with row-level security to a role it applies to:
migration 7c8d9e0f1a2b's `planwise_column_stats()` gives the API's role the widths and
null fractions (no values) of every column."""


def _estimates(connection: Connection, query: str) -> list[dict[str, Any]]:
    stats = str(connection.execute(text(STATS_SOURCE_SQL)).scalar_one())
    rows = [dict(row) for row in connection.execute(text(query.format(stats=stats))).mappings()]
    for row in rows:
        wasted = row["wasted_bytes"]
        row["ratio"] = None if wasted is None else round(wasted / row["bytes"], 4)
    rows.sort(key=lambda row: (row["wasted_bytes"] is None, -(row["wasted_bytes"] or 0)))
    return rows


def tables(connection: Connection) -> list[dict[str, Any]]:
    """Tables by estimated waste, largest first; those not estimated last."""
    return _estimates(connection, TABLES_SQL)


def indexes(connection: Connection) -> list[dict[str, Any]]:
    """B-tree indexes by estimated waste, largest first; those not estimated last."""
    return _estimates(connection, INDEXES_SQL)
