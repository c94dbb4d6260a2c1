"""PostgREST's reads, writes and function calls as SQL, inside the request's transaction.

Every identifier comes from the schema cache and is quoted (`psycopg.sql.Identifier`);
every value from the request is a bound parameter, sent untyped so PostgreSQL infers the
column's type as it does for PostgREST. Results are JSON built by PostgreSQL
(`json_agg`, `row_to_json`). Functions take the request's session and never commit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import psycopg
from psycopg import sql
from sqlmodel import Session

from planwise.rest.catalog import SCHEMA, Function, SchemaCache, Table, schema_caches
from planwise.rest.errors import RestError
from planwise.rest.schemas import (
    EmbedItem,
    FieldItem,
    Filter,
    Identity,
    LogicTree,
    OpExpr,
    Outcome,
    ParsedQuery,
    Path,
    Preferences,
    SelectItem,
    StarItem,
)

COMPARISONS = {
    "eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "like": "LIKE",
    "ilike": "ILIKE", "match": "~", "imatch": "~*", "cs": "@>", "cd": "<@", "ov": "&&",
    "sl": "<<", "sr": ">>", "nxr": "&<", "nxl": "&>", "adj": "-|-",
    "isdistinct": "IS DISTINCT FROM",
}  # fmt: skip
IS_VALUES = {"null": "IS NULL", "not_null": "IS NOT NULL", "true": "IS TRUE",
             "false": "IS FALSE", "unknown": "IS UNKNOWN"}  # fmt: skip
FTS_FUNCTIONS = {"fts": "to_tsquery", "plfts": "plainto_tsquery", "phfts": "phraseto_tsquery",
                 "wfts": "websearch_to_tsquery"}  # fmt: skip

BEGIN_SQL = sql.SQL(
    "SELECT (SELECT version_num FROM public.alembic_version LIMIT 1), "
    "set_config('role', %(role)s, true), "
    "set_config('request.jwt.claims', %(claims)s, true), "
    "set_config('request.method', %(method)s, true), "
    "set_config('request.path', %(path)s, true), "
    "set_config('request.headers', %(headers)s, true), "
    "set_config('transaction_read_only', %(read_only)s, true)"
)
"""PostgREST's transaction preamble, in one round trip: the role (as `SET LOCAL ROLE`),
the JWT claims, method, path and headers (lower-case names), read-only for GET/HEAD;
and the schema's revision, read as the API's login role before the switch."""

INSERTED = "pgrst_inserted"


def driver_connection(session: Session) -> psycopg.Connection[Any]:
    """The psycopg connection under the session's transaction."""
    raw: Any = session.connection().connection.driver_connection
    connection: psycopg.Connection[Any] = raw
    return connection


def begin_request(
    session: Session,
    cache_key: str,
    identity: Identity,
    method: str,
    path: str,
    headers: dict[str, str],
) -> SchemaCache:
    connection = driver_connection(session)
    row = connection.execute(
        BEGIN_SQL,
        {
            "role": identity.role,
            "claims": json.dumps(identity.claims),
            "method": method,
            "path": path,
            "headers": json.dumps(headers),
            "read_only": "on" if method in ("GET", "HEAD") else "off",
        },
    ).fetchone()
    revision = None if row is None else row[0]
    return schema_caches.get(cache_key, revision, connection)


