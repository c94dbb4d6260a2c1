"""Dropping `place`'s secondary indexes for a bulk load and building them again.

Building an index once over the loaded table can beat maintaining it row by row (a build
writes its pages once; a sorted GiST build or a btree sort is much cheaper than one
insertion per row). The definitions come
from `pg_indexes`, i.e. from what the migrations created (one source of truth), and are
replayed verbatim with the indexes' comments (b8c9d0e1f2a3's downgrade reads one), so the
schema ends exactly as migrated. The importer and the bench's loader both use this.

`DROP INDEX` takes an ACCESS EXCLUSIVE lock on `place` until the transaction ends: done
inside the transaction that loads and rebuilds, readers never see the table without its
indexes (they wait for the commit), and a rollback leaves the indexes as they were.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from planwise.errors import PlanwiseError

REBUILT_INDEXES = ("idx_place_location", "idx_place_category")
"""What `places import --rebuild-indexes` rebuilds: indexes whose build costs a fraction
of their row-by-row maintenance (a sorted GiST build on the PostGIS point, a btree),
measured in server CPU per 300,000 places: 0.5 s to build both against 1.5-2 s to
maintain them. Opt-in: the import's wall time did not reliably improve (README)."""
SECONDARY_INDEXES = (*REBUILT_INDEXES, "ix_place_category_point", "ix_place_category_band_point")
"""Every secondary index of `place` (the primary key stays: the merge's ON CONFLICT and
its anti-join need it). Rebuilt only when nothing reads the table anyway (the bench's load
into an empty database); the recommendation's two point GiSTs (a1c2e3f4a5b6) have sorted
builds like `idx_place_location`."""
BUILD_MAINTENANCE_WORK_MEM = "1GB"
"""For the builds only (SET LOCAL): the GiST builds buffer in it, the btree sorts in it."""


Definitions = dict[str, tuple[str, str | None]]
"""Index name → (CREATE INDEX as pg_indexes prints it, the index's comment)."""


def index_definitions(conn: psycopg.Connection[Any], names: tuple[str, ...]) -> Definitions:
    """The named indexes of public.place that exist: name → (definition, comment)."""
    rows = conn.execute(
        "SELECT i.indexname, i.indexdef, obj_description(c.oid, 'pg_class') "
        "FROM pg_indexes AS i JOIN pg_class AS c "
        "ON c.relname = i.indexname AND c.relnamespace = 'public'::regnamespace "
        "WHERE i.schemaname = 'public' AND i.tablename = 'place' AND i.indexname = ANY(%s)",
        (list(names),),
    ).fetchall()
    return {str(name): (str(definition), comment) for name, definition, comment in rows}


def drop_indexes(conn: psycopg.Connection[Any], names: tuple[str, ...]) -> Definitions:
    """Drop the named indexes that exist, in the current transaction; their definitions."""
    definitions = index_definitions(conn, names)
    for name in definitions:
        conn.execute(sql.SQL("DROP INDEX public.{}").format(sql.Identifier(name)))
    return definitions


def build_indexes(conn: psycopg.Connection[Any], definitions: Definitions) -> None:
    """Create the dropped indexes again, verbatim, in the current transaction, and check
    that the catalogue now shows the very same definitions and comments."""
    conn.execute(
        sql.SQL("SET LOCAL maintenance_work_mem = {}").format(
            sql.Literal(BUILD_MAINTENANCE_WORK_MEM)
        )
    )
    for name, (definition, comment) in definitions.items():
        conn.execute(definition)  # pg_indexes's own text, no user input
        if comment is not None:
            conn.execute(
                sql.SQL("COMMENT ON INDEX public.{} IS {}").format(
                    sql.Identifier(name), sql.Literal(comment)
                )
            )
    if index_definitions(conn, tuple(definitions)) != definitions:
        raise PlanwiseError("the rebuilt place indexes differ from the dropped ones")
