"""The schema cache: tables, columns, keys, foreign keys, functions and type names of the
exposed schema (`public`), read from pg_catalog as PostgREST's schema cache is.

It is read once per process and database, and read again whenever the database's Alembic
revision differs from the one it was read at (the revision comes back with the first
statement of every request, so a migration is picked up by the next request without an
extra round trip), or when `invalidate()` is called. Privileges are not part of it: the
database decides those when the statement runs, as it does behind PostgREST.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg

from planwise.rest.errors import RestError

SCHEMA = "public"

TABLES_SQL = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       (a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''),
       coalesce((SELECT con.conkey FROM pg_constraint con
                 WHERE con.conrelid = c.oid AND con.contype = 'p'), '{}') @> ARRAY[a.attnum]
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'v', 'm', 'p', 'f')
ORDER BY c.relname, a.attnum
"""

FOREIGN_KEYS_SQL = """
SELECT con.conname, cl.relname, fcl.relname,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
             ORDER BY k.ord)::text[],
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
             ORDER BY k.ord)::text[]
FROM pg_constraint con
JOIN pg_class cl ON cl.oid = con.conrelid
JOIN pg_class fcl ON fcl.oid = con.confrelid
WHERE con.contype = 'f'
  AND cl.relnamespace = %(schema)s::regnamespace
  AND fcl.relnamespace = %(schema)s::regnamespace
ORDER BY con.conname
"""

FUNCTIONS_SQL = """
SELECT p.proname, p.proretset, t.typtype, format_type(p.prorettype, NULL),
       p.provolatile, p.pronargdefaults,
       coalesce(p.proargnames, '{}')::text[],
       coalesce(p.proargmodes::text[], array_fill('i'::text, ARRAY[p.pronargs])),
       ARRAY(SELECT format_type(x, NULL)
             FROM unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]))
                  WITH ORDINALITY AS u(x, ord) ORDER BY u.ord)::text[],
       ARRAY(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum)::text[],
       ARRAY(SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
             WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum)::text[]
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_type t ON t.oid = p.prorettype
WHERE n.nspname = %(schema)s AND p.prokind = 'f'
  AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype, 'internal'::regtype)
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e'
                  AND d.classid = 'pg_proc'::regclass)
ORDER BY p.proname, p.oid
"""
"""Functions of the schema, except trigger functions and those an extension owns
(PostGIS's hundreds): each has its named parameters, defaults and result shape."""

TYPES_SQL = """
SELECT lower(t.typname), format_type(t.oid, NULL)
FROM pg_type t
WHERE t.typtype IN ('b', 'd', 'e', 'r', 'm') AND t.typisdefined AND t.typcategory <> 'A'
  AND (t.typnamespace IN ('pg_catalog'::regnamespace, %(schema)s::regnamespace)
       OR t.typname IN ('geometry', 'geography'))
"""

TYPE_ALIASES = {
    "int": "integer", "integer": "integer", "smallint": "smallint", "bigint": "bigint",
    "float": "double precision", "double precision": "double precision", "real": "real",
    "decimal": "numeric", "boolean": "boolean", "character varying": "character varying",
    "timestamp with time zone": "timestamp with time zone",
    "timestamp without time zone": "timestamp without time zone",
    "time with time zone": "time with time zone", "character": "character",
}  # fmt: skip
"""SQL's spellings of types whose pg_type name differs (`::int` casts as PostgREST's do)."""


@dataclass(frozen=True)
class Column:
    name: str
    type_sql: str
    not_null: bool
    has_default: bool
    primary_key: bool


@dataclass
class Table:
    name: str
    columns: dict[str, Column] = field(default_factory=dict)

    @property
    def primary_key(self) -> list[str]:
        return [c.name for c in self.columns.values() if c.primary_key]

    def column(self, name: str) -> Column:
        found = self.columns.get(name)
        if found is None:
            raise RestError.undefined_column(self.name, name)
        return found


@dataclass(frozen=True)
class ForeignKey:
    name: str
    table: str
    foreign_table: str
    columns: tuple[str, ...]
    foreign_columns: tuple[str, ...]