@dataclass
class Builder:
    """Composes one statement: aliases t0, t1, … and named, bound parameters."""

    cache: SchemaCache
    query: ParsedQuery
    params: dict[str, Any] = field(default_factory=dict)
    aliases: int = 0
    levels: set[Path] = field(default_factory=lambda: {()})
    """The root and every embedded resource of the select: where filters may apply."""

    def param(self, value: Any) -> sql.Composable:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return sql.Placeholder(name)

    def alias(self) -> str:
        name = f"t{self.aliases}"
        self.aliases += 1
        return name

    # -- conditions --------------------------------------------------------------------

    def condition(self, table: Table, alias: str, item: Filter) -> sql.Composable:
        column = table.column(item.column)
        ref = sql.Identifier(alias, item.column)
        expr = item.expr
        clause = self.operation(ref, expr, column.type_sql)
        return sql.SQL("NOT ({})").format(clause) if expr.negated else clause

    def operation(self, ref: sql.Composable, expr: OpExpr, type_sql: str) -> sql.Composable:
        operator = expr.operator
        if operator == "in":
            # One array parameter however long the list, as the column's type (catalogue).
            return sql.SQL("{} = ANY(CAST({} AS {}[]))").format(
                ref, self.param(expr.values), sql.SQL(type_sql)
            )
        if operator == "is":
            return sql.SQL("{} {}").format(ref, sql.SQL(IS_VALUES[expr.value]))
        if operator in FTS_FUNCTIONS:
            function = sql.SQL(FTS_FUNCTIONS[operator])
            if expr.language is not None:
                language = self.param(expr.language)
                query = sql.SQL("{}(CAST({} AS regconfig), {})").format(
                    function, language, self.param(expr.value)
                )
            else:
                query = sql.SQL("{}({})").format(function, self.param(expr.value))
            return sql.SQL("{} @@ {}").format(ref, query)
        value = expr.value
        if operator in ("like", "ilike"):
            value = value.replace("*", "%")
        return sql.SQL("{} {} {}").format(ref, sql.SQL(COMPARISONS[operator]), self.param(value))

    def logic(self, table: Table, alias: str, tree: LogicTree) -> sql.Composable:
        if tree.filter is not None:
            return self.condition(table, alias, tree.filter)
        joiner = sql.SQL(" AND " if tree.operator == "and" else " OR ")
        inner = sql.SQL("({})").format(
            joiner.join(self.logic(table, alias, child) for child in tree.children)
        )
        return sql.SQL("NOT {}").format(inner) if tree.negated else inner

    def conditions(self, table: Table, alias: str, path: Path) -> list[sql.Composable]:
        found = [self.condition(table, alias, f) for f in self.query.filters.get(path, [])]
        found += [self.logic(table, alias, tree) for tree in self.query.logic.get(path, [])]
        return found

    def order_limit(self, table: Table, alias: str, path: Path) -> sql.Composable:
        parts: list[sql.Composable] = []
        terms = self.query.order.get(path)
        if terms:
            keys = []
            for term in terms:
                table.column(term.column)
                key: sql.Composable = sql.Identifier(alias, term.column)
                if term.direction:
                    key = sql.SQL("{} {}").format(key, sql.SQL(term.direction.upper()))
                if term.nulls:
                    nulls = "NULLS FIRST" if term.nulls == "nullsfirst" else "NULLS LAST"
                    key = sql.SQL("{} {}").format(key, sql.SQL(nulls))
                keys.append(key)
            parts.append(sql.SQL("ORDER BY {}").format(sql.SQL(", ").join(keys)))
        if path in self.query.limit:
            parts.append(sql.SQL("LIMIT {}").format(self.param(self.query.limit[path])))
        if path in self.query.offset:
            parts.append(sql.SQL("OFFSET {}").format(self.param(self.query.offset[path])))
        return sql.SQL(" ").join(parts)

    # -- select lists and embedding ----------------------------------------------------

    def select_list(
        self, table: Table, alias: str, items: Sequence[SelectItem], path: Path
    ) -> tuple[sql.Composable, list[tuple[sql.Composable, bool]]]:
        """The columns of one level and its lateral joins (each with whether it is !inner)."""
        columns: list[sql.Composable] = []
        joins: list[tuple[sql.Composable, bool]] = []
        star: list[sql.Composable]
        for item in items:
            if isinstance(item, StarItem):
                star = [sql.Identifier(alias, name) for name in table.columns]
                columns += star
            elif isinstance(item, FieldItem):
                table.column(item.name)
                ref: sql.Composable = sql.Identifier(alias, item.name)
                if item.cast is not None:
                    ref = sql.SQL("CAST({} AS {})").format(
                        ref, sql.SQL(self.cache.cast_type(item.cast))
                    )
                columns.append(
                    sql.SQL("{} AS {}").format(ref, sql.Identifier(item.alias or item.name))
                )
            else:
                column, join, inner = self.embed(table, alias, item, path)
                columns.append(column)
                joins.append((join, inner))
        if not columns:
            return sql.SQL(""), joins
        return sql.SQL(", ").join(columns), joins

    def embed(
        self, parent: Table, parent_alias: str, item: EmbedItem, path: Path
    ) -> tuple[sql.Composable, sql.Composable, bool]:
        relationship = self.cache.relationship(parent.name, item.name, item.hint)
        child = self.cache.table(relationship.target)
        child_alias = self.alias()
        join_alias = self.alias()
        child_path = (*path, item.alias or item.name)
        self.levels.add(child_path)
        select, joins = self.select_list(child, child_alias, item.children, child_path)
        where: list[sql.Composable] = [
            sql.SQL("{} = {}").format(
                sql.Identifier(child_alias, child_column), sql.Identifier(parent_alias, column)
            )
            for column, child_column in relationship.pairs
        ]
        where += self.conditions(child, child_alias, child_path)
        rows = sql.SQL("SELECT {} FROM {} AS {} {} WHERE {} {}").format(
            select or sql.SQL("NULL"),
            sql.Identifier(SCHEMA, child.name),
            sql.Identifier(child_alias),
            sql.SQL(" ").join(join for join, _ in joins),
            sql.SQL(" AND ").join(where),
            self.order_limit(child, child_alias, child_path),
        )
        if relationship.to_one:
            body: sql.Composable = sql.SQL("SELECT row_to_json(s) AS body FROM ({}) AS s").format(
                rows
            )
            on: sql.Composable = sql.SQL("true")
        else:
            body = sql.SQL(
                "SELECT coalesce(json_agg(s), '[]'::json) AS body FROM ({}) AS s"
            ).format(rows)
            on = sql.SQL("json_array_length({}.body) > 0").format(sql.Identifier(join_alias))
        join = sql.SQL("{} JOIN LATERAL ({}) AS {} ON {}").format(
            sql.SQL("INNER" if item.inner else "LEFT"),
            body,
            sql.Identifier(join_alias),
            on if item.inner else sql.SQL("true"),
        )
        column = sql.SQL("{}.body AS {}").format(
            sql.Identifier(join_alias), sql.Identifier(item.alias or item.name)
        )
        return column, join, item.inner

    def check_paths(self) -> None:
        """PostgREST's PGRST108 for a filter, order or limit on a resource not embedded."""
        query = self.query
        for path in (*query.filters, *query.logic, *query.order, *query.limit, *query.offset):
            if path not in self.levels:
                raise RestError(
                    400, "PGRST108", f"'{path[-1]}' is not an embedded resource in this request",
                    hint=f"Verify that '{path[-1]}' is included in the 'select' query parameter.",
                )  # fmt: skip

    def returned_columns(self, table: Table, items: Sequence[SelectItem]) -> list[str]:
        """The columns a mutation must return for the select list (and its embeddings)."""
        names: list[str] = []
        for item in items:
            if isinstance(item, StarItem):
                names += list(table.columns)
            elif isinstance(item, FieldItem):
                names.append(table.column(item.name).name)
            else:
                relationship = self.cache.relationship(table.name, item.name, item.hint)
                names += [column for column, _ in relationship.pairs]
        return list(dict.fromkeys(names))