@dataclass(frozen=True)
class Relationship:
    """How an embedded resource joins its parent: `pairs` are (parent column, child column)."""

    target: str
    cardinality: Literal["many-to-one", "one-to-many"]
    constraint: str
    pairs: tuple[tuple[str, str], ...]

    @property
    def to_one(self) -> bool:
        return self.cardinality == "many-to-one"


@dataclass(frozen=True)
class Parameter:
    name: str
    type_sql: str
    has_default: bool


@dataclass(frozen=True)
class Function:
    name: str
    parameters: tuple[Parameter, ...]
    returns_set: bool
    kind: Literal["rows", "scalar", "void"]
    return_type_sql: str
    columns: tuple[tuple[str, str], ...]
    """Result columns (name, type) when `kind` is "rows"."""
    volatile: bool

    @property
    def signature(self) -> str:
        inner = ", ".join(f"{p.name} => {p.type_sql}" for p in self.parameters)
        return f"{SCHEMA}.{self.name}({inner})"

    def accepts(self, names: Iterable[str]) -> bool:
        given = set(names)
        known = {p.name for p in self.parameters}
        required = {p.name for p in self.parameters if not p.has_default}
        return given <= known and required <= given

    def as_table(self) -> Table:
        table = Table(self.name)
        for name, type_sql in self.columns:
            table.columns[name] = Column(name, type_sql, False, False, False)
        return table


@dataclass
class SchemaCache:
    revision: str | None
    tables: dict[str, Table]
    foreign_keys: list[ForeignKey]
    functions: dict[str, list[Function]]
    types: dict[str, str]

    def table(self, name: str) -> Table:
        found = self.tables.get(name)
        if found is None:
            close = difflib.get_close_matches(name, list(self.tables), n=1)
            raise RestError(
                404, "PGRST205", f"Could not find the table '{SCHEMA}.{name}' in the schema cache",
                hint=f"Perhaps you meant the table '{SCHEMA}.{close[0]}'" if close else None,
            )  # fmt: skip
        return found

    def cast_type(self, name: str) -> str:
        """The catalogue's spelling of a type named in a `::cast`; never the request's text."""
        key = " ".join(name.lower().split())
        found = self.types.get(key) or TYPE_ALIASES.get(key)
        if found is None:
            raise RestError(400, "42704", f'type "{name}" does not exist')
        return found

    def relationship(self, parent: str, child: str, hint: str | None) -> Relationship:
        candidates: list[Relationship] = []
        for fk in self.foreign_keys:
            if fk.table == parent and fk.foreign_table == child:
                pairs = tuple(zip(fk.columns, fk.foreign_columns, strict=True))
                candidates.append(Relationship(child, "many-to-one", fk.name, pairs))
            if fk.foreign_table == parent and fk.table == child:
                pairs = tuple(zip(fk.foreign_columns, fk.columns, strict=True))
                candidates.append(Relationship(child, "one-to-many", fk.name, pairs))
        if hint is not None:
            candidates = [
                c for c in candidates
                if c.constraint == hint or any(hint in pair for pair in c.pairs)
            ]  # fmt: skip
        if not candidates:
            using = f"' using the hint '{hint}" if hint else ""
            raise RestError(
                400, "PGRST200",
                f"Could not find a relationship between '{parent}' and '{child}' in the "
                "schema cache",
                f"Searched for a foreign key relationship between '{parent}' and '{child}"
                f"{using}' in the schema '{SCHEMA}', but no matches were found.",
            )  # fmt: skip
        if len(candidates) > 1:
            raise RestError(
                300, "PGRST201",
                f"Could not embed because more than one relationship was found for '{parent}' "
                f"and '{child}'",
                [{"cardinality": c.cardinality, "embedding": f"{parent} with {child}",
                  "relationship": c.constraint} for c in candidates],
                f"Try changing '{child}' to one of the following: "
                + ", ".join(f"'{child}!{c.constraint}'" for c in candidates)
                + ". Find the desired relationship in the 'details' key.",
            )  # fmt: skip
        return candidates[0]

    def function(self, name: str, arguments: Iterable[str], *, json_body: bool) -> Function:
        keys = sorted(arguments)
        matching = [f for f in self.functions.get(name, []) if f.accepts(keys)]
        if len(matching) == 1:
            return matching[0]
        if matching:
            raise RestError(
                300, "PGRST203",
                "Could not choose the best candidate function between: "
                + ", ".join(f.signature for f in matching),
            )  # fmt: skip
        listed = ", ".join(keys)
        with_params = (
            f" with parameter{'s' if len(keys) > 1 else ''} {listed}" if keys
            else " without parameters"
        )  # fmt: skip
        or_json = " or with a single unnamed json/jsonb parameter" if json_body else ""
        close = difflib.get_close_matches(name, list(self.functions), n=1)
        raise RestError(
            404, "PGRST202",
            f"Could not find the function {SCHEMA}.{name}"
            f"{f'({listed})' if keys else ' without parameters'} in the schema cache",
            f"Searched for the function {SCHEMA}.{name}{with_params}{or_json}, but no matches "
            "were found in the schema cache.",
            f"Perhaps you meant to call the function {SCHEMA}.{close[0]}" if close else None,
        )  # fmt: skip