def body_expression(singular: bool, strip_nulls: bool) -> sql.Composable:
    body = "(json_agg(pgrst_t) -> 0)" if singular else "coalesce(json_agg(pgrst_t), '[]'::json)"
    if strip_nulls:
        body = f"json_strip_nulls({body})"
    return sql.SQL(body + "::text")


def _run(session: Session, statement: sql.Composable, params: dict[str, Any]) -> tuple[Any, ...]:
    composed = sql.Composed([statement])
    row = driver_connection(session).execute(composed, params).fetchone()
    assert row is not None
    return tuple(row)


# -- reads ----------------------------------------------------------------------------------


def read(
    session: Session,
    cache: SchemaCache,
    name: str,
    query: ParsedQuery,
    prefs: Preferences,
    *,
    singular: bool,
    strip_nulls: bool,
) -> Outcome:
    table = cache.table(name)
    builder = Builder(cache, query)
    alias = builder.alias()
    select, joins = builder.select_list(table, alias, query.select, ())
    where = builder.conditions(table, alias, ())
    where_sql = sql.SQL("WHERE {}").format(sql.SQL(" AND ").join(where)) if where else sql.SQL("")
    source = sql.SQL("{} AS {}").format(sql.Identifier(SCHEMA, table.name), sql.Identifier(alias))
    total: sql.Composable
    if prefs.count:
        inner_joins = sql.SQL(" ").join(join for join, inner in joins if inner)
        total = sql.SQL("(SELECT count(*) FROM {} {} {})").format(source, inner_joins, where_sql)
    else:
        total = sql.SQL("NULL::bigint")
    statement = sql.SQL(
        "SELECT {total}, count(pgrst_t), {body} "
        "FROM (SELECT {select} FROM {source} {joins} {where} {order}) AS pgrst_t"
    ).format(
        total=total,
        body=body_expression(singular, strip_nulls),
        select=select,
        source=source,
        joins=sql.SQL(" ").join(join for join, _ in joins),
        where=where_sql,
        order=builder.order_limit(table, alias, ()),
    )
    builder.check_paths()
    total_rows, rows, body = _run(session, statement, builder.params)
    return Outcome(body=body, rows=rows, total=total_rows)


# -- writes ---------------------------------------------------------------------------------


def _payload_columns(
    table: Table, rows: list[dict[str, Any]], columns: list[str] | None
) -> list[str]:
    if columns is not None:
        names = columns
    else:
        names = list(rows[0]) if rows else []
        if any(set(row) != set(names) for row in rows):
            raise RestError.invalid_body("All object keys must match")
    for column in names:
        if column not in table.columns:
            raise RestError.payload_column(table.name, column)
    return names


def _mutation_result(
    builder: Builder,
    table: Table,
    alias: str,
    mutation: sql.Composable,
    prefs: Preferences,
    *,
    singular: bool,
    strip_nulls: bool,
    inserted: sql.Composable = sql.SQL("false"),
) -> sql.Composable:
    """`WITH pgrst_source AS (<mutation> RETURNING …) SELECT …`: rows, inserted, body.
    `inserted` tells a returned row was inserted; only an upsert needs `xmax = 0` for it,
    and a system column needs SELECT on the whole table (a column grant is not enough)."""
    inserted_flag = sql.SQL("{} AS {}").format(inserted, sql.Identifier(INSERTED))
    representation = prefs.representation in ("full", "headers-only")
    items: Sequence[SelectItem] = builder.query.select
    if prefs.representation == "headers-only":
        items = [FieldItem(column) for column in table.primary_key]
    if representation:
        returned = builder.returned_columns(table, items)
        returning: sql.Composable = sql.SQL(", ").join(
            [*(sql.Identifier(alias, column) for column in returned), inserted_flag]
        )
        select, joins = builder.select_list(table, alias, items, ())
        body: sql.Composable = sql.SQL(
            "(SELECT {body} FROM (SELECT {select} FROM pgrst_source AS {alias} {joins}) AS pgrst_t)"
        ).format(
            body=body_expression(singular, strip_nulls),
            select=select or sql.SQL("NULL"),
            alias=sql.Identifier(alias),
            joins=sql.SQL(" ").join(join for join, _ in joins),
        )
    else:
        returning = inserted_flag
        body = sql.SQL("NULL::text")
    return sql.SQL(
        "WITH pgrst_source AS ({mutation} RETURNING {returning}) "
        "SELECT NULL::bigint, (SELECT count(*) FROM pgrst_source), {body}, "
        "(SELECT count(*) FROM pgrst_source WHERE {inserted})"
    ).format(mutation=mutation, returning=returning, body=body, inserted=sql.Identifier(INSERTED))


def _location(table: Table, body: str | None, prefs: Preferences) -> str | None:
    if prefs.representation != "headers-only" or not body:
        return None
    rows = json.loads(body)
    first = rows[0] if isinstance(rows, list) and rows else rows
    if not isinstance(first, dict) or not table.primary_key:
        return None
    return f"/{table.name}?" + urlencode({k: f"eq.{first[k]}" for k in table.primary_key})