def _function(row: tuple[Any, ...]) -> Function | None:
    (name, returns_set, typtype, return_type, volatility, n_defaults, arg_names, modes,
     arg_types, rel_columns, rel_types) = row  # fmt: skip
    inputs = [i for i, mode in enumerate(modes) if mode in ("i", "b", "v")]
    outputs = [i for i, mode in enumerate(modes) if mode in ("o", "b", "t")]
    names = list(arg_names) + [""] * (len(modes) - len(arg_names))
    if any(not names[i] for i in inputs + outputs):
        return None  # PostgREST calls functions by named arguments only
    first_default = len(inputs) - int(n_defaults)
    parameters = tuple(
        Parameter(names[i], arg_types[i], position >= first_default)
        for position, i in enumerate(inputs)
    )
    columns: tuple[tuple[str, str], ...] = ()
    kind: Literal["rows", "scalar", "void"]
    if outputs and (len(outputs) > 1 or (returns_set and modes[outputs[0]] == "t")):
        kind, columns = "rows", tuple((names[i], arg_types[i]) for i in outputs)
    elif typtype == "c":
        kind, columns = "rows", tuple(zip(rel_columns, rel_types, strict=True))
    elif return_type == "void":
        kind = "void"
    elif return_type == "record":
        return None  # columns unknown until called with a column definition list
    else:
        kind = "scalar"
    return Function(
        name, parameters, bool(returns_set), kind, return_type, columns, volatility == "v"
    )


def load(connection: psycopg.Connection[Any], revision: str | None) -> SchemaCache:
    params = {"schema": SCHEMA}
    tables: dict[str, Table] = {}
    for relname, attname, type_sql, not_null, has_default, pk in connection.execute(
        TABLES_SQL, params
    ):
        table = tables.setdefault(relname, Table(relname))
        table.columns[attname] = Column(attname, type_sql, not_null, has_default, pk)
    foreign_keys = [
        ForeignKey(name, table, foreign, tuple(cols), tuple(fcols))
        for name, table, foreign, cols, fcols in connection.execute(FOREIGN_KEYS_SQL, params)
    ]
    functions: dict[str, list[Function]] = {}
    for row in connection.execute(FUNCTIONS_SQL, params):
        function = _function(row)
        if function is not None:
            functions.setdefault(function.name, []).append(function)
    types = {name: spelled for name, spelled in connection.execute(TYPES_SQL, params)}
    types.update({spelled.lower(): spelled for spelled in list(types.values())})
    return SchemaCache(revision, tables, foreign_keys, functions, types)


class SchemaCacheRegistry:
    """One schema cache per database (engine URL) in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._caches: dict[str, SchemaCache] = {}
        self.loads = 0

    def get(
        self, key: str, revision: str | None, connection: psycopg.Connection[Any]
    ) -> SchemaCache:
        with self._lock:
            cached = self._caches.get(key)
        if cached is not None and cached.revision == revision:
            return cached
        fresh = load(connection, revision)
        with self._lock:
            self._caches[key] = fresh
            self.loads += 1
        return fresh

    def invalidate(self, key: str | None = None) -> None:
        """Forget the cache of one database (or all): the next request reads it again."""
        with self._lock:
            if key is None:
                self._caches.clear()
            else:
                self._caches.pop(key, None)


schema_caches = SchemaCacheRegistry()