def insert(
    session: Session,
    cache: SchemaCache,
    name: str,
    query: ParsedQuery,
    prefs: Preferences,
    payload: Any,
    *,
    singular: bool,
    strip_nulls: bool,
) -> Outcome:
    table = cache.table(name)
    rows = payload if isinstance(payload, list) else [payload]
    if not all(isinstance(row, dict) for row in rows):
        raise RestError.invalid_body("All elements of the payload must be JSON objects")
    if prefs.missing_default:
        raise RestError.not_implemented("Prefer: missing=default is not supported")
    columns = _payload_columns(table, rows, query.columns)
    builder = Builder(cache, query)
    alias = builder.alias()
    target = sql.SQL("{} AS {}").format(sql.Identifier(SCHEMA, table.name), sql.Identifier(alias))
    if not rows:
        return Outcome(body="[]" if prefs.representation == "full" else None, rows=0)
    mutation: sql.Composable
    was_inserted: sql.Composable = sql.SQL("true")
    if columns:
        names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        mutation = sql.SQL(
            "INSERT INTO {target} ({names}) SELECT {names} "
            "FROM json_populate_recordset(NULL::{table}, {payload}::json)"
        ).format(
            target=target,
            names=names,
            table=sql.Identifier(SCHEMA, table.name),
            payload=builder.param(json.dumps(rows)),
        )
    else:
        mutation = sql.SQL("INSERT INTO {} DEFAULT VALUES").format(target)
    if prefs.resolution is not None:
        keys = query.on_conflict or table.primary_key
        for key in keys:
            table.column(key)
        conflict = sql.SQL(", ").join(sql.Identifier(key) for key in keys)
        updates = [c for c in columns if c not in keys] or columns
        action: sql.Composable
        if prefs.resolution == "ignore-duplicates" or not updates:
            action = sql.SQL("DO NOTHING")
        else:
            action = sql.SQL("DO UPDATE SET {}").format(
                sql.SQL(", ").join(
                    sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
                    for c in updates
                )
            )
        mutation = sql.SQL("{} ON CONFLICT ({}) {}").format(mutation, conflict, action)
        was_inserted = sql.SQL("({}.xmax = 0)").format(sql.Identifier(alias))
    statement = _mutation_result(
        builder, table, alias, mutation, prefs,
        singular=singular, strip_nulls=strip_nulls, inserted=was_inserted,
    )  # fmt: skip
    builder.check_paths()
    _total, affected, body, inserted = _run(session, statement, builder.params)
    return Outcome(body, affected, inserted=inserted, location=_location(table, body, prefs))


def update(
    session: Session,
    cache: SchemaCache,
    name: str,
    query: ParsedQuery,
    prefs: Preferences,
    payload: Any,
    *,
    singular: bool,
    strip_nulls: bool,
) -> Outcome:
    table = cache.table(name)
    if not isinstance(payload, dict):
        raise RestError.invalid_body("The payload of PATCH must be a JSON object")
    columns = _payload_columns(table, [payload], query.columns)
    builder = Builder(cache, query)
    alias = builder.alias()
    where = builder.conditions(table, alias, ())
    if query.limit or query.offset:
        raise RestError.not_implemented("limit and offset are not supported on PATCH")
    if not where:
        raise RestError(
            400, "21000", "UPDATE requires a WHERE clause",
            hint="Add a filter (e.g. id=eq.1) to say which rows to change.",
        )  # fmt: skip
    if not columns:
        return Outcome(body="[]" if prefs.representation == "full" else None, rows=0)
    mutation = sql.SQL(
        "UPDATE {table} AS {alias} SET {sets} "
        "FROM (SELECT * FROM json_populate_record(NULL::{table}, {payload}::json)) AS pgrst_body "
        "WHERE {where}"
    ).format(
        table=sql.Identifier(SCHEMA, table.name),
        alias=sql.Identifier(alias),
        sets=sql.SQL(", ").join(
            sql.SQL("{} = pgrst_body.{}").format(sql.Identifier(c), sql.Identifier(c))
            for c in columns
        ),
        payload=builder.param(json.dumps(payload)),
        where=sql.SQL(" AND ").join(where),
    )
    statement = _mutation_result(
        builder, table, alias, mutation, prefs, singular=singular, strip_nulls=strip_nulls
    )
    builder.check_paths()
    _total, affected, body, _inserted = _run(session, statement, builder.params)
    return Outcome(body, affected)


def delete(
    session: Session,
    cache: SchemaCache,
    name: str,
    query: ParsedQuery,
    prefs: Preferences,
    *,
    singular: bool,
    strip_nulls: bool,
) -> Outcome:
    table = cache.table(name)
    builder = Builder(cache, query)
    alias = builder.alias()
    where = builder.conditions(table, alias, ())
    if query.limit or query.offset:
        raise RestError.not_implemented("limit and offset are not supported on DELETE")
    if not where:
        raise RestError(
            400, "21000", "DELETE requires a WHERE clause",
            hint="Add a filter (e.g. id=eq.1) to say which rows to delete.",
        )  # fmt: skip
    mutation = sql.SQL("DELETE FROM {} AS {} WHERE {}").format(
        sql.Identifier(SCHEMA, table.name), sql.Identifier(alias), sql.SQL(" AND ").join(where)
    )
    statement = _mutation_result(
        builder, table, alias, mutation, prefs, singular=singular, strip_nulls=strip_nulls
    )
    builder.check_paths()
    _total, affected, body, _inserted = _run(session, statement, builder.params)
    return Outcome(body, affected)


# -- functions ------------------------------------------------------------------------------


def call(
    session: Session,
    cache: SchemaCache,
    name: str,
    query: ParsedQuery,
    prefs: Preferences,
    arguments: dict[str, Any],
    *,
    read_only: bool,
    singular: bool,
    strip_nulls: bool,
) -> tuple[Function, Outcome]:
    function = cache.function(name, arguments, json_body=not read_only)
    builder = Builder(cache, query)
    alias = builder.alias()
    given = [p for p in function.parameters if p.name in arguments]
    named = sql.SQL(", ").join(
        sql.SQL("{} := pgrst_args.{}").format(sql.Identifier(p.name), sql.Identifier(p.name))
        for p in given
    )
    invocation = sql.SQL("{}({})").format(sql.Identifier(SCHEMA, function.name), named)
    if given:
        definition = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(p.name), sql.SQL(p.type_sql)) for p in given
        )
        source: sql.Composable = sql.SQL(
            "json_to_record({}::json) AS pgrst_args({}), LATERAL {}"
        ).format(builder.param(json.dumps(arguments)), definition, invocation)
    else:
        source = invocation
    if function.kind == "rows":
        table = function.as_table()
        if any(isinstance(item, EmbedItem) for item in query.select):
            raise RestError.not_implemented("embedding on a function's result is not supported")
        select, _joins = builder.select_list(table, alias, query.select, ())
        where = builder.conditions(table, alias, ())
        where_sql = (
            sql.SQL("WHERE {}").format(sql.SQL(" AND ").join(where)) if where else sql.SQL("")
        )
        # The call runs once, in a CTE that both the page and the count read.
        from_sql = sql.SQL("pgrst_source AS {}").format(sql.Identifier(alias))
        total = (
            sql.SQL("(SELECT count(*) FROM {} {})").format(from_sql, where_sql)
            if prefs.count
            else sql.SQL("NULL::bigint")
        )
        single_row = singular or not function.returns_set
        statement = sql.SQL(
            "WITH pgrst_source AS (SELECT {alias}.* FROM {call} AS {alias}) "
            "SELECT {total}, count(pgrst_t), {body} "
            "FROM (SELECT {select} FROM {source} {where} {order}) AS pgrst_t"
        ).format(
            alias=sql.Identifier(alias),
            call=source,
            total=total,
            body=body_expression(single_row, strip_nulls),
            select=select or sql.SQL("NULL"),
            source=from_sql,
            where=where_sql,
            order=builder.order_limit(table, alias, ()),
        )
    else:
        if query.filters or query.logic or query.order:
            raise RestError.not_implemented("filters and order apply to functions returning rows")
        value = sql.Identifier(alias, "pgrst_scalar")
        if function.kind == "void":
            body: sql.Composable = sql.SQL("NULL::text")
        elif function.returns_set:
            body = sql.SQL("coalesce(json_agg({}), '[]'::json)::text").format(value)
        else:
            body = sql.SQL("(array_agg(to_json({})))[1]::text").format(value)
        statement = sql.SQL(
            "SELECT NULL::bigint, count(*), {body} FROM {source} AS {alias}(pgrst_scalar)"
        ).format(body=body, source=source, alias=sql.Identifier(alias))
    builder.check_paths()
    total_rows, rows, text = _run(session, statement, builder.params)
    if function.kind != "rows" or not function.returns_set:
        rows = 1 if function.kind != "void" else 0
    return function, Outcome(body=text, rows=rows, total=total_rows)
